import type { ProcessorStatus } from "../../shared/processing";
import type { Repartitioned } from "../../shared/processors";
import type { Backfill } from "./backfill";
import type { ProcessorDeadLetter } from "./dead-letters";

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
  /** Its backfill from the input topic while one is under way (ADR 0058): input events read of the total. */
  backfill: { read: number; total: number } | null;
}

/** One internal-topic event: its sequence, and the inputs it carries (ADR 0056). */
export interface Item {
  sequence: number;
  inputs: Repartitioned[];
}

/** A backfill step's work: history inputs, the dead letters found among them, and the backfill's position after them (null: done). */
export interface HistoryStep {
  inputs: Repartitioned[];
  skipped: ProcessorDeadLetter[];
  backfill: Backfill | null;
}

/** Thrown to the partition log's relay: the instance is catching up (a reset, a gap); the relay sends again later. */
export class CatchingUp extends Error {
  override readonly name = "CatchingUp";
}

/** What tests change on one instance; production never touches it. */
export interface ProcessorSeams {
  /** Processing time for the alarm's advance (tests hold it still, then move it). */
  now(): number;
  /** Runs after a step was applied in memory, before its commit (a test throws: a crash before the commit). */
  beforeCommit(): void;
  /** Runs before committed outputs are handed on (a test throws: a crash between the commit and the append). */
  beforeFlush(): Promise<void>;
  /** Forgets everything held in memory, as an eviction or a crash does; storage is kept. */
  forget(): void;
  /** Internal-topic events read per catch-up page (tests shrink it to make several pages of a few events). */
  catchUpPage: number;
  /** Input events a backfill step applies (tests shrink it to make several steps of a few events). */
  backfillStep: number;
}
