import type { WatermarkSpec } from "./spec";

/**
 * Watermarks in event time (ADR 0052). Per input partition: max event time seen −
 * `outOfOrdernessMs` (none yet: −∞, written null). Combined: the minimum over the partitions that
 * are not idle; a partition is idle when the processing-time clock is more than `idleTimeoutMs`
 * past its last input (a partition that never delivered counts from the clock's first reading).
 * When every partition is idle the combined watermark is the maximum of theirs: nothing can hold
 * it back, and windows that hold data close; with `whenIdle: "clock"` it also follows processing
 * time then (clock − out-of-orderness), so a stream gone quiet still closes its windows and
 * absences (ADR 0057). The combined watermark never moves back: a partition
 * that wakes up behind it delivers late events rather than reopening closed windows.
 *
 * The processing-time clock only moves forward, by `advance(now)` and by inputs' `receivedTime`,
 * so replaying the same inputs and ticks gives the same watermarks.
 */

export interface PartitionState {
  /** Highest sequence accepted from this partition (inputs at or below it are redeliveries). */
  checkpoint: number | null;
  maxEventTime: number | null;
  /** Processing time of the partition's last input. */
  lastActivity: number | null;
}

export interface WatermarkState {
  /** Processing-time clock: the highest `now` / `receivedTime` seen. */
  clock: number | null;
  /** The clock's first reading: when partitions that never delivered started counting towards idleness. */
  startedAt: number | null;
  /** The combined watermark (null: −∞, nothing may close yet). */
  watermark: number | null;
  partitions: PartitionState[];
}

export function createWatermarkState(partitions: number): WatermarkState {
  return {
    clock: null,
    startedAt: null,
    watermark: null,
    partitions: Array.from({ length: partitions }, () => ({ checkpoint: null, maxEventTime: null, lastActivity: null })),
  };
}

/** Moves the processing-time clock forward (never back). */
export function observeClock(state: WatermarkState, now: number): void {
  if (state.clock === null || now > state.clock) state.clock = now;
  if (state.startedAt === null) state.startedAt = now;
}

/** Records an accepted input of `partition` at the current clock. */
export function observeEvent(state: WatermarkState, partition: PartitionState, eventTime: number): void {
  if (partition.maxEventTime === null || eventTime > partition.maxEventTime) partition.maxEventTime = eventTime;
  partition.lastActivity = state.clock;
}

export function partitionWatermark(partition: PartitionState, spec: WatermarkSpec): number | null {
  return partition.maxEventTime === null ? null : partition.maxEventTime - spec.outOfOrdernessMs;
}

/** When the partition turns idle (the first clock reading at which it is idle), or null before the clock starts. */
export function idleAt(state: WatermarkState, partition: PartitionState, spec: WatermarkSpec): number | null {
  const since = partition.lastActivity ?? state.startedAt;
  return since === null ? null : since + spec.idleTimeoutMs + 1;
}

export function isIdle(state: WatermarkState, partition: PartitionState, spec: WatermarkSpec): boolean {
  const at = idleAt(state, partition, spec);
  return at !== null && state.clock !== null && state.clock >= at;
}

/** The combined watermark the partitions give now, before the never-back rule. */
export function candidateWatermark(state: WatermarkState, spec: WatermarkSpec): number | null {
  const active = state.partitions.filter((p) => !isIdle(state, p, spec));
  if (active.length > 0) {
    let min: number | null = Number.POSITIVE_INFINITY;
    for (const p of active) {
      const w = partitionWatermark(p, spec);
      if (w === null) return null;
      min = Math.min(min, w);
    }
    return min;
  }
  let max: number | null = null;
  for (const p of state.partitions) {
    const w = partitionWatermark(p, spec);
    if (w !== null && (max === null || w > max)) max = w;
  }
  // Every input is idle: with whenIdle "clock", event time follows processing time (ADR 0057).
  if (spec.whenIdle === "clock" && state.clock !== null) {
    const followed = state.clock - spec.outOfOrdernessMs;
    if (max === null || followed > max) max = followed;
  }
  return max;
}

/** When every partition is idle (the latest of their idle times), or null before the clock starts. */
export function allIdleAt(state: WatermarkState, spec: WatermarkSpec): number | null {
  let latest: number | null = null;
  for (const p of state.partitions) {
    const at = idleAt(state, p, spec);
    if (at === null) return null;
    if (latest === null || at > latest) latest = at;
  }
  return latest;
}

/** Recomputes the combined watermark; returns true when it moved forward. */
export function updateWatermark(state: WatermarkState, spec: WatermarkSpec): boolean {
  const candidate = candidateWatermark(state, spec);
  if (candidate === null || (state.watermark !== null && candidate <= state.watermark)) return false;
  state.watermark = candidate;
  return true;
}

/** The next processing time at which a partition that is active now turns idle (for the host's alarm), or null. */
export function nextIdleAt(state: WatermarkState, spec: WatermarkSpec): number | null {
  let next: number | null = null;
  for (const p of state.partitions) {
    if (isIdle(state, p, spec)) continue;
    const at = idleAt(state, p, spec);
    if (at !== null && (next === null || at < next)) next = at;
  }
  return next;
}

/** True when an item that closes at `closesAt` (window end + grace, or time + grace) has closed under the watermark. */
export function closed(state: WatermarkState, closesAt: number): boolean {
  return state.watermark !== null && closesAt <= state.watermark;
}
