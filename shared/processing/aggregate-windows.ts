import { accumulate, emptyAccumulators, mergeAccumulators, readAggregates } from "./aggregates";
import { type LateInput, resultId, type WindowResult } from "./results";
import type { AggregateProcessorSpec, ProcessorInput } from "./spec";
import type { EngineState, OpenWindow } from "./state";
import { slot } from "./state";
import { insertTimer, removeTimer, type Timer } from "./timers";
import { closed } from "./watermark";
import { fixedWindows, mergeSession, protoSession, type Window } from "./windows";

/**
 * Aggregate processors: windows per key in event time (ADR 0052). Lateness is judged against the
 * watermark as it stood when the input arrived:
 * - tumbling / hopping: an input misses each of its windows whose end + grace ≤ watermark and
 *   joins the others (so a hopping input can be partly late);
 * - session: an input is late when its time + grace ≤ watermark. A session's end is only known
 *   when it closes and an input can extend a session backwards, so judging by the input's own time
 *   is what guarantees that no accepted input ever touches a session that was already emitted.
 * A window closes (its final result, then it is dropped) when end + grace ≤ watermark.
 */

function render(
  state: EngineState,
  spec: AggregateProcessorSpec,
  key: string,
  window: OpenWindow,
  emit: "final" | "update",
  supersedes?: Window[],
): WindowResult {
  const { values, approximate } = readAggregates(window.accs, spec.aggregates);
  const tail = emit === "final" ? "final" : `r${window.revision}`;
  const result: WindowResult = {
    id: resultId(spec.name, key, window.start, tail),
    processor: spec.name,
    kind: "window",
    emit,
    revision: window.revision,
    key,
    windowStart: window.start,
    windowEnd: window.end,
    aggregates: values,
    approximate,
    causationId: window.last.id,
  };
  if (supersedes !== undefined && supersedes.length > 0) result.supersedes = supersedes;
  if (emit === "final") state.counters.finals++;
  else state.counters.updates++;
  return result;
}

function timerOf(spec: AggregateProcessorSpec, key: string, window: Window): Timer {
  return { at: window.end + spec.graceMs, key, ref: window.start };
}

function openWindows(state: EngineState, key: string): OpenWindow[] {
  const existing = state.windows[slot(key)];
  if (existing !== undefined) return existing;
  const created: OpenWindow[] = [];
  state.windows[slot(key)] = created;
  return created;
}

/** Inserts keeping the key's windows sorted by start. */
function insertWindow(windows: OpenWindow[], window: OpenWindow): void {
  let index = windows.length;
  while (index > 0 && (windows[index - 1]?.start ?? Number.NEGATIVE_INFINITY) > window.start) index--;
  windows.splice(index, 0, window);
}

function lateInput(input: ProcessorInput, windows: Window[]): LateInput {
  return { id: input.id, partition: input.partition, sequence: input.sequence, key: input.key, eventTime: input.eventTime, windows };
}

/** Folds one accepted input into its windows; returns the update results (in `updates` mode) and the late record, if any. */
export function applyAggregate(
  state: EngineState,
  spec: AggregateProcessorSpec,
  input: ProcessorInput,
  arrival: number,
): { results: WindowResult[]; late: LateInput | null } {
  const contribution = { value: input.value, stamp: { time: input.eventTime, arrival } };
  const last = { id: input.id, arrival };
  const results: WindowResult[] = [];
  const windows = openWindows(state, input.key);

  if (spec.window.type === "session") {
    const proto = protoSession(input.eventTime, spec.window.gapMs);
    if (closed(state.time, input.eventTime + spec.graceMs)) {
      state.counters.late++;
      state.counters.missedWindows++;
      if (windows.length === 0) delete state.windows[slot(input.key)];
      return { results, late: lateInput(input, [proto]) };
    }
    const { window: merged, absorbed } = mergeSession(windows, input.eventTime, spec.window.gapMs);
    const parts = absorbed.map((i) => windows[i]).filter((w): w is OpenWindow => w !== undefined);
    const accs = emptyAccumulators(spec.aggregates);
    for (const part of parts) {
      mergeAccumulators(accs, part.accs, spec.distinctExactLimit);
      removeTimer(state.timers, timerOf(spec, input.key, part));
    }
    accumulate(accs, spec.aggregates, contribution, spec.distinctExactLimit);
    for (const i of absorbed.reverse()) windows.splice(i, 1);
    const revision = Math.max(0, ...parts.map((p) => p.revision)) + 1;
    const session: OpenWindow = { start: merged.start, end: merged.end, accs, revision, last };
    insertWindow(windows, session);
    insertTimer(state.timers, timerOf(spec, input.key, session));
    if (spec.emit === "updates") {
      const superseded = parts
        .filter((p) => p.start !== session.start || p.end !== session.end)
        .map((p) => ({ start: p.start, end: p.end }));
      results.push(render(state, spec, input.key, session, "update", superseded));
    }
    return { results, late: null };
  }

  const missed: Window[] = [];
  for (const w of fixedWindows(spec.window, input.eventTime)) {
    if (closed(state.time, w.end + spec.graceMs)) {
      missed.push(w);
      continue;
    }
    let open = windows.find((x) => x.start === w.start);
    if (open === undefined) {
      open = { start: w.start, end: w.end, accs: emptyAccumulators(spec.aggregates), revision: 0, last };
      insertWindow(windows, open);
      insertTimer(state.timers, timerOf(spec, input.key, open));
    }
    accumulate(open.accs, spec.aggregates, contribution, spec.distinctExactLimit);
    open.revision++;
    open.last = last;
    if (spec.emit === "updates") results.push(render(state, spec, input.key, open, "update"));
  }
  if (windows.length === 0) delete state.windows[slot(input.key)];
  if (missed.length === 0) return { results, late: null };
  state.counters.late++;
  state.counters.missedWindows += missed.length;
  return { results, late: lateInput(input, missed) };
}

/** Closes the window a due timer names: its final result; the window leaves the state. */
export function fireWindow(state: EngineState, spec: AggregateProcessorSpec, timer: Timer): WindowResult {
  const windows = state.windows[slot(timer.key)];
  const index = windows?.findIndex((w) => w.start === timer.ref) ?? -1;
  const window = windows?.[index];
  if (windows === undefined || window === undefined) throw new Error(`no open window for timer ${JSON.stringify(timer)}`);
  windows.splice(index, 1);
  if (windows.length === 0) delete state.windows[slot(timer.key)];
  return render(state, spec, timer.key, window, "final");
}
