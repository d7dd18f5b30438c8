import type { WindowSpec } from "./spec";

/**
 * Window assignment in event time (ADR 0052). A window is the half-open interval [start, end) of
 * epoch milliseconds. Tumbling and hopping windows are aligned to the epoch (start is a multiple
 * of the advance), as in Kafka Streams and Flink, so every processor instance and every replay
 * assigns an event to the same windows.
 */
export interface Window {
  start: number;
  end: number;
}

/** Floor division that is right for negative times too (windows before 1970 stay aligned). */
function alignDown(time: number, step: number): number {
  return Math.floor(time / step) * step;
}

/** The tumbling window holding `time`. */
export function tumblingWindow(time: number, sizeMs: number): Window {
  const start = alignDown(time, sizeMs);
  return { start, end: start + sizeMs };
}

/**
 * Every hopping window holding `time`, oldest first: starts are multiples of `advanceMs` with
 * start ≤ time < start + sizeMs, so an event belongs to ⌈size / advance⌉ windows (or one fewer
 * when size is not a multiple of advance and the event falls in the uncovered tail).
 */
export function hoppingWindows(time: number, sizeMs: number, advanceMs: number): Window[] {
  const windows: Window[] = [];
  for (let start = alignDown(time, advanceMs); start + sizeMs > time; start -= advanceMs) windows.push({ start, end: start + sizeMs });
  return windows.reverse();
}

/** The fixed windows (tumbling or hopping) of an event; sessions are assigned by `mergeSession`. */
export function fixedWindows(spec: Exclude<WindowSpec, { type: "session" }>, time: number): Window[] {
  return spec.type === "tumbling" ? [tumblingWindow(time, spec.sizeMs)] : hoppingWindows(time, spec.sizeMs, spec.advanceMs);
}

/** An event's own session before merging: [time, time + gap). */
export function protoSession(time: number, gapMs: number): Window {
  return { start: time, end: time + gapMs };
}

/** Half-open intervals overlap when each starts before the other ends; touching ([a, b) and [b, c)) is not overlapping. */
export function overlaps(a: Window, b: Window): boolean {
  return a.start < b.end && b.start < a.end;
}

/**
 * Session assignment: `sessions` are one key's open sessions (disjoint, any order). The event's
 * proto-session [time, time + gap) absorbs every session it overlaps, so one event can bridge two
 * or more sessions into one. Returns the merged window and the indexes of the absorbed sessions
 * (ascending). Two events fall in one session exactly when a chain of events less than `gap`
 * apart links them.
 */
export function mergeSession(sessions: readonly Window[], time: number, gapMs: number): { window: Window; absorbed: number[] } {
  const window = protoSession(time, gapMs);
  const absorbed: number[] = [];
  sessions.forEach((session, index) => {
    if (!overlaps(session, window)) return;
    absorbed.push(index);
    window.start = Math.min(window.start, session.start);
    window.end = Math.max(window.end, session.end);
  });
  return { window, absorbed };
}
