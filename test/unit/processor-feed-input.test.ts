import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { feedArgs, parseFeedArgs, parseInternalData, parseRepartitioned } from "../../durable-objects/processor/feed-input";
import { INTERNAL_BATCH_MAX_INPUTS, repartitionedBatchSchema, repartitionedSchema } from "../../shared/processors";

/**
 * The hand-written checks of a `feed` call's input against the zod schemas they stand in for:
 * on any input, well-formed or mutated, the same value or the same refusal; and well-formed input
 * is taken as it came (the fast path is the one used).
 */

const TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const text = fc.string({ maxLength: 8, unit: fc.constantFrom("a", "Z", "0", "é", "😀", "/") });
const scalar = fc.oneof(text, fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null));
const data = fc.record(
  {
    partition: fc.nat({ max: 64 }),
    sequence: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    committedAt: fc.integer({ min: 0, max: 4_000_000_000_000 }),
    id: text.filter((s) => s.length > 0),
    key: text,
    eventTime: fc.integer({ min: -1_000_000, max: 4_000_000_000_000 }),
    value: fc.dictionary(text, scalar, { maxKeys: 3 }),
    role: fc.constantFrom("a", "b"),
    trace: fc.record({ traceparent: fc.constant(TRACE), tracestate: fc.constant("a=1"), correlationid: text }, { requiredKeys: [] }),
  },
  { requiredKeys: ["partition", "sequence", "committedAt", "id", "key", "eventTime"] },
);
const runEvents = fc.uniqueArray(fc.integer({ min: 1, max: 10_000 }), { minLength: 1, maxLength: 5 }).chain((seqs) =>
  fc.tuple(
    ...seqs
      .sort((a, b) => a - b)
      .map((sequence) =>
        fc.oneof(
          data.map((d) => ({
            sequence,
            committedAt: 1_700_000_000_000 + sequence,
            event: { specversion: "1.0", id: `x/0/${sequence}`, data: d },
          })),
          fc.constant({ sequence, committedAt: 1_700_000_000_000, ref: true as const }),
          data.map((d) => ({
            sequence,
            committedAt: 1_700_000_000_000 + sequence,
            stored: JSON.stringify({ specversion: "1.0", id: `x/0/${sequence}`, data: { inputs: [d] } }),
          })),
        ),
      ),
  ),
);
const run = fc.record({
  v: fc.constant(2),
  subscription: fc.constant("processor:p"),
  topic: fc.constant("processor.p"),
  partition: fc.nat({ max: 3 }),
  prev: fc.constant(0),
  events: runEvents,
});
const feed = fc.record({ processor: fc.constant("p"), instance: fc.nat({ max: 3 }), runs: fc.array(run, { minLength: 1, maxLength: 3 }) });

const junk = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.constant(-1),
  fc.constant(0),
  fc.constant(1.5),
  fc.constant(2 ** 60),
  fc.constant(Number.POSITIVE_INFINITY),
  fc.constant(""),
  fc.constant("a"),
  fc.constant(true),
  fc.constant([]),
  fc.constant({}),
  fc.constant("c"),
);

/** Sets, deletes or adds one member somewhere inside `value`, chosen by `pick`. */
function mutate(value: unknown, pick: number[], replacement: unknown, extraKey: string): unknown {
  const copy = structuredClone(value);
  const nodes: Record<string, unknown>[] = [];
  const walk = (v: unknown) => {
    if (typeof v !== "object" || v === null) return;
    nodes.push(v as Record<string, unknown>);
    for (const child of Object.values(v)) walk(child);
  };
  walk(copy);
  const node = nodes[(pick[0] ?? 0) % nodes.length] as Record<string, unknown>;
  const keys = Object.keys(node);
  const key = keys.length === 0 || (pick[1] ?? 0) % 4 === 3 ? extraKey : (keys[(pick[2] ?? 0) % keys.length] as string);
  if ((pick[1] ?? 0) % 4 === 2) delete node[key];
  else if (key === "__proto__")
    Object.defineProperty(node, key, { value: replacement, enumerable: true, configurable: true, writable: true });
  else node[key] = replacement;
  return copy;
}

function outcome(f: () => unknown): { ok: unknown } | { error: string } {
  try {
    return { ok: f() };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

const picks = fc.array(fc.nat(), { minLength: 3, maxLength: 3 });
const extraKey = fc.constantFrom("extra", "__proto__", "sequence", "ref", "event", "replay", "role", "value");

describe("feed input checks", () => {
  it("take well-formed input as it came, equal to what the schemas return", () => {
    fc.assert(
      fc.property(feed, (input) => {
        expect(parseFeedArgs(input)).toBe(input);
        expect(parseFeedArgs(input)).toEqual(feedArgs.parse(input));
        for (const r of input.runs)
          for (const e of r.events) {
            if (!("event" in e)) continue;
            const d = (e.event as { data: unknown }).data;
            expect(parseRepartitioned(d)).toBe(d);
            expect(parseRepartitioned(d)).toEqual(repartitionedSchema.parse(d));
          }
      }),
      { numRuns: 300 },
    );
  });

  it("give the schemas' value or refusal on mutated feed calls", () => {
    fc.assert(
      fc.property(feed, picks, junk, extraKey, (input, pick, replacement, extra) => {
        const mutated = mutate(input, pick, replacement, extra);
        expect(outcome(() => parseFeedArgs(mutated))).toEqual(outcome(() => feedArgs.parse(mutated)));
      }),
      { numRuns: 2000 },
    );
  });

  it("give the schema's value or refusal on mutated inputs", () => {
    fc.assert(
      fc.property(data, picks, fc.oneof(junk, scalar), extraKey, (d, pick, replacement, extra) => {
        const mutated = mutate(d, pick, replacement, extra);
        expect(outcome(() => parseRepartitioned(mutated))).toEqual(outcome(() => repartitionedSchema.parse(mutated)));
      }),
      { numRuns: 2000 },
    );
  });

  it("refuse out-of-order runs, runs with both or neither of event and ref, and unknown keys are stripped as the schemas strip them", () => {
    const ok = { sequence: 2, committedAt: 1, event: { data: 1 } };
    const base = { v: 2, subscription: "s", topic: "t", partition: 0, prev: 0 };
    expect(() => parseFeedArgs({ processor: "p", instance: 0, runs: [{ ...base, events: [ok, { ...ok }] }] })).toThrow(/increasing/);
    expect(() => parseFeedArgs({ processor: "p", instance: 0, runs: [{ ...base, events: [{ ...ok, ref: true }] }] })).toThrow(
      /exactly one/,
    );
    expect(() => parseFeedArgs({ processor: "p", instance: 0, runs: [{ ...base, events: [{ sequence: 1, committedAt: 1 }] }] })).toThrow(
      /exactly one/,
    );
    expect(() => parseFeedArgs({ processor: "p", instance: 0, runs: [{ ...base, events: [{ ...ok, stored: "{}" }] }] })).toThrow(
      /exactly one/,
    );
    expect(() =>
      parseFeedArgs({ processor: "p", instance: 0, runs: [{ ...base, events: [{ sequence: 2, committedAt: 1, stored: 5 }] }] }),
    ).toThrow();
    const stripped = parseFeedArgs({ processor: "p", instance: 0, extra: 1, runs: [{ ...base, events: [ok] }] });
    expect(stripped).not.toHaveProperty("extra");
    const d = { partition: 0, sequence: 1, committedAt: 1, id: "i", key: "k", eventTime: 1, trace: { traceparent: TRACE, other: "x" } };
    expect(parseRepartitioned(d).trace).toEqual({ traceparent: TRACE });
    expect(() => parseRepartitioned({ ...d, value: { v: Number.NaN } })).toThrow();
  });

  it("internal events: a batch is read as its inputs, taken as they came; a legacy single input still reads; anything else is refused", () => {
    fc.assert(
      fc.property(fc.array(data, { minLength: 1, maxLength: 6 }), (inputs) => {
        const batch = JSON.parse(JSON.stringify({ inputs }));
        const read = parseInternalData(batch);
        expect(read).toBe(batch.inputs);
        expect(read).toEqual(repartitionedBatchSchema.parse(batch).inputs);
        const single = JSON.parse(JSON.stringify(inputs[0]));
        expect(parseInternalData(single)).toEqual([repartitionedSchema.parse(single)]);
      }),
      { numRuns: 200 },
    );
    const d = { partition: 0, sequence: 1, committedAt: 1, id: "i", key: "k", eventTime: 1 };
    expect(() => parseInternalData({ inputs: [] })).toThrow();
    expect(() => parseInternalData({ inputs: [{ ...d, sequence: 0 }] })).toThrow();
    expect(() => parseInternalData({ inputs: Array.from({ length: INTERNAL_BATCH_MAX_INPUTS + 1 }, () => d) })).toThrow();
    expect(parseInternalData({ inputs: [d], extra: 1 })).toEqual([d]);
  });
});
