import type { Acc } from "./aggregates";
import type { ProcessorSpec } from "./spec";
import type { Timer } from "./timers";
import type { WatermarkState } from "./watermark";

/**
 * The engine's state: plain JSON, so a host stores it (with the input checkpoints it contains) in
 * one write and restores it with JSON.parse (ADR 0052). Maps keyed by a processor key use
 * `slot(key)` ("~" + key) so that no key, `__proto__` included, can collide with an object's
 * built-in properties.
 */

export interface InputRef {
  id: string;
  arrival: number;
}

export interface OpenWindow {
  start: number;
  end: number;
  accs: Acc[];
  revision: number;
  /** The last input folded in (by arrival): the results' causation. */
  last: InputRef;
}

export interface PendingA {
  id: string;
  partition: number;
  sequence: number;
  time: number;
  arrival: number;
}

export interface SeenB {
  id: string;
  time: number;
  arrival: number;
}

export interface PatternKeyState {
  as: PendingA[];
  /** "b" inputs kept while a future "a" could still match them (until time + within + grace ≤ watermark). */
  bs: SeenB[];
}

export interface Counters {
  /** Inputs accepted (not redeliveries). */
  accepted: number;
  /** Redeliveries: sequence at or below the partition's checkpoint; no effect. */
  duplicates: number;
  /** Accepted inputs that missed at least one window (returned in `late`). */
  late: number;
  /** Windows missed by late inputs (a hopping input may miss some and join others). */
  missedWindows: number;
  finals: number;
  updates: number;
  /** Pattern results emitted (sequence matches or absences). */
  matches: number;
  /** Absence: "a" inputs cancelled by a "b". Sequence: "a" inputs that expired unmatched. */
  cancelled: number;
}

export interface EngineState {
  version: 1;
  spec: ProcessorSpec;
  time: WatermarkState;
  /** Inputs accepted so far: the next arrival number (first/last ties, pattern timers). */
  arrivals: number;
  counters: Counters;
  timers: Timer[];
  /** Aggregate processors: each key's open windows, by start. */
  windows: Record<string, OpenWindow[]>;
  /** Pattern processors: each key's pending "a" and retained "b" inputs. */
  patterns: Record<string, PatternKeyState>;
}

export function slot(key: string): string {
  return `~${key}`;
}

export function keyOfSlot(slotName: string): string {
  return slotName.slice(1);
}
