import { addDistinct, type DistinctAcc, emptyDistinct, mergeDistinct, readDistinct } from "./distinct";
import type { AggregateSpec, Scalar } from "./spec";

/**
 * Mergeable, JSON-serializable accumulators (ADR 0052). One accumulator per declared aggregate,
 * in declaration order. Rules, chosen to match SQL where SQL has one:
 * - `count` counts the window's events.
 * - `sum`, `min`, `max`, `avg` read finite numbers only; an event whose field is missing or not a
 *   number is skipped (SQL's NULL). `sum` of nothing is 0; `min`, `max`, `avg` of nothing are null.
 *   Sums are float64: exact for integers up to 2^53 (use minor units for money).
 * - `first` / `last` keep the field's value of the earliest / latest event by event time that has
 *   the field (any scalar, null included); ties in event time go by arrival order (the order the
 *   processor accepted the inputs), so first takes the earlier arrival and last the later one.
 * - `distinct` counts distinct scalars (1 and "1" differ): exact up to the processor's bound, then
 *   a HyperLogLog estimate (distinct.ts).
 */

/** An event's position for first/last: event time, then arrival order. */
export interface Stamp {
  time: number;
  arrival: number;
}

export type Acc =
  | { k: "count"; n: number }
  | { k: "sum"; sum: number }
  | { k: "min" | "max"; v: number | null }
  | { k: "avg"; sum: number; n: number }
  | { k: "first" | "last"; v: Scalar; at: Stamp | null }
  | DistinctAcc;

/** What the aggregates read off one input. */
export interface Contribution {
  value: Readonly<Record<string, Scalar>> | undefined;
  stamp: Stamp;
}

const EMPTY: { [Op in AggregateSpec["op"]]: () => Acc } = {
  count: () => ({ k: "count", n: 0 }),
  sum: () => ({ k: "sum", sum: 0 }),
  min: () => ({ k: "min", v: null }),
  max: () => ({ k: "max", v: null }),
  avg: () => ({ k: "avg", sum: 0, n: 0 }),
  first: () => ({ k: "first", v: null, at: null }),
  last: () => ({ k: "last", v: null, at: null }),
  distinct: emptyDistinct,
};

export function emptyAccumulators(specs: readonly AggregateSpec[]): Acc[] {
  return specs.map((spec) => EMPTY[spec.op]());
}

function before(a: Stamp, b: Stamp): boolean {
  return a.time < b.time || (a.time === b.time && a.arrival < b.arrival);
}

function field(contribution: Contribution, spec: AggregateSpec): Scalar | undefined {
  const value = contribution.value;
  if (spec.field === undefined || value === undefined || !Object.hasOwn(value, spec.field)) return undefined;
  return value[spec.field];
}

function finite(x: Scalar | undefined): x is number {
  return typeof x === "number" && Number.isFinite(x);
}

/** Folds one input into the accumulators (in place). */
export function accumulate(accs: Acc[], specs: readonly AggregateSpec[], contribution: Contribution, distinctLimit: number): void {
  specs.forEach((spec, i) => {
    const acc = accs[i];
    if (acc === undefined) throw new Error(`accumulator ${i} missing`);
    const x = field(contribution, spec);
    switch (acc.k) {
      case "count":
        acc.n++;
        return;
      case "sum":
        if (finite(x)) acc.sum += x;
        return;
      case "avg":
        if (finite(x)) {
          acc.sum += x;
          acc.n++;
        }
        return;
      case "min":
        if (finite(x) && (acc.v === null || x < acc.v)) acc.v = x;
        return;
      case "max":
        if (finite(x) && (acc.v === null || x > acc.v)) acc.v = x;
        return;
      case "first":
      case "last": {
        if (x === undefined) return;
        const wins = acc.at === null || (acc.k === "first" ? before(contribution.stamp, acc.at) : before(acc.at, contribution.stamp));
        if (wins) {
          acc.v = x;
          acc.at = { ...contribution.stamp };
        }
        return;
      }
      case "distinct":
        if (x !== undefined) addDistinct(acc, x, distinctLimit);
        return;
    }
  });
}

/** Merges `source` into `target` (in place); the result is what folding both windows' inputs into one gives. */
export function mergeAccumulators(target: Acc[], source: readonly Acc[], distinctLimit: number): void {
  target.forEach((t, i) => {
    const s = source[i];
    if (s === undefined || s.k !== t.k) throw new Error(`accumulator ${i} does not match`);
    switch (t.k) {
      case "count":
        if (s.k === "count") t.n += s.n;
        return;
      case "sum":
        if (s.k === "sum") t.sum += s.sum;
        return;
      case "avg":
        if (s.k === "avg") {
          t.sum += s.sum;
          t.n += s.n;
        }
        return;
      case "min":
      case "max":
        if ((s.k === "min" || s.k === "max") && s.v !== null && (t.v === null || (t.k === "min" ? s.v < t.v : s.v > t.v))) t.v = s.v;
        return;
      case "first":
      case "last":
        if ((s.k === "first" || s.k === "last") && s.at !== null) {
          const wins = t.at === null || (t.k === "first" ? before(s.at, t.at) : before(t.at, s.at));
          if (wins) {
            t.v = s.v;
            t.at = { ...s.at };
          }
        }
        return;
      case "distinct":
        if (s.k === "distinct") mergeDistinct(t, s, distinctLimit);
        return;
    }
  });
}

/** The aggregates' values by name, and the names whose value is an estimate. */
export function readAggregates(
  accs: readonly Acc[],
  specs: readonly AggregateSpec[],
): { values: Record<string, Scalar>; approximate: string[] } {
  const values: Record<string, Scalar> = {};
  const approximate: string[] = [];
  specs.forEach((spec, i) => {
    const acc = accs[i];
    if (acc === undefined) throw new Error(`accumulator ${i} missing`);
    switch (acc.k) {
      case "count":
        values[spec.name] = acc.n;
        return;
      case "sum":
        values[spec.name] = acc.sum;
        return;
      case "avg":
        values[spec.name] = acc.n === 0 ? null : acc.sum / acc.n;
        return;
      case "min":
      case "max":
      case "first":
      case "last":
        values[spec.name] = acc.v;
        return;
      case "distinct": {
        const { value, approximate: estimated } = readDistinct(acc);
        values[spec.name] = value;
        if (estimated) approximate.push(spec.name);
        return;
      }
    }
  });
  return { values, approximate };
}
