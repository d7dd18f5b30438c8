import type { Scalar } from "./spec";
import type { Window } from "./windows";

/**
 * What the engine emits. Every result has a deterministic `id`, derived from the processor, the
 * key and the window or matched input, so appending a result twice (after a crash, or a replay)
 * is idempotent. Times are epoch milliseconds; RFC 3339 formatting is the host's.
 */

export interface WindowResult {
  id: string;
  processor: string;
  kind: "window";
  /** `final`: once, when the watermark reaches windowEnd + grace. `update`: a change, in `updates` mode. */
  emit: "final" | "update";
  /** The window's revision (1 for its first input); a final carries the last revision. */
  revision: number;
  key: string;
  windowStart: number;
  windowEnd: number;
  aggregates: Record<string, Scalar>;
  /** Aggregates whose value is an estimate (a distinct count past its exact bound). */
  approximate: string[];
  /** The id of the last input folded into the window (by arrival): the result's cause. */
  causationId: string;
  /** Session windows only: the earlier sessions this one absorbed in the change (their update results are superseded). */
  supersedes?: Window[];
}

export interface MatchedInput {
  id: string;
  eventTime: number;
}

export interface PatternResult {
  id: string;
  processor: string;
  kind: "sequence" | "absence";
  key: string;
  /** The "a" input that started the match. */
  a: MatchedInput;
  /** The "b" input that completed a sequence; null for an absence. */
  b: MatchedInput | null;
  /** a.eventTime + withinMs: the end of the match window [a.eventTime, deadline). */
  deadline: number;
  /** The input that completed a sequence (the later of a and b to arrive); the "a" input for an absence. */
  causationId: string;
}

export type ProcessorResult = WindowResult | PatternResult;

/** An accepted input that missed at least one of its windows (sessions: arrived with time + grace ≤ watermark; patterns: patterns.ts). */
export interface LateInput {
  id: string;
  partition: number;
  sequence: number;
  key: string;
  eventTime: number;
  /** The windows it missed; for session processors its proto-session [time, time + gap), for patterns [time, time + within). */
  windows: Window[];
}

/** Ids: components are joined with ':' and the key is percent-encoded, so no two (key, window) pairs share an id. */
export function resultId(processor: string, key: string, ...rest: Array<string | number>): string {
  return [processor, encodeURIComponent(key), ...rest].join(":");
}
