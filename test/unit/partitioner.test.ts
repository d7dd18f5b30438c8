import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fnv1a32, partitionFor, partitionKeyOf } from "../../shared/partitioner";

describe("partitioner", () => {
  // Fixed vectors ("a" and "foobar" are the reference FNV-1a-32 test vectors); they are the
  // published contract (docs/http-api.md "Partitioning"): changing them re-homes keys.
  it.each([
    ["", 0x811c9dc5],
    ["a", 0xe40c292c],
    ["foobar", 0xbf9cf968],
    ["order-1", 0x2b7fcd6d],
    ["ü", 0x119dd44a],
  ])("FNV-1a-32(%j) = %i", (key, expected) => {
    expect(fnv1a32(key)).toBe(expected);
  });

  it.each([
    [{ id: "e1" }, 4, fnv1a32("e1") % 4],
    [{ id: "e1", subject: "customer-7" }, 4, fnv1a32("customer-7") % 4],
    [{ id: "e1", subject: "customer-7", partitionkey: "tenant-a" }, 4, fnv1a32("tenant-a") % 4],
  ])("routes %j by partitionkey ?? subject ?? id", (ev, n, expected) => {
    expect(partitionFor(ev, n)).toBe(expected);
  });

  it("known placements for the shipped 4-partition topics", () => {
    expect([
      partitionFor({ id: "a" }, 4),
      partitionFor({ id: "b" }, 4),
      partitionFor({ id: "c" }, 4),
      partitionFor({ id: "d" }, 4),
    ]).toEqual([0xe40c292c % 4, 0xe70c2de5 % 4, 0xe60c2c52 % 4, 0xe10c2473 % 4]);
  });

  it("is stable, in range and depends only on the key (property)", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "grapheme" }),
        fc.integer({ min: 1, max: 1024 }),
        fc.option(fc.string({ minLength: 1 })),
        (key, n, other) => {
          const p = partitionFor({ id: other ?? "x", partitionkey: key === "" ? "k" : key }, n);
          expect(p).toBeGreaterThanOrEqual(0);
          expect(p).toBeLessThan(n);
          expect(partitionFor({ id: "y", partitionkey: key === "" ? "k" : key }, n)).toBe(p);
          expect(fnv1a32(key)).toBe(fnv1a32(String(key)));
        },
      ),
    );
  });

  it("hashes the UTF-8 bytes of any key, ASCII or not (property)", () => {
    const reference = (key: string) => {
      let hash = 0x811c9dc5;
      for (const byte of new TextEncoder().encode(key)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
      return hash >>> 0;
    };
    const ascii = fc.string({ unit: fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)) });
    fc.assert(
      fc.property(
        fc.oneof(
          ascii,
          fc.string({ unit: "grapheme" }),
          fc.string({ unit: "binary" }),
          fc.tuple(ascii, fc.string()).map(([a, b]) => a + b),
        ),
        (key) => {
          expect(fnv1a32(key)).toBe(reference(key));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("spreads keys across partitions roughly evenly", () => {
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[partitionFor({ id: `event-${i}` }, 4)] = (counts[partitionFor({ id: `event-${i}` }, 4)] ?? 0) + 1;
    for (const c of counts) expect(c).toBeGreaterThan(800);
  });

  it("rejects a non-positive partition count", () => {
    expect(() => partitionFor({ id: "a" }, 0)).toThrow(RangeError);
    expect(partitionKeyOf({ id: "i", subject: "s" })).toBe("s");
  });
});
