import { type LateInput, type PatternResult, resultId } from "./results";
import type { PatternProcessorSpec, ProcessorInput } from "./spec";
import type { EngineState, PatternKeyState, PendingA, SeenB } from "./state";
import { slot } from "./state";
import { insertTimer, removeTimer, type Timer } from "./timers";
import { closed } from "./watermark";

/**
 * Patterns per key in event time (ADR 0052). The host gives each input a role, "a" or "b". An "a"
 * at time t opens its match window [t, t + within), which closes when the watermark reaches
 * t + within + grace; a "b" matches the "a" inputs of its key whose window holds its time.
 * - Lateness, as for windows: an "a" is late when its window has closed on arrival; a "b" when
 *   every window it could fall in has (b.time + within + grace ≤ watermark). So a "b" that is out
 *   of order, even far behind the watermark, still counts while the "a" it answers is pending.
 * - Every "a" starts its own match (repeated "a" inputs are not merged) and a "b" is not used up:
 *   it answers every pending "a" whose window holds it.
 * - `sequence` fires as soon as an "a" and a "b" of its window have both arrived: with the
 *   earliest (event time, then arrival) of the "b" inputs already there when the "a" arrives,
 *   else with the first "b" to arrive after it. An "a" whose window closes unanswered is dropped
 *   (counted in `cancelled`).
 * - `absence` fires when the watermark closes an "a"'s window and no "b" arrived for it;
 *   a "b" arriving before then (in any order) cancels it (counted in `cancelled`).
 * "b" inputs are kept until no "a" that could still arrive on time could match them.
 */

function keyState(state: EngineState, key: string): PatternKeyState {
  const existing = state.patterns[slot(key)];
  if (existing !== undefined) return existing;
  const created: PatternKeyState = { as: [], bs: [] };
  state.patterns[slot(key)] = created;
  return created;
}

function dropIfEmpty(state: EngineState, key: string): void {
  const s = state.patterns[slot(key)];
  if (s !== undefined && s.as.length === 0 && s.bs.length === 0) delete state.patterns[slot(key)];
}

function earlier(x: SeenB, y: SeenB): boolean {
  return x.time < y.time || (x.time === y.time && x.arrival < y.arrival);
}

function matches(spec: PatternProcessorSpec, a: { time: number }, b: { time: number }): boolean {
  return a.time <= b.time && b.time < a.time + spec.pattern.withinMs;
}

/** "a" timers use ref = 2 × arrival, "b" timers 2 × arrival + 1: one key's timers never collide. */
function aTimer(spec: PatternProcessorSpec, key: string, a: PendingA): Timer {
  return { at: a.time + spec.pattern.withinMs + spec.graceMs, key, ref: 2 * a.arrival };
}

function bTimer(spec: PatternProcessorSpec, key: string, b: SeenB): Timer {
  return { at: b.time + spec.pattern.withinMs + spec.graceMs, key, ref: 2 * b.arrival + 1 };
}

function result(
  state: EngineState,
  spec: PatternProcessorSpec,
  key: string,
  a: PendingA,
  b: SeenB | null,
  causationId: string,
): PatternResult {
  state.counters.matches++;
  return {
    id: resultId(spec.name, key, a.time, `${a.partition}.${a.sequence}`),
    processor: spec.name,
    kind: b === null ? "absence" : "sequence",
    key,
    a: { id: a.id, eventTime: a.time },
    b: b === null ? null : { id: b.id, eventTime: b.time },
    deadline: a.time + spec.pattern.withinMs,
    causationId,
  };
}

/** Folds one accepted input in; returns the sequence matches it completes and its late record, if any. */
export function applyPattern(
  state: EngineState,
  spec: PatternProcessorSpec,
  input: ProcessorInput,
  arrival: number,
): { results: PatternResult[]; late: LateInput | null } {
  const time = input.eventTime;
  const { withinMs } = spec.pattern;
  if (closed(state.time, time + withinMs + spec.graceMs)) {
    state.counters.late++;
    state.counters.missedWindows++;
    const windows = [{ start: time, end: time + withinMs }];
    return {
      results: [],
      late: { id: input.id, partition: input.partition, sequence: input.sequence, key: input.key, eventTime: time, windows },
    };
  }
  const ks = keyState(state, input.key);
  if (input.role === "a") {
    const a: PendingA = { id: input.id, partition: input.partition, sequence: input.sequence, time, arrival };
    let answer: SeenB | null = null;
    for (const b of ks.bs) if (matches(spec, a, b) && (answer === null || earlier(b, answer))) answer = b;
    if (answer === null) {
      ks.as.push(a);
      insertTimer(state.timers, aTimer(spec, input.key, a));
      return { results: [], late: null };
    }
    if (spec.pattern.type === "absence") {
      state.counters.cancelled++;
      return { results: [], late: null };
    }
    return { results: [result(state, spec, input.key, a, answer, a.id)], late: null };
  }
  const b: SeenB = { id: input.id, time, arrival };
  ks.bs.push(b);
  insertTimer(state.timers, bTimer(spec, input.key, b));
  const results: PatternResult[] = [];
  ks.as = ks.as.filter((a) => {
    if (!matches(spec, a, b)) return true;
    removeTimer(state.timers, aTimer(spec, input.key, a));
    if (spec.pattern.type === "absence") state.counters.cancelled++;
    else results.push(result(state, spec, input.key, a, b, b.id));
    return false;
  });
  return { results, late: null };
}

/** Handles a due timer: an "a" whose window closed (absence fires, sequence expires) or a "b" no longer needed. */
export function firePattern(state: EngineState, spec: PatternProcessorSpec, timer: Timer): PatternResult | null {
  const ks = state.patterns[slot(timer.key)];
  if (ks === undefined) throw new Error(`no pattern state for timer ${JSON.stringify(timer)}`);
  const arrival = Math.floor(timer.ref / 2);
  if (timer.ref % 2 === 1) {
    ks.bs = ks.bs.filter((b) => b.arrival !== arrival);
    dropIfEmpty(state, timer.key);
    return null;
  }
  const a = ks.as.find((x) => x.arrival === arrival);
  if (a === undefined) throw new Error(`no pending input for timer ${JSON.stringify(timer)}`);
  ks.as = ks.as.filter((x) => x !== a);
  dropIfEmpty(state, timer.key);
  if (spec.pattern.type === "sequence") {
    state.counters.cancelled++;
    return null;
  }
  return result(state, spec, timer.key, a, null, a.id);
}
