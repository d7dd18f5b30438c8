import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type AggregateSpec,
  accumulate,
  apply,
  createState,
  emptyAccumulators,
  estimateDistinct,
  mergeAccumulators,
  readAggregates,
  type Scalar,
} from "../../shared/processing";

/* Accumulators: each op (table), merge = fold of both (property), JSON round trips, and the distinct-count bound. */

const SPECS: AggregateSpec[] = [
  { name: "n", op: "count" },
  { name: "sum", op: "sum", field: "x" },
  { name: "min", op: "min", field: "x" },
  { name: "max", op: "max", field: "x" },
  { name: "avg", op: "avg", field: "x" },
  { name: "first", op: "first", field: "y" },
  { name: "last", op: "last", field: "y" },
  { name: "distinct", op: "distinct", field: "y" },
];

type Row = { time: number; value?: Record<string, Scalar> };

function fold(rows: readonly Row[], limit = 10_000, offset = 0) {
  const accs = emptyAccumulators(SPECS);
  rows.forEach((row, i) => {
    accumulate(accs, SPECS, { value: row.value, stamp: { time: row.time, arrival: offset + i } }, limit);
  });
  return accs;
}

describe("aggregates (table)", () => {
  it.each<[string, Row[], Record<string, Scalar>]>([
    [
      "nothing numeric: sum 0, the rest null",
      [{ time: 1 }],
      { n: 1, sum: 0, min: null, max: null, avg: null, first: null, last: null, distinct: 0 },
    ],
    [
      "numbers",
      [
        { time: 5, value: { x: 3, y: "b" } },
        { time: 1, value: { x: -2, y: "a" } },
        { time: 9, value: { x: 8, y: "c" } },
      ],
      { n: 3, sum: 9, min: -2, max: 8, avg: 3, first: "a", last: "c", distinct: 3 },
    ],
    [
      "missing, non-numeric and null fields are skipped by the numeric ops",
      [
        { time: 1, value: { x: "7", y: null } },
        { time: 2, value: { x: null } },
        { time: 3, value: { x: 4 } },
        { time: 4, value: {} },
      ],
      { n: 4, sum: 4, min: 4, max: 4, avg: 4, first: null, last: null, distinct: 1 },
    ],
    [
      "first/last: ties in event time go by arrival (first keeps the earlier, last takes the later)",
      [
        { time: 5, value: { y: "p" } },
        { time: 5, value: { y: "q" } },
        { time: 5, value: { y: "r" } },
      ],
      { n: 3, sum: 0, min: null, max: null, avg: null, first: "p", last: "r", distinct: 3 },
    ],
    [
      "first/last by event time, not arrival; a present null counts as a value",
      [
        { time: 9, value: { y: "late-arriving-but-latest" } },
        { time: 2, value: { y: null } },
        { time: 3, value: { y: "mid" } },
      ],
      { n: 3, sum: 0, min: null, max: null, avg: null, first: null, last: "late-arriving-but-latest", distinct: 3 },
    ],
    [
      'distinct tells 1 from "1" and true from "true"',
      [
        { time: 1, value: { y: 1 } },
        { time: 2, value: { y: "1" } },
        { time: 3, value: { y: true } },
        { time: 4, value: { y: "true" } },
        { time: 5, value: { y: 1 } },
      ],
      { n: 5, sum: 0, min: null, max: null, avg: null, first: 1, last: 1, distinct: 4 },
    ],
  ])("%s", (_, rows, expected) => {
    expect(readAggregates(fold(rows), SPECS)).toEqual({ values: expected, approximate: [] });
  });

  it("an input value named __proto__ is an ordinary field", () => {
    const specs: AggregateSpec[] = [{ name: "s", op: "sum", field: "__proto__" }];
    const accs = emptyAccumulators(specs);
    const value = JSON.parse('{"__proto__": 5}') as Record<string, Scalar>;
    accumulate(accs, specs, { value, stamp: { time: 0, arrival: 0 } }, 10);
    expect(readAggregates(accs, specs).values).toEqual({ s: 5 });
  });
});

describe("merge", () => {
  const rowArb = fc.record({
    time: fc.integer({ min: 0, max: 20 }),
    value: fc.record(
      { x: fc.oneof(fc.integer({ min: -100, max: 100 }), fc.constant(null)), y: fc.constantFrom("a", "b", "c", 1, null) },
      { requiredKeys: [] },
    ),
  });

  it("merging two windows' accumulators equals folding all their inputs (and survives JSON)", () => {
    fc.assert(
      fc.property(fc.array(rowArb, { maxLength: 30 }), fc.array(rowArb, { maxLength: 30 }), fc.boolean(), (left, right, swap) => {
        const whole = fold([...left, ...right]);
        const a = JSON.parse(JSON.stringify(fold(left)));
        const b = JSON.parse(JSON.stringify(fold(right, 10_000, left.length)));
        const [target, source] = swap ? [b, a] : [a, b];
        mergeAccumulators(target, source, 10_000);
        expect(readAggregates(target, SPECS)).toEqual(readAggregates(whole, SPECS));
      }),
      { numRuns: 300 },
    );
  });
});

describe("distinct count: exact up to the bound, then a HyperLogLog estimate", () => {
  const specs: AggregateSpec[] = [{ name: "users", op: "distinct", field: "u" }];
  const addAll = (accs: ReturnType<typeof emptyAccumulators>, from: number, to: number, limit: number) => {
    for (let i = from; i < to; i++) accumulate(accs, specs, { value: { u: `user-${i}` }, stamp: { time: i, arrival: i } }, limit);
  };

  it("is exact at the default bound of 10,000 values and reports an estimate past it", () => {
    const accs = emptyAccumulators(specs);
    addAll(accs, 0, 10_000, 10_000);
    addAll(accs, 0, 10_000, 10_000); // repeats change nothing
    expect(readAggregates(accs, specs)).toEqual({ values: { users: 10_000 }, approximate: [] });
    addAll(accs, 10_000, 10_001, 10_000);
    const past = readAggregates(accs, specs);
    expect(past.approximate).toEqual(["users"]);
    expect(Math.abs((past.values.users as number) - 10_001) / 10_001).toBeLessThan(0.049);
  });

  it.each([20_000, 50_000, 200_000])("estimates %i distinct values within the documented ±4.9 %%", (n) => {
    const accs = emptyAccumulators(specs);
    addAll(accs, 0, n, 1_000);
    const { values, approximate } = readAggregates(accs, specs);
    expect(approximate).toEqual(["users"]);
    expect(Math.abs((values.users as number) - n) / n).toBeLessThan(0.049);
  });

  it("an estimate stays one (4 KiB of registers) and merges register-wise with sets and other estimates", () => {
    const a = emptyAccumulators(specs);
    addAll(a, 0, 30_000, 1_000);
    const b = emptyAccumulators(specs);
    addAll(b, 20_000, 50_000, 1_000);
    const c = emptyAccumulators(specs);
    addAll(c, 49_000, 49_500, 1_000);
    expect(readAggregates(c, specs).approximate).toEqual([]);
    const merged = JSON.parse(JSON.stringify(a));
    mergeAccumulators(merged, JSON.parse(JSON.stringify(b)), 1_000);
    mergeAccumulators(merged, c, 1_000);
    const whole = emptyAccumulators(specs);
    addAll(whole, 0, 50_000, 1_000);
    expect(readAggregates(merged, specs)).toEqual(readAggregates(whole, specs));
    expect(JSON.stringify(merged).length).toBeLessThan(4_200);
  });

  it("two exact sets whose union passes the bound merge into an estimate", () => {
    const a = emptyAccumulators(specs);
    addAll(a, 0, 700, 1_000);
    const b = emptyAccumulators(specs);
    addAll(b, 500, 1_200, 1_000);
    mergeAccumulators(a, b, 1_000);
    const { values, approximate } = readAggregates(a, specs);
    expect(approximate).toEqual(["users"]);
    expect(Math.abs((values.users as number) - 1_200) / 1_200).toBeLessThan(0.049);
  });

  it("an empty estimate reads 0", () => {
    expect(estimateDistinct("0".repeat(4096))).toBe(0);
  });

  it("the engine reports the estimate in the window result", () => {
    let state = createState({
      kind: "aggregate",
      name: "uniques",
      partitions: 1,
      watermark: { outOfOrdernessMs: 0, idleTimeoutMs: 1_000 },
      graceMs: 0,
      window: { type: "tumbling", sizeMs: 1_000 },
      emit: "final",
      distinctExactLimit: 3,
      aggregates: [{ name: "users", op: "distinct", field: "u" }],
    });
    const users = ["a", "b", "c", "d", "e"];
    users.forEach((u, i) => {
      state = apply(state, { partition: 0, sequence: i, id: `e${i}`, key: "k", eventTime: 10 + i, receivedTime: 0, value: { u } }).state;
    });
    const { results } = apply(state, { partition: 0, sequence: 9, id: "tick", key: "k", eventTime: 5_000, receivedTime: 0 });
    expect(results).toMatchObject([{ kind: "window", windowStart: 0, aggregates: { users: 5 }, approximate: ["users"] }]);
  });
});
