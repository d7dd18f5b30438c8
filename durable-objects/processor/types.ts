import type { ProcessorStatus } from "../../shared/processing";

/** One processor instance as GET /v1/processors/{name}, metrics and health see it. */
export interface InstanceStatus {
  /** The partition of the processor's internal topic this instance processes. */
  instance: number;
  /** That partition's sequence applied through (its lag is the partition's head minus this). */
  applied: number;
  /** The combined watermark (epoch ms; null before any input). */
  watermark: number | null;
  /** Per input partition (of the input topic): checkpoint, watermark, idle. */
  inputs: ProcessorStatus["partitions"];
  /** Open windows (aggregates) or pending "a" events (patterns). */
  openWindows: number;
  keys: number;
  counters: ProcessorStatus["counters"];
  /** Results and late events committed but not yet handed on. */
  pendingOutputs: number;
  /** Results appended by this instance since it was loaded. */
  resultsAppended: number;
  outputPerSecond: number;
  lastOutputError: string | null;
  /** True while it reads its history or its partition back (a new instance, a reset, a gap). */
  catchingUp: boolean;
  /** Its backfill from the input topic while one is under way (ADR 0058): input events read of the total, per input partition the position and the end. */
  backfill: { read: number; total: number; through: number[]; next: number[] } | null;
}
