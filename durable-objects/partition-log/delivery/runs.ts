import {
  type DeliveryMessage,
  MAX_BATCH_BYTES,
  MAX_BATCH_MESSAGES,
  MAX_INLINE_EVENT_BYTES,
  RUN_MAX_EVENTS,
  type Run,
} from "../../../sdk/messages";
import { utf8Length } from "../../../shared/json";
import type { DirectTarget } from "../../../shared/subscriptions";

/**
 * How a partition's events travel to a subscription's queue: as runs (message v2) of events
 * consecutive in the subscription's chain, packed into sendBatch calls within the Queues limits.
 * The relay, the redelivery pass and the replay job all send through these.
 */

export type SendBatch = (binding: string, bodies: DeliveryMessage[]) => Promise<void>;
/**
 * A run for a processor's instances (ADR 0056): each event as its stored text, which the instance
 * parses once — the log neither parses it nor has the call deep-copy the parsed event.
 */
export type StoredRun = Omit<Run, "events"> & {
  events: ({ sequence: number; committedAt: number; stored: string } | { sequence: number; committedAt: number; ref: true })[];
};
/**
 * How runs reach a direct route (a processor's feed, ADR 0053); resolves once the other side
 * committed them. The re-partition stage gets parsed events (it reads them); the instances get
 * stored text.
 */
export type FeedRuns = (target: DirectTarget, runs: Run[] | StoredRun[]) => Promise<void>;

export type Row = {
  subscription: string;
  sequence: number;
  prev: number;
  body: string;
  received_at: number;
};

/** A run's envelope and per-event fields, on top of its inline event text (an estimate, on the safe side). */
const RUN_OVERHEAD_BYTES = 512;
const RUN_EVENT_OVERHEAD_BYTES = 160;

export interface RunMessage<R = Run> {
  body: R;
  /** Estimated size of the message, for the sendBatch limits. */
  bytes: number;
}

/**
 * Cuts one subscription's rows (ordered by sequence) into runs: consecutive events of its chain
 * (a row whose `prev` is not the previous row starts a new run), at most `maxEvents` each and
 * MAX_INLINE_EVENT_BYTES of inline event text; an event larger than that travels by reference.
 */
export function runsOf(rows: Row[], topic: string, partition: number, maxEvents?: number): RunMessage[];
export function runsOf(rows: Row[], topic: string, partition: number, maxEvents: number, stored: true): RunMessage<StoredRun>[];
export function runsOf(
  rows: Row[],
  topic: string,
  partition: number,
  maxEvents: number = RUN_MAX_EVENTS,
  stored = false,
): RunMessage<Run | StoredRun>[] {
  const out: RunMessage<Run | StoredRun>[] = [];
  let current: { run: Run | StoredRun; inline: number } | undefined;
  let last: number | undefined;
  for (const row of rows) {
    const size = utf8Length(row.body);
    const ref = size > MAX_INLINE_EVENT_BYTES;
    const inline = ref ? 0 : size;
    if (
      current === undefined ||
      row.prev !== last ||
      current.run.events.length >= maxEvents ||
      current.inline + inline > MAX_INLINE_EVENT_BYTES
    ) {
      if (current !== undefined) out.push(sized(current));
      current = { run: { v: 2, subscription: row.subscription, topic, partition, prev: row.prev, events: [] }, inline: 0 };
    }
    const at = { sequence: row.sequence, committedAt: row.received_at };
    (current.run.events as unknown[]).push(
      ref ? { ...at, ref: true } : stored ? { ...at, stored: row.body } : { ...at, event: JSON.parse(row.body) as Record<string, unknown> },
    );
    current.inline += inline;
    last = row.sequence;
  }
  if (current !== undefined) out.push(sized(current));
  return out;
}

function sized<R extends Run | StoredRun>({ run, inline }: { run: R; inline: number }): RunMessage<R> {
  return { body: run, bytes: inline + RUN_OVERHEAD_BYTES + RUN_EVENT_OVERHEAD_BYTES * run.events.length };
}

/** Splits messages into sendBatch calls within the Queues limits (messages and bytes per call). */
export function chunk<M extends { bytes: number }>(items: M[]): M[][] {
  const out: M[][] = [];
  let current: M[] = [];
  let size = 0;
  for (const item of items) {
    if (current.length > 0 && (current.length === MAX_BATCH_MESSAGES || size + item.bytes > MAX_BATCH_BYTES)) {
      out.push(current);
      current = [];
      size = 0;
    }
    current.push(item);
    size += item.bytes;
  }
  if (current.length > 0) out.push(current);
  return out;
}
