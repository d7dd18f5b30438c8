import { z } from "zod";

/**
 * How the partition log learns what a subscription acknowledged: it reads what the consumer SDK
 * settles anyway, in the platform's D1 database (ADR 0030). Nothing is added to the consumer's
 * path: no RPC per batch, no extra write. The log reads only when events it sent are overdue, so
 * the cost is one D1 round trip per partition per redelivery pass, whatever the traffic.
 *
 * - `checkpoints`: every event of the partition at or below it is settled (handled, dead-lettered
 *   or a duplicate id) — the walk along the `prev` chain never passes an unsettled event.
 * - `processed_events` by position: events settled out of order above the checkpoint (an unordered
 *   subscription settles as messages come).
 * - `delivery_failures`: events whose handler failed and that the queue is retrying with backoff;
 *   they are not lost, so sending them again would only add a copy between two retries.
 */

export interface AckRequest {
  subscription: string;
  /** The range of sequences the log is asking about (its overdue events), inclusive. */
  from: number;
  to: number;
}

export interface Acks {
  /** The subscription's checkpoint in this partition (0: none yet). */
  checkpoint: number;
  /** Sequences in the asked range with an idempotency record (settled). */
  settled: Set<number>;
  /** Sequences in the asked range that failed and are being retried: sequence → last failure (ms). */
  failing: Map<number, number>;
}

export type ReadAcks = (requests: AckRequest[]) => Promise<Map<string, Acks>>;

const checkpointRow = z.object({ sequence: z.number().int() });
const settledRow = z.object({ sequence: z.number().int() });
const failingRow = z.object({ sequence: z.number().int(), last_failure_at: z.number().int() });

/** Rows of one range read at most (the pass asks about at most a window of events per subscription). */
const MAX_ROWS = 2000;

/** The first sequence above the checkpoint: what is at or below it needs no row-by-row answer. */
const ABOVE_CHECKPOINT = `COALESCE((SELECT sequence FROM checkpoints WHERE subscription = ?1 AND topic = ?2 AND partition = ?3), 0) + 1`;

/** Reads the acknowledgements of `requests` for one partition in one `db.batch()`. */
export function d1Acks(db: D1Database, topic: string, partition: number): ReadAcks {
  return async (requests) => {
    const out = new Map<string, Acks>();
    if (requests.length === 0) return out;
    const statements = requests.flatMap(({ subscription, from, to }) => [
      db
        .prepare(`SELECT sequence FROM checkpoints WHERE subscription = ? AND topic = ? AND partition = ?`)
        .bind(subscription, topic, partition),
      db
        .prepare(
          `SELECT sequence FROM processed_events
           WHERE subscription = ?1 AND topic = ?2 AND partition = ?3 AND sequence BETWEEN MAX(?4, ${ABOVE_CHECKPOINT}) AND ?5
           LIMIT ${MAX_ROWS}`,
        )
        .bind(subscription, topic, partition, from, to),
      db
        .prepare(
          `SELECT sequence, last_failure_at FROM delivery_failures
           WHERE subscription = ?1 AND topic = ?2 AND partition = ?3 AND sequence BETWEEN MAX(?4, ${ABOVE_CHECKPOINT}) AND ?5
           LIMIT ${MAX_ROWS}`,
        )
        .bind(subscription, topic, partition, from, to),
    ]);
    const results = await db.batch(statements);
    requests.forEach(({ subscription }, i) => {
      const [checkpoint, settled, failing] = [results[3 * i], results[3 * i + 1], results[3 * i + 2]];
      const row = checkpoint?.results[0];
      out.set(subscription, {
        checkpoint: row === undefined ? 0 : checkpointRow.parse(row).sequence,
        settled: new Set((settled?.results ?? []).map((r) => settledRow.parse(r).sequence)),
        failing: new Map((failing?.results ?? []).map((r) => failingRow.parse(r)).map((r) => [r.sequence, r.last_failure_at])),
      });
    });
    return out;
  };
}
