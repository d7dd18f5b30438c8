import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type AggregateProcessorSpec,
  type PatternProcessorSpec,
  type PatternResult,
  processorSpecSchema,
  type WindowResult,
  type WindowSpec,
} from "../../shared/processing";
import { expectMatches, expectWindows } from "./processing-oracle";
import { buildOps, runWithCrashes, streamArb } from "./processing-streams";

/*
 * Exactly once, against a brute-force oracle (processing-oracle.ts): random streams over several
 * partitions with out-of-order and late event times, redeliveries, idle partitions and crashes
 * that restore the committed state through JSON and redeliver what followed. The committed final
 * results must be exactly the oracle's (windows, keys, every aggregate, causation), each committed
 * once, and the late inputs exactly the oracle's.
 */

const RUNS = 120;

function aggregateSpec(window: WindowSpec, graceMs: number, partitions: number, emit: "final" | "updates"): AggregateProcessorSpec {
  const spec = processorSpecSchema.parse({
    kind: "aggregate",
    name: "prop",
    partitions,
    watermark: { outOfOrdernessMs: 2_000, idleTimeoutMs: 12_000 },
    graceMs,
    window,
    emit,
    aggregates: [
      { name: "count", op: "count" },
      { name: "sum", op: "sum", field: "amount" },
      { name: "min", op: "min", field: "amount" },
      { name: "max", op: "max", field: "amount" },
      { name: "avg", op: "avg", field: "amount" },
      { name: "first", op: "first", field: "customer" },
      { name: "last", op: "last", field: "customer" },
      { name: "customers", op: "distinct", field: "customer" },
    ],
  });
  if (spec.kind !== "aggregate") throw new Error("unreachable");
  return spec;
}

const graceArb = fc.constantFrom(0, 1_500, 4_000);
const emitArb = fc.constantFrom("final" as const, "updates" as const);

function checkWindows(window: WindowSpec) {
  const seen = { redelivered: 0, late: 0, finals: 0, duplicates: 0 };
  fc.assert(
    fc.property(streamArb(60), graceArb, emitArb, ({ partitions, steps, commits, crashes }, grace, emit) => {
      const spec = aggregateSpec(window, grace, partitions, emit);
      const ops = buildOps(partitions, steps, false);
      const run = runWithCrashes(spec, ops, commits, crashes);
      const expected = expectWindows(spec, run.log);

      const results = [...run.output.values()].filter((r): r is WindowResult => r.kind === "window");
      const finals = results.filter((r) => r.emit === "final");
      const actual = finals.map((r) => ({
        id: r.id,
        key: r.key,
        windowStart: r.windowStart,
        windowEnd: r.windowEnd,
        aggregates: r.aggregates,
        causationId: r.causationId,
      }));
      const byId = (x: { id: string }, y: { id: string }) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0);
      expect(actual.sort(byId)).toEqual([...expected.finals].sort(byId));
      expect(finals.every((r) => r.approximate.length === 0)).toBe(true);
      if (emit === "final") expect(results.filter((r) => r.emit === "update")).toEqual([]);
      else
        for (const f of finals) {
          // The final repeats the window's last update.
          const last = run.output.get(f.id.replace(/:final$/, `:r${f.revision}`));
          expect(last === undefined ? undefined : { ...last, id: f.id, emit: "final", supersedes: undefined }).toEqual({
            ...f,
            supersedes: undefined,
          });
        }

      const late = run.late.map((l) => ({ partition: l.partition, sequence: l.sequence, windows: l.windows }));
      expect(late).toEqual(expected.late);
      expect(run.state.counters.late).toBe(expected.late.length);
      expect(run.state.counters.missedWindows).toBe(expected.late.reduce((n, l) => n + l.windows.length, 0));
      expect(run.state.counters.accepted).toBe(expected.replay.accepted.length);
      expect(run.state.counters.duplicates).toBe(expected.replay.duplicates);
      expect(run.state.counters.finals).toBe(finals.length);
      expect(run.state.time.watermark).toBe(expected.replay.watermark);
      seen.redelivered += run.redelivered;
      seen.late += late.length;
      seen.finals += finals.length;
      seen.duplicates += run.state.counters.duplicates;
    }),
    { numRuns: RUNS },
  );
  // The streams must exercise what the property is about: crashes that redeliver, late inputs, redeliveries, closed windows.
  expect(Object.values(seen).every((n) => n > 0)).toBe(true);
}

describe("windowed aggregation is exactly once against a brute-force oracle", () => {
  it("tumbling windows", () => checkWindows({ type: "tumbling", sizeMs: 10_000 }));
  it("hopping windows (an input in several windows, partly late)", () =>
    checkWindows({ type: "hopping", sizeMs: 9_000, advanceMs: 3_000 }));
  it("hopping windows whose size is not a multiple of the advance", () =>
    checkWindows({ type: "hopping", sizeMs: 10_000, advanceMs: 4_000 }));
  it("session windows (merging when an input bridges two)", () => checkWindows({ type: "session", gapMs: 4_000 }));
});

describe("patterns are exactly once against a brute-force oracle", () => {
  for (const type of ["sequence", "absence"] as const) {
    it(`${type}`, () => {
      const seen = { redelivered: 0, late: 0, matches: 0 };
      fc.assert(
        fc.property(streamArb(60), graceArb, ({ partitions, steps, commits, crashes }, grace) => {
          const parsed = processorSpecSchema.parse({
            kind: "pattern",
            name: "pat",
            partitions,
            watermark: { outOfOrdernessMs: 2_000, idleTimeoutMs: 12_000 },
            graceMs: grace,
            pattern: { type, withinMs: 7_000 },
          });
          if (parsed.kind !== "pattern") throw new Error("unreachable");
          const spec: PatternProcessorSpec = parsed;
          const run = runWithCrashes(spec, buildOps(partitions, steps, true), commits, crashes);
          const expected = expectMatches(spec, run.log);
          const results = [...run.output.values()].filter((r): r is PatternResult => r.kind !== "window");
          expect(results).toHaveLength(run.output.size);
          const actual = results.map((r) => ({ key: r.key, a: r.a.id, b: r.b?.id ?? null }));
          const order = (x: { a: string }, y: { a: string }) => (x.a < y.a ? -1 : x.a > y.a ? 1 : 0);
          expect(actual.sort(order)).toEqual([...expected.matches].sort(order));
          expect(results.every((r) => r.kind === type)).toBe(true);
          expect(run.late.map((l) => ({ partition: l.partition, sequence: l.sequence, windows: l.windows }))).toEqual(expected.late);
          expect(run.state.counters.matches).toBe(results.length);
          seen.redelivered += run.redelivered;
          seen.late += expected.late.length;
          seen.matches += results.length;
        }),
        { numRuns: RUNS },
      );
      expect(Object.values(seen).every((n) => n > 0)).toBe(true);
    });
  }
});
