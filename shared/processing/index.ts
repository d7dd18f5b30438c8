/**
 * Stream processing (issue 21, ADR 0052): a pure, deterministic engine for windowed aggregations
 * and patterns in event time, with JSON state that carries its own input checkpoints. Hosting
 * (a Durable Object fed like a subscription), configuration and routes are built on top of it.
 */
export { type Acc, accumulate, emptyAccumulators, mergeAccumulators, readAggregates } from "./aggregates";
export { estimate as estimateDistinct, HLL_PRECISION } from "./distinct";
export {
  type AdvanceOutcome,
  type ApplyOutcome,
  advance,
  apply,
  createState,
  nextWakeup,
  ProcessingInputError,
  type ProcessorStatus,
  status,
} from "./engine";
export type { LateInput, MatchedInput, PatternResult, ProcessorResult, WindowResult } from "./results";
export {
  type AggregateProcessorSpec,
  type AggregateSpec,
  DEFAULT_DISTINCT_EXACT_LIMIT,
  MAX_WINDOWS_PER_EVENT,
  type PatternProcessorSpec,
  type ProcessorInput,
  type ProcessorSpec,
  type ProcessorSpecInput,
  processorInputSchema,
  processorSpecSchema,
  type Scalar,
  type WatermarkSpec,
  type WindowSpec,
} from "./spec";
export type { Counters, EngineState } from "./state";
export { engineStateSchema, restoreState } from "./state-schema";
export { hoppingWindows, mergeSession, tumblingWindow, type Window } from "./windows";
