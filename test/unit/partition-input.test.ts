import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { appendInputSchema, isPlainAppendInput, parseAppendInput, parseArgs } from "../../durable-objects/partition-log/input";
import { canonicalMembers } from "../../shared/json";
import { zodTakesUnchanged } from "./zod-verdict";

/**
 * The partition's hand-written check of its append input (parseAppendInput) against the zod schema
 * it stands in for: it accepts exactly the inputs zod accepts and returns unchanged, and whatever
 * it does not accept is refused with zod's own message.
 */

const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`));
const traceparent = fc.tuple(hex(32), hex(16)).map(([t, s]) => `00-${t}-${s}-01`);
const text = fc.string({ maxLength: 12 });
const nonEmpty = fc.string({ minLength: 1, maxLength: 12 });

/** A well-formed event as the Worker sends it: columns, hash and the canonical members that agree. */
const validEvent = fc
  .record(
    {
      source: nonEmpty,
      id: nonEmpty,
      type: nonEmpty,
      subject: nonEmpty,
      traceparent,
      hash: hex(64),
      data: fc.jsonValue({ maxDepth: 2 }),
      stream: fc.constant(true as const),
    },
    { requiredKeys: ["source", "id", "type", "traceparent", "hash"] },
  )
  .map(({ data, ...e }) => {
    const { stream, hash, ...attributes } = e;
    const members = canonicalMembers({ specversion: "1.0", ...attributes, ...(data !== undefined && { data }) });
    const { stream: _, ...plain } = e;
    // A stream event needs a subject.
    return { ...(e.subject === undefined ? plain : e), members };
  });

const validInput = fc
  .record(
    {
      topic: nonEmpty,
      partition: fc.nat({ max: 64 }),
      events: fc.array(validEvent, { minLength: 1, maxLength: 4 }),
      expectVersion: fc.oneof(fc.constantFrom("any", "no-stream", "exists"), fc.nat({ max: 10 })),
    },
    { requiredKeys: ["topic", "partition", "events"] },
  )
  .map(({ expectVersion, ...input }) => {
    if (expectVersion === undefined) return input;
    // With expect, every event is a stream event of one subject.
    const subject = input.events[0]?.subject ?? "s";
    const events = input.events.map((e) => {
      const { members, ...rest } = e;
      const kept = members.filter(([key]) => key !== "subject");
      return {
        ...rest,
        subject,
        stream: true as const,
        members: canonicalMembers({ ...Object.fromEntries(kept.map(([k, v]) => [k, JSON.parse(v) as unknown])), subject }),
      };
    });
    return { ...input, events, expect: { subject, version: expectVersion } };
  });

/** Values a field may be replaced with: of the right type and wrong, empty, absent, odd numbers. */
const anyValue = fc.oneof(
  text,
  fc.constantFrom("", "any", "exists", "no-stream", "1.0", '"1.0"', "x"),
  traceparent,
  hex(64),
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(0.5, -0, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, true, false, null, undefined),
  fc.constant([]),
  fc.constant({}),
  fc.tuple(text, text),
);

type Json = Record<string, unknown>;
const clone = <T>(value: T): T => structuredClone(value);

/** One change to a valid input: a field replaced, removed or added, members reordered or edited. */
const mutation = fc.oneof(
  fc.record({
    kind: fc.constant("top" as const),
    key: fc.constantFrom("topic", "partition", "events", "expect", "extra"),
    value: anyValue,
  }),
  fc.record({ kind: fc.constant("expect" as const), key: fc.constantFrom("subject", "version", "extra"), value: anyValue }),
  fc.record({
    kind: fc.constant("event" as const),
    index: fc.nat(),
    key: fc.constantFrom("source", "id", "type", "subject", "traceparent", "hash", "members", "stream", "extra"),
    value: anyValue,
  }),
  fc.record({ kind: fc.constant("delete" as const), index: fc.nat(), key: fc.constantFrom("source", "subject", "stream", "members") }),
  fc.record({
    kind: fc.constant("member" as const),
    index: fc.nat(),
    at: fc.nat(),
    op: fc.constantFrom("swap", "drop", "text", "key", "server", "shape"),
    value: text,
  }),
);

function mutate(input: Json, m: Json): Json {
  const out = clone(input);
  const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
  if (m.kind === "top") out[m.key as string] = m.value;
  else if (m.kind === "expect") {
    if (isObject(out.expect)) out.expect[m.key as string] = m.value;
  } else {
    // Event changes apply while the events are still a list of objects (an earlier change may have replaced them).
    const events = Array.isArray(out.events) ? (out.events as unknown[]) : [];
    const event = events[(m.index as number) % Math.max(1, events.length)];
    if (!isObject(event)) return out;
    const members = event.members;
    if (m.kind !== "event" && m.kind !== "delete" && (!Array.isArray(members) || members.length === 0 || !members.every(Array.isArray)))
      return out;
    if (m.kind === "event") event[m.key as string] = m.value;
    else if (m.kind === "delete") delete event[m.key as string];
    else {
      const list = members as [string, string][];
      const i = (m.at as number) % list.length;
      const member = list[i] as [string, string];
      if (m.op === "swap" && i + 1 < list.length) [list[i], list[i + 1]] = [list[i + 1] as [string, string], member];
      else if (m.op === "drop") list.splice(i, 1);
      else if (m.op === "text") member[1] = JSON.stringify(m.value);
      else if (m.op === "key") member[0] = m.value as string;
      else if (m.op === "server") list.push(["sequence", '"1"']);
      else (list as unknown[])[i] = [member[0]];
    }
  }
  return out;
}

describe("the partition's append input check", () => {
  it("accepts every valid input, as zod does, and returns it as given", () => {
    fc.assert(
      fc.property(validInput, (input) => {
        expect(appendInputSchema.safeParse(input).success).toBe(true);
        expect(isPlainAppendInput(input)).toBe(true);
        expect(parseAppendInput(input)).toBe(input);
      }),
      { numRuns: 300 },
    );
  });

  it("accepts exactly what zod accepts unchanged, over inputs with up to three changes (property)", () => {
    fc.assert(
      fc.property(validInput, fc.array(mutation, { minLength: 1, maxLength: 3 }), (input, changes) => {
        const changed = changes.reduce<Json>((value, m) => mutate(value, m as Json), input as Json);
        expect(isPlainAppendInput(changed)).toBe(zodTakesUnchanged(appendInputSchema, changed));
      }),
      { numRuns: 3000 },
    );
  });

  it("refuses what zod refuses with zod's own message", () => {
    fc.assert(
      fc.property(validInput, mutation, (input, m) => {
        const changed = mutate(input as Json, m as Json);
        if (appendInputSchema.safeParse(changed).success) return;
        let zodMessage = "";
        try {
          parseArgs(appendInputSchema, changed, "append input");
        } catch (err) {
          zodMessage = (err as Error).message;
        }
        expect(zodMessage).toMatch(/^invalid append input: /);
        expect(() => parseAppendInput(changed)).toThrow(new TypeError(zodMessage));
      }),
      { numRuns: 500 },
    );
  });

  it("passes input with keys zod strips to zod, which returns it stripped", () => {
    const [event] = fc.sample(validEvent, { numRuns: 1, seed: 7 });
    const input = { topic: "t", partition: 0, events: [{ ...event, extra: 1 }], more: "x" };
    expect(isPlainAppendInput(input)).toBe(false);
    expect(parseAppendInput(input)).toStrictEqual({ topic: "t", partition: 0, events: [event] });
  });

  it("names the failing rule as before", () => {
    expect(() => parseAppendInput({ topic: "", partition: -1, events: [] })).toThrow(
      /^invalid append input: ✖ Too small: expected string to have >=1 characters\n {2}→ at topic\n✖ Too small: expected number to be >=0/,
    );
  });
});
