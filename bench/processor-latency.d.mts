// Types of bench/processor-latency.mjs, for test/unit/bench-processor.test.ts (the bench itself is plain Node).

export declare const MINUTE_MS: number;

export interface StreamPlan {
  events: number;
  keys: number;
  minutes: number;
  start: number;
  key(i: number): string;
  time(i: number): number;
  tickTime(spec: { outOfOrdernessMs: number; graceMs: number }): number;
}
export declare function streamPlan(args: { events: number; keys: number; minutes: number; start: number }): StreamPlan;
export declare function expectedCounts(plan: StreamPlan): Map<string, number>;

export interface WindowResult {
  key: string;
  windowStart: number;
  windowEnd: number;
  count: number;
  /** Commit time of the result in the output topic (epoch ms). */
  committedAt: number;
}
export interface CountCheck {
  expected: number;
  results: number;
  missing: number;
  wrongCount: number;
  unexpected: number;
  duplicates: number;
  exact: boolean;
}
export declare function checkCounts(results: Omit<WindowResult, "windowEnd" | "committedAt">[], expected: Map<string, number>): CountCheck;

export interface InternalInput {
  /** Sequence in the internal topic (the order the instance applies its inputs). */
  sequence: number;
  /** The input topic's partition and the input's commit there (the engine's receivedTime). */
  partition: number;
  committedAt: number;
  eventTime: number;
  /** Commit time in the internal topic. */
  internalCommittedAt: number;
}
export interface WatermarkMove {
  watermark: number;
  sequence: number;
  inputCommittedAt: number;
  internalCommittedAt: number;
}
export declare function replayWatermark(
  inputs: InternalInput[],
  spec: { partitions: number; outOfOrdernessMs: number; idleTimeoutMs: number },
): WatermarkMove[];
export declare function firstMoveReaching(moves: WatermarkMove[], at: number): WatermarkMove | undefined;
export declare function percentile(values: number[], p: number): number | null;

export interface LatencySummary {
  samples: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
}
export declare function watermarkLatencies(
  results: WindowResult[],
  movesByInstance: Map<number, WatermarkMove[]>,
  instanceOfKey: Map<string, number>,
  graceMs: number,
): { fromInput: LatencySummary; fromInternal: LatencySummary; closedByAlarm: number; unknownKey: number };
