import { applyAggregate, fireWindow } from "./aggregate-windows";
import { applyPattern, firePattern } from "./patterns";
import type { LateInput, ProcessorResult } from "./results";
import { type ProcessorInput, type ProcessorSpec, type ProcessorSpecInput, processorSpecSchema } from "./spec";
import type { EngineState } from "./state";
import { takeDue } from "./timers";
import {
  allIdleAt,
  createWatermarkState,
  isIdle,
  nextIdleAt,
  observeClock,
  observeEvent,
  partitionWatermark,
  updateWatermark,
} from "./watermark";

/**
 * The processing engine (ADR 0052): a deterministic state machine for one processor instance.
 * No I/O and no clock: processing time comes in as `receivedTime` and `advance(now)`. The state is
 * plain JSON. `apply` and `advance` update the state they are given in place (copying it per
 * input would cost O(state)) and return it; a host keeps the serialized state it committed, which
 * is what it restores after a crash anyway.
 *
 * Exactly once: each partition's highest accepted sequence is part of the state, so an input at
 * or below it is a redelivery and changes nothing. Storing the state and the results of the same
 * step in one transaction (an outbox), then appending the results under their deterministic ids,
 * gives each result once.
 */

export interface ApplyOutcome {
  state: EngineState;
  /** Results in emission order: what the input itself produced (updates, sequence matches), then whatever the watermark closed. */
  results: ProcessorResult[];
  /** The input, if it missed any of its windows (it is counted in `state.counters.late`). */
  late: LateInput[];
  /** True when the input was a redelivery (sequence ≤ the partition's checkpoint) and changed nothing. */
  duplicate: boolean;
}

export interface AdvanceOutcome {
  state: EngineState;
  results: ProcessorResult[];
}

/** Thrown for an input the host must never send (a contract violation, not an event to dead-letter). */
export class ProcessingInputError extends Error {
  override readonly name = "ProcessingInputError";
}

export function createState(declared: ProcessorSpec | ProcessorSpecInput): EngineState {
  const spec = processorSpecSchema.parse(declared);
  return {
    version: 1,
    spec,
    time: createWatermarkState(spec.partitions),
    arrivals: 0,
    counters: { accepted: 0, duplicates: 0, late: 0, missedWindows: 0, finals: 0, updates: 0, matches: 0, cancelled: 0 },
    timers: [],
    windows: {},
    patterns: {},
  };
}

function check(state: EngineState, input: ProcessorInput): void {
  const { spec } = state;
  const ints = [input.partition, input.sequence, input.eventTime, input.receivedTime];
  if (!ints.every(Number.isSafeInteger))
    throw new ProcessingInputError("partition, sequence, eventTime and receivedTime must be safe integers");
  if (input.partition < 0 || input.partition >= spec.partitions)
    throw new ProcessingInputError(`partition ${input.partition} is outside 0…${spec.partitions - 1}`);
  if (spec.kind === "pattern" && input.role !== "a" && input.role !== "b")
    throw new ProcessingInputError('a pattern processor needs each input\'s role ("a" or "b")');
}

/** Closes whatever the watermark has passed, in timer order. */
function fireDue(state: EngineState): ProcessorResult[] {
  const results: ProcessorResult[] = [];
  const { spec } = state;
  for (const timer of takeDue(state.timers, state.time.watermark)) {
    if (spec.kind === "aggregate") results.push(fireWindow(state, spec, timer));
    else {
      const result = firePattern(state, spec, timer);
      if (result !== null) results.push(result);
    }
  }
  return results;
}

/** Applies one input. A redelivery (sequence ≤ checkpoint of its partition) is a no-op. */
export function apply(state: EngineState, input: ProcessorInput): ApplyOutcome {
  check(state, input);
  const partition = state.time.partitions[input.partition];
  if (partition === undefined) throw new ProcessingInputError(`partition ${input.partition} unknown`);
  if (partition.checkpoint !== null && input.sequence <= partition.checkpoint) {
    state.counters.duplicates++;
    return { state, results: [], late: [], duplicate: true };
  }
  partition.checkpoint = input.sequence;
  observeClock(state.time, input.receivedTime);
  const arrival = state.arrivals++;
  state.counters.accepted++;

  // Lateness is judged against the watermark as it stood before this input.
  const { spec } = state;
  const results: ProcessorResult[] = [];
  const late: LateInput[] = [];
  if (spec.kind === "aggregate") {
    const outcome = applyAggregate(state, spec, input, arrival);
    results.push(...outcome.results);
    if (outcome.late !== null) late.push(outcome.late);
  } else {
    const outcome = applyPattern(state, spec, input, arrival);
    results.push(...outcome.results);
    if (outcome.late !== null) late.push(outcome.late);
  }

  observeEvent(state.time, partition, input.eventTime);
  if (updateWatermark(state.time, spec.watermark)) results.push(...fireDue(state));
  return { state, results, late, duplicate: false };
}

/** Moves processing time to `now` (idle partitions drop out of the watermark) and fires what that closes. */
export function advance(state: EngineState, now: number): AdvanceOutcome {
  if (!Number.isSafeInteger(now)) throw new ProcessingInputError("now must be a safe integer of epoch milliseconds");
  observeClock(state.time, now);
  const results = updateWatermark(state.time, state.spec.watermark) ? fireDue(state) : [];
  return { state, results };
}

/**
 * When the host should call `advance` next (a partition turns idle then; with whenIdle "clock", also when
 * clock − out-of-orderness reaches the first timer once all are idle), or null when nothing is waiting on processing time.
 */
export function nextWakeup(state: EngineState): number | null {
  const first = state.timers[0];
  if (first === undefined) return null;
  const idle = nextIdleAt(state.time, state.spec.watermark);
  if (state.spec.watermark.whenIdle !== "clock") return idle;
  // Following the clock: the first timer fires once every input is idle and clock − out-of-orderness reaches it.
  const allIdle = allIdleAt(state.time, state.spec.watermark);
  if (allIdle === null) return idle;
  const follow = Math.max(allIdle, first.at + state.spec.watermark.outOfOrdernessMs);
  return idle === null ? follow : Math.min(idle, follow);
}

export interface ProcessorStatus {
  watermark: number | null;
  partitions: Array<{ partition: number; checkpoint: number | null; watermark: number | null; idle: boolean }>;
  /** Open windows (aggregate) or pending "a" inputs (pattern). */
  open: number;
  keys: number;
  counters: EngineState["counters"];
}

/** What metrics, health and the processors API show about an instance. */
export function status(state: EngineState): ProcessorStatus {
  const { spec, time } = state;
  const slots = spec.kind === "aggregate" ? state.windows : state.patterns;
  let open = 0;
  for (const name of Object.keys(slots)) {
    open += spec.kind === "aggregate" ? (state.windows[name]?.length ?? 0) : (state.patterns[name]?.as.length ?? 0);
  }
  return {
    watermark: time.watermark,
    partitions: time.partitions.map((p, partition) => ({
      partition,
      checkpoint: p.checkpoint,
      watermark: partitionWatermark(p, spec.watermark),
      idle: isIdle(time, p, spec.watermark),
    })),
    open,
    keys: Object.keys(slots).length,
    counters: { ...state.counters },
  };
}
