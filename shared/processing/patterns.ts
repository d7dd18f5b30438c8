import { type LateInput, type PatternResult, resultId } from "./results";
import type { PatternProcessorSpec, ProcessorInput } from "./spec";
import type { EngineState, PatternKeyState, PendingA, SeenB } from "./state";
import { slot } from "./state";
import { insertTimer, removeTimer, type Timer } from "./timers";
import { closed } from "./watermark";

/**
 * Patterns per key in event time (ADR 0052). The host gives each input a role, "a" or "b".
 * An "a" at time t matches the "b" inputs of its key with t ≤ b.time < t + withinMs.
 * - Every "a" starts its own match (repeated "a" inputs are not merged) and a "b" is not used up:
 *   it completes every pending "a" it falls after. So results do not depend on arrival order.
 * - `sequence` fires once per "a", with its earliest matching "b" (event time, then arrival),
 *   when the watermark reaches b.time + grace, i.e. when no earlier "b" can still arrive. An "a"
 *   with no "b" by t + within + grace is dropped (counted in `cancelled`).
 * - `absence` fires once per "a" when the watermark reaches t + within + grace with no matching
 *   "b"; a "b" that arrives (even out of order) before then cancels it.
 * - An input whose time + grace ≤ watermark on arrival is late: reported, not matched.
 * "b" inputs are kept until their own time + grace ≤ watermark, while a future "a" could still
 * precede them.
 */

const A_TIMER = 0;

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

function earlier(x: { time: number; arrival: number }, y: { time: number; arrival: number }): boolean {
  return x.time < y.time || (x.time === y.time && x.arrival < y.arrival);
}

function matches(spec: PatternProcessorSpec, a: { time: number }, b: { time: number }): boolean {
  return a.time <= b.time && b.time < a.time + spec.pattern.withinMs;
}

/** Pending "a" timers use ref = 2 × arrival, retained "b" timers 2 × arrival + 1, so both share one key's timer space. */
function aTimer(spec: PatternProcessorSpec, key: string, a: PendingA): Timer {
  const at = a.match !== null ? a.match.time + spec.graceMs : a.time + spec.pattern.withinMs + spec.graceMs;
  return { at, key, ref: 2 * a.arrival + A_TIMER };
}

function bTimer(spec: PatternProcessorSpec, key: string, b: SeenB): Timer {
  return { at: b.time + spec.graceMs, key, ref: 2 * b.arrival + 1 };
}

export function applyPattern(state: EngineState, spec: PatternProcessorSpec, input: ProcessorInput, arrival: number): LateInput | null {
  const time = input.eventTime;
  if (closed(state.time, time + spec.graceMs)) {
    state.counters.late++;
    state.counters.missedWindows++;
    const window = { start: time, end: time + spec.pattern.withinMs };
    return { id: input.id, partition: input.partition, sequence: input.sequence, key: input.key, eventTime: time, windows: [window] };
  }
  const ks = keyState(state, input.key);
  if (input.role === "a") {
    const a: PendingA = { id: input.id, partition: input.partition, sequence: input.sequence, time, arrival, match: null };
    for (const b of ks.bs) if (matches(spec, a, b) && (a.match === null || earlier(b, a.match))) a.match = { ...b };
    if (spec.pattern.type === "absence" && a.match !== null) {
      state.counters.cancelled++;
      dropIfEmpty(state, input.key);
      return null;
    }
    ks.as.push(a);
    insertTimer(state.timers, aTimer(spec, input.key, a));
    return null;
  }
  const b: SeenB = { id: input.id, time, arrival };
  ks.bs.push(b);
  insertTimer(state.timers, bTimer(spec, input.key, b));
  ks.as = ks.as.filter((a) => {
    if (!matches(spec, a, b) || (a.match !== null && !earlier(b, a.match))) return true;
    removeTimer(state.timers, aTimer(spec, input.key, a));
    if (spec.pattern.type === "absence") {
      state.counters.cancelled++;
      return false;
    }
    a.match = { ...b };
    insertTimer(state.timers, aTimer(spec, input.key, a));
    return true;
  });
  return null;
}

/** Handles a due timer: fires or expires an "a", or forgets a "b". */
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
  const deadline = a.time + spec.pattern.withinMs;
  const id = resultId(spec.name, timer.key, a.time, `${a.partition}.${a.sequence}`);
  const matchedA = { id: a.id, eventTime: a.time };
  if (spec.pattern.type === "absence") {
    state.counters.matches++;
    return { id, processor: spec.name, kind: "absence", key: timer.key, a: matchedA, b: null, deadline, causationId: a.id };
  }
  if (a.match === null) {
    state.counters.cancelled++;
    return null;
  }
  state.counters.matches++;
  const matchedB = { id: a.match.id, eventTime: a.match.time };
  return { id, processor: spec.name, kind: "sequence", key: timer.key, a: matchedA, b: matchedB, deadline, causationId: a.match.id };
}
