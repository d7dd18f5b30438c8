import { z } from "zod";
import type { SegmentStore } from "./archive/segments";
import { deliveryDepths, routedThrough, unacknowledged } from "./delivery/state";
import { checkpointsSchema, parseArgs, readInputSchema } from "./input";
import type { EventLog } from "./log";
import type { AppendMetrics } from "./metrics";
import type { PartitionMetrics, PartitionStats, ReadResult } from "./types";

/**
 * What the partition log answers about its events and itself, across its capabilities: reads
 * that span the R2 archive and the local log (a reader cannot tell where an event lives),
 * locating a time, and the stats and metrics the Worker shows.
 */
export interface ReadSources {
  sql: SqlStorage;
  log: EventLog;
  segments: SegmentStore;
  metrics: AppendMetrics;
}

/**
 * Events from `from` in sequence order, exactly as stored: archived ranges come from their R2
 * segments, the rest from the log.
 */
export async function readEvents({ sql, log, segments }: ReadSources, from: number, limit: number): Promise<ReadResult> {
  const args = parseArgs(readInputSchema, { from, limit }, "read input");
  const localFirst = log.firstSequence();
  const events: string[] = [];
  let next = args.from;
  if (localFirst === 0 || next < localFirst) {
    // Archived (trimmed) part first, segment by segment.
    for (const segment of segments.segmentsFrom(next, args.limit)) {
      if (events.length >= args.limit || (localFirst !== 0 && next >= localFirst)) break;
      if (segment.first > next) break; // a hole: cannot happen while segments are contiguous
      const lines = await segments.lines(segment.key);
      const start = next - segment.first;
      const take = lines.slice(start, start + (args.limit - events.length));
      events.push(...take);
      next += take.length;
    }
  }
  if (events.length < args.limit && localFirst !== 0) {
    const rows = sql
      .exec<{ sequence: number; body: string }>(
        `SELECT sequence, body FROM events WHERE sequence >= ? ORDER BY sequence LIMIT ?`,
        Math.max(next, localFirst),
        args.limit - events.length,
      )
      .toArray();
    if (rows.length > 0 && rows[0]?.sequence === next) {
      events.push(...rows.map((r) => r.body));
      next = (rows.at(-1)?.sequence ?? next - 1) + 1;
    } else if (rows.length > 0 && events.length === 0) {
      // `from` lies before anything readable: start at the first event there is.
      events.push(...rows.map((r) => r.body));
      next = (rows.at(-1)?.sequence ?? 0) + 1;
    }
  }
  return {
    events,
    head: log.head,
    first: segments.firstArchived() ?? localFirst,
    last: events.length === 0 ? null : next - 1,
  };
}

/** The first sequence committed at or after `timeMs` (ms since epoch); head + 1 when none. */
export async function locate({ sql, log, segments }: ReadSources, timeMs: number): Promise<number> {
  parseArgs(z.number().int().nonnegative(), timeMs, "time");
  const segment = segments.segmentSince(timeMs);
  if (segment !== undefined) {
    const lines = await segments.lines(segment.key);
    const i = lines.findIndex((line) => Date.parse((JSON.parse(line) as { receivedtime: string }).receivedtime) >= timeMs);
    if (i >= 0) return segment.first + i;
  }
  const row = sql
    .exec<{ s: number | null }>(
      `SELECT MIN(sequence) AS s FROM events WHERE received_at >= ? AND sequence > ?`,
      timeMs,
      segments.archivedThrough,
    )
    .one();
  return row.s ?? log.head + 1;
}

/**
 * Counters for GET /v1/metrics, and the commit time of each of `sequences` (a subscription's
 * checkpoint + 1: how old its oldest unhandled event is). An event already trimmed from the log
 * answers its segment's last commit time (so the age is a lower bound).
 */
export function metricsOf(sources: ReadSources, sequences: number[], checkpoints: Record<string, number>): PartitionMetrics {
  const asked = parseArgs(z.array(z.number().int()).max(10_000), sequences, "sequences");
  const given = parseArgs(checkpointsSchema, checkpoints, "checkpoints");
  const committedAt: Record<number, number | null> = {};
  for (const sequence of asked) committedAt[sequence] = commitTime(sources, sequence);
  return {
    head: sources.log.head,
    ...sources.metrics.counters(),
    archived: sources.segments.range(),
    routed: routedThrough(sources.sql),
    committedAt,
    unacknowledged: unacknowledged(sources.sql, given),
  };
}

function commitTime({ log, segments }: ReadSources, sequence: number): number | null {
  if (sequence < 1 || sequence > log.head) return null;
  const local = log.receivedAt(sequence);
  if (local !== undefined) return local;
  const segment = segments.segmentHolding(sequence);
  return segment !== undefined && segment.last >= sequence ? segment.last_received_at : null;
}

/** `checkpoints`: subscriptions' checkpoints here, for their `unacknowledged` counts. */
export function statsOf({ sql, log, segments }: ReadSources, checkpoints: Record<string, number>): PartitionStats {
  const given = parseArgs(checkpointsSchema, checkpoints, "checkpoints");
  // Sequences are contiguous and only a prefix is ever removed, so the count is derived
  // rather than counted (COUNT(*) would scan the whole log).
  const first = log.firstSequence();
  const depths = deliveryDepths(sql);
  return {
    head: log.head,
    count: first === 0 ? 0 : log.head - first + 1,
    first,
    archived: segments.range(),
    outbox: depths.unsent,
    inTransit: depths.inTransit,
    redelivered: depths.redelivered,
    routed: routedThrough(sql),
    unacknowledged: unacknowledged(sql, given),
  };
}
