import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ACTIONS, type Action, deniedBy, implies, patternCovers, patternMatches, patternsOverlap } from "../../shared/security/grants";

describe("implies", () => {
  // Every (held, wanted) pair: the whole rule, so a new action must be placed here on purpose.
  const gives: Record<Action, readonly Action[]> = {
    produce: ["produce"],
    consume: ["consume"],
    replay: ["replay"],
    admin: ["admin", "produce", "consume", "replay"],
    decrypt: ["decrypt"],
  };
  const cases = ACTIONS.flatMap((held) => ACTIONS.map((wanted) => [held, wanted, gives[held].includes(wanted)] as const));

  it.each(cases)("%s gives %s: %s", (held, wanted, expected) => {
    expect(implies(held, wanted)).toBe(expected);
  });

  it("admin never gives decrypt, and decrypt gives nothing else", () => {
    expect(implies("admin", "decrypt")).toBe(false);
    expect(ACTIONS.filter((a) => implies("decrypt", a))).toEqual(["decrypt"]);
    expect(ACTIONS.filter((a) => implies(a, "decrypt"))).toEqual(["decrypt"]);
  });
});

describe("deniedBy", () => {
  // Every (denied, wanted) pair: what a deny takes away. A deny of consume takes replay too (a replay
  // moves the topic's events to a subscription); a deny of any topic action takes admin.
  const takes: Record<Action, readonly Action[]> = {
    produce: ["produce", "admin"],
    consume: ["consume", "replay", "admin"],
    replay: ["replay", "admin"],
    admin: ["admin"],
    decrypt: ["decrypt"],
  };
  const cases = ACTIONS.flatMap((denied) => ACTIONS.map((wanted) => [denied, wanted, takes[denied].includes(wanted)] as const));

  it.each(cases)("a deny of %s takes %s: %s", (denied, wanted, expected) => {
    expect(deniedBy(wanted, denied)).toBe(expected);
  });
});

describe("patternCovers", () => {
  it.each([
    ["* covers *", "*", "*", true],
    ["* covers a literal", "*", "orders", true],
    ["* covers a prefix", "*", "acme.", true],
    ["a literal covers itself", "orders", "orders", true],
    ["a literal does not cover another", "orders", "payments", false],
    ["a literal does not cover *", "orders", "*", false],
    ["a literal does not cover a prefix", "acme", "acme.", false],
    ["a prefix covers itself", "acme.", "acme.", true],
    ["a prefix covers a literal under it", "acme.", "acme.orders", true],
    ["a prefix covers a longer prefix", "acme.", "acme.eu.", true],
    ["a prefix covers a longer prefix with another delimiter", "acme.", "acme.eu-", true],
    ["a prefix does not cover its own name", "acme.", "acme", false],
    ["a prefix does not cover *", "acme.", "*", false],
    ["a longer prefix does not cover a shorter one", "acme.eu.", "acme.", false],
    ["the delimiter is part of the prefix", "acme.", "acme-orders", false],
    ["a literal does not cover a longer literal", "orders", "orders.eu", false],
  ])("%s", (_name, outer, inner, expected) => {
    expect(patternCovers(outer, inner)).toBe(expected);
  });
});

describe("patternsOverlap", () => {
  it.each([
    ["* and anything", "*", "orders", true],
    ["* and *", "*", "*", true],
    ["the same literal", "orders", "orders", true],
    ["two literals", "orders", "payments", false],
    ["a prefix and a literal under it", "acme.", "acme.orders", true],
    ["a prefix and a literal outside it", "acme.", "other.orders", false],
    ["a prefix and its own name", "acme.", "acme", false],
    ["nested prefixes", "acme.", "acme.eu.", true],
    ["prefixes with different delimiters", "acme.", "acme-", false],
    ["sibling prefixes", "acme.eu.", "acme.us.", false],
  ])("%s", (_name, a, b, expected) => {
    expect(patternsOverlap(a, b)).toBe(expected);
    expect(patternsOverlap(b, a)).toBe(expected);
  });

  // Patterns and topics over a small alphabet, so that matches are common: any such string is a
  // valid pattern (one ending in "." is a prefix).
  const word = (max: number) => fc.string({ unit: fc.constantFrom("a", "b", "."), minLength: 1, maxLength: max });
  const pattern = fc.oneof(fc.constant("*"), word(4));

  it("a covered pattern matches no topic its cover does not", () => {
    fc.assert(
      fc.property(pattern, pattern, word(6), (outer, inner, topic) => {
        if (patternCovers(outer, inner) && patternMatches(inner, topic)) expect(patternMatches(outer, topic)).toBe(true);
      }),
    );
  });

  it("two patterns that match a common topic overlap", () => {
    fc.assert(
      fc.property(pattern, pattern, word(6), (a, b, topic) => {
        if (patternMatches(a, topic) && patternMatches(b, topic)) expect(patternsOverlap(a, b)).toBe(true);
      }),
    );
  });
});
