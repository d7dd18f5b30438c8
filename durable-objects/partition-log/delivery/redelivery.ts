import type { Logger } from "../../../sdk/logger";
import type { Route } from "../../../shared/subscriptions";
import type { ReadAcks } from "./acks";
import { chunk, type Row, runsOf, type SendBatch } from "./runs";
import { MIN_PASS_INTERVAL_MS, nextDue } from "./state";

/**
 * The redelivery pass (ADR 0030): for each subscription, the events it was sent and has not
 * settled within its redelivery timeout are sent again from the log. The queue is transport; what
 * it loses (a dropped message, a purged or deleted queue, a consumer that acked without settling)
 * is sent again here, with no operator. Copies are absorbed by the consumer SDK's idempotency.
 *
 * Bounded work: at most REDELIVERY_WINDOW events per subscription per pass. And no flood: while
 * the events it sent again last time are neither settled nor due again (a consumer with a backlog
 * has not reached them yet), a subscription gets nothing new, so a consumer that is merely behind
 * receives at most a window of copies per timeout, not its whole backlog again.
 */

/** Events considered, and sent again at most, per subscription and pass. */
export const REDELIVERY_WINDOW = 500;
/** When a pass left overdue events for later, the next looks again this soon (or at the timeout, if shorter). */
const FOLLOW_UP_MS = 5_000;

export interface RedeliveryHost {
  sql: SqlStorage;
  topic: string;
  partition: number;
  /** The subscription's route as configured now; undefined once it is removed. */
  routeOf(subscription: string): Route | undefined;
  /** The route's redelivery timeout (tests shorten it). */
  timeoutOf(route: Route): number;
  readAcks: ReadAcks;
  send: SendBatch;
  now(): number;
  log: Logger;
}

export interface PassResult {
  /** In-transit events found settled (rows removed). */
  acknowledged: number;
  /** Events sent again. */
  redelivered: number;
  /** Events whose handler failed recently: the queue is retrying them, checked again later. */
  postponed: number;
  /** Rows of subscriptions no longer configured, removed. */
  dropped: number;
  /** Overdue events left for a follow-up pass at this time (null: none left). */
  followUpAt: number | null;
}

interface Overdue {
  subscription: string;
  route: Route;
  rows: { sequence: number; sends: number }[];
}

/**
 * Runs a pass if an event is due, and says when the next one is wanted (null: nothing in transit).
 * Throws when the pass failed (D1 or the queue unavailable); the caller tries again later.
 */
export async function runRedelivery(host: RedeliveryHost): Promise<number | null> {
  const due = nextDue(host.sql);
  let followUpAt: number | null = null;
  if (due !== null && due <= host.now()) {
    const pass = await redeliveryPass(host);
    followUpAt = pass.followUpAt;
    const fields = { topic: host.topic, partition: host.partition, ...pass };
    if (pass.redelivered > 0 || pass.dropped > 0) host.log.warn("redelivered unacknowledged events", fields);
    else if (pass.acknowledged > 0) host.log.debug("acknowledged", fields);
  }
  const next = nextDue(host.sql);
  const at = next === null ? followUpAt : followUpAt === null ? next : Math.min(next, followUpAt);
  return at === null ? null : Math.max(at, host.now() + MIN_PASS_INTERVAL_MS);
}

export async function redeliveryPass(host: RedeliveryHost): Promise<PassResult> {
  const { sql } = host;
  const now = host.now();
  const result: PassResult = { acknowledged: 0, redelivered: 0, postponed: 0, dropped: 0, followUpAt: null };
  const overdue: Overdue[] = [];
  for (const { subscription } of sql.exec<{ subscription: string }>(`SELECT subscription FROM routing`).toArray()) {
    const route = host.routeOf(subscription);
    if (route === undefined) {
      // Removed from the config (or a deleted webhook): nobody will acknowledge these.
      result.dropped += sql.exec(`DELETE FROM outbox WHERE subscription = ?`, subscription).rowsWritten;
      continue;
    }
    const rows = sql
      .exec<{ sequence: number; sends: number }>(
        `SELECT sequence, sends FROM outbox WHERE subscription = ? AND due_at IS NOT NULL AND due_at <= ? ORDER BY due_at, sequence LIMIT ?`,
        subscription,
        now,
        REDELIVERY_WINDOW,
      )
      .toArray();
    if (rows.length > 0) overdue.push({ subscription, route, rows });
  }
  if (overdue.length === 0) return result;

  const acks = await host.readAcks(
    overdue.map(({ subscription, rows }) => ({
      subscription,
      from: Math.min(...rows.map((r) => r.sequence)),
      to: Math.max(...rows.map((r) => r.sequence)),
    })),
  );

  const followUp = (timeout: number) => {
    const at = now + Math.min(timeout, FOLLOW_UP_MS);
    result.followUpAt = result.followUpAt === null ? at : Math.min(result.followUpAt, at);
  };
  for (const { subscription, route, rows } of overdue) {
    const ack = acks.get(subscription);
    if (ack === undefined) continue;
    const timeout = host.timeoutOf(route);
    // Everything up to the checkpoint is settled, overdue or not.
    result.acknowledged += sql.exec(
      `DELETE FROM outbox WHERE subscription = ? AND sequence <= ?`,
      subscription,
      ack.checkpoint,
    ).rowsWritten;
    const lost: { sequence: number; sends: number }[] = [];
    for (const row of rows) {
      if (row.sequence <= ack.checkpoint) continue;
      if (ack.settled.has(row.sequence)) {
        result.acknowledged += sql.exec(
          `DELETE FROM outbox WHERE subscription = ? AND sequence = ?`,
          subscription,
          row.sequence,
        ).rowsWritten;
        continue;
      }
      const failedAt = ack.failing.get(row.sequence);
      if (failedAt !== undefined && failedAt + route.retryCapMs + timeout > now) {
        // The queue retries it within the backoff cap of its last failure; look again after that.
        sql.exec(
          `UPDATE outbox SET due_at = ? WHERE subscription = ? AND sequence = ?`,
          failedAt + route.retryCapMs + timeout,
          subscription,
          row.sequence,
        );
        result.postponed++;
        continue;
      }
      lost.push(row);
    }
    // Copies sent a while ago (a follow-up interval), not yet due again and still not settled: the
    // consumer has not reached them, it is behind. Until it has, only copies that are themselves
    // overdue again go out (see the module comment). Copies sent moments ago say nothing yet.
    const later = now + Math.min(timeout, FOLLOW_UP_MS);
    const outstanding =
      sql
        .exec(
          `SELECT 1 FROM outbox WHERE subscription = ? AND sends > 1 AND due_at > ? AND sent_at <= ? LIMIT 1`,
          subscription,
          now,
          now - Math.min(timeout, FOLLOW_UP_MS),
        )
        .toArray().length > 0;
    const resend = outstanding ? lost.filter((r) => r.sends > 1) : lost;
    for (const row of lost) {
      if (row.sends <= 1 && outstanding) {
        sql.exec(`UPDATE outbox SET due_at = ? WHERE subscription = ? AND sequence = ?`, later, subscription, row.sequence);
      }
    }
    // More overdue events than one window: the next pass comes soon, not a timeout later.
    if (rows.length === REDELIVERY_WINDOW) followUp(timeout);
    result.redelivered += await resendRows(host, subscription, route, resend, timeout);
  }
  return result;
}

/** Sends `rows` of one subscription again, oldest first, marking each as sent once its batch was accepted. */
async function resendRows(
  host: RedeliveryHost,
  subscription: string,
  route: Route,
  rows: { sequence: number }[],
  timeout: number,
): Promise<number> {
  if (rows.length === 0) return 0;
  const { sql } = host;
  const wanted = new Set(rows.map((r) => r.sequence));
  const sequences = [...wanted].sort((a, b) => a - b);
  const found = sql
    .exec<Row>(
      `SELECT o.subscription, o.sequence, o.prev, e.body, e.received_at
       FROM outbox o JOIN events e ON e.sequence = o.sequence
       WHERE o.subscription = ? AND o.sequence BETWEEN ? AND ? AND o.sent_at IS NOT NULL ORDER BY o.sequence`,
      subscription,
      sequences[0] ?? 0,
      sequences.at(-1) ?? 0,
    )
    .toArray()
    .filter((r) => wanted.has(r.sequence));
  let sent = 0;
  // Runs again: rows that are consecutive in the chain travel together, a settled one between them splits them.
  for (const batch of chunk(runsOf(found, host.topic, host.partition))) {
    await host.send(
      route.queue,
      batch.map((m) => m.body),
    );
    const at = host.now();
    let n = 0;
    for (const { body } of batch) {
      for (const { sequence } of body.events) {
        sql.exec(
          `UPDATE outbox SET sent_at = ?, due_at = ?, sends = sends + 1 WHERE subscription = ? AND sequence = ?`,
          at,
          at + timeout,
          subscription,
          sequence,
        );
        n++;
      }
    }
    sql.exec(`UPDATE routing SET redelivered = redelivered + ? WHERE subscription = ?`, n, subscription);
    sent += n;
  }
  return sent;
}

/**
 * Removes the rows every subscription's checkpoint now covers (one D1 read for the partition),
 * without sending anything: archiving calls it before trimming, since only acknowledged events
 * may leave the log. Returns the rows removed.
 */
export async function acknowledgeCheckpoints(sql: SqlStorage, readAcks: ReadAcks): Promise<number> {
  const subscriptions = sql
    .exec<{ subscription: string }>(`SELECT DISTINCT subscription FROM outbox WHERE sent_at IS NOT NULL`)
    .toArray()
    .map((r) => r.subscription);
  if (subscriptions.length === 0) return 0;
  // An empty range: only the checkpoints are wanted.
  const acks = await readAcks(subscriptions.map((subscription) => ({ subscription, from: 1, to: 0 })));
  let removed = 0;
  for (const [subscription, ack] of acks) {
    removed += sql.exec(`DELETE FROM outbox WHERE subscription = ? AND sequence <= ?`, subscription, ack.checkpoint).rowsWritten;
  }
  return removed;
}
