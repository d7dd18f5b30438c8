import type { SqlMigration } from "../../sql-migrations";

/**
 * The transactional outbox (durable-objects/partition-log/delivery/outbox.ts): one row per
 * (subscription, sequence) routed; `routing` holds the last sequence routed to each subscription:
 * every message names its predecessor (`prev`), so consumers can order and checkpoint a filtered
 * stream that skips sequences.
 */
export const outboxMigration: SqlMigration = {
  id: 3,
  name: "outbox and routing",
  up: ({ sql }) => {
    sql.exec(`CREATE TABLE IF NOT EXISTS outbox (
      subscription TEXT NOT NULL,
      sequence     INTEGER NOT NULL,
      prev         INTEGER NOT NULL,
      PRIMARY KEY (subscription, sequence)
    )`);
    sql.exec(`CREATE TABLE IF NOT EXISTS routing (subscription TEXT PRIMARY KEY, last_sequence INTEGER NOT NULL)`);
  },
};

/**
 * What the partition log keeps per subscription to drive delivery (ADR 0030). An `outbox` row is
 * an event routed to a subscription and not yet acknowledged by it; it now outlives the send:
 *
 * - `sent_at` NULL: not handed to the queue yet (the relay's work);
 * - `sent_at` set: in transit since then; `due_at`: when the log checks whether the subscription
 *   settled it, and sends it again if not; `sends`: how often it was handed to the queue.
 *
 * The row goes when the subscription's settlement (its checkpoint or idempotency record in D1)
 * covers it, or when the subscription is no longer configured. `routing.redelivered` counts the
 * events this partition sent again, per subscription.
 *
 * Migration 4 only adds columns and indexes: outbox rows of objects created before it, all
 * unsent, keep NULLs and are sent by the relay as before.
 */
export const deliveryMigration: SqlMigration = {
  id: 4,
  name: "delivery state",
  up: (db) => {
    db.addColumn("outbox", "sent_at", "INTEGER");
    db.addColumn("outbox", "due_at", "INTEGER");
    db.addColumn("outbox", "sends", "INTEGER NOT NULL DEFAULT 0");
    // The relay reads only unsent rows, and the redelivery pass only due ones: partial indexes keep
    // both from scanning the (possibly many) rows in transit.
    db.sql.exec(`CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (subscription, sequence) WHERE sent_at IS NULL`);
    db.sql.exec(`CREATE INDEX IF NOT EXISTS outbox_due ON outbox (subscription, due_at) WHERE due_at IS NOT NULL`);
    db.sql.exec(`CREATE INDEX IF NOT EXISTS outbox_resent ON outbox (subscription, due_at) WHERE sends > 1`);
    db.addColumn("routing", "redelivered", "INTEGER NOT NULL DEFAULT 0");
  },
};

/**
 * A direct route's outbox row (a processor's feed, ADR 0056) covers a range: every event of one
 * append transaction from `sequence` through `through` that its filter matched (the filter is
 * applied again when the row is sent). One row per transaction instead of one per event; queue
 * routes keep one row per event (`through` NULL), since each event is settled on its own.
 */
export const directRangesMigration: SqlMigration = {
  id: 8,
  name: "direct route ranges",
  up: (db) => {
    db.addColumn("outbox", "through", "INTEGER");
  },
};

/** A row's events as counted for depths: a range row covers `through − sequence + 1` sequences. */
const ROW_EVENTS = "(COALESCE(o.through, o.sequence) - o.sequence + 1)";

/** The lowest sequence some subscription has not acknowledged (null: none). Trimming stops below it. */
export function firstHeld(sql: SqlStorage): number | null {
  return sql.exec<{ s: number | null }>(`SELECT MIN(sequence) AS s FROM outbox`).one().s;
}

/** Last sequence routed to each subscription, as committed. */
export function routedThrough(sql: SqlStorage): Record<string, number> {
  const rows = sql.exec<{ subscription: string; last_sequence: number }>(`SELECT subscription, last_sequence FROM routing`).toArray();
  return Object.fromEntries(rows.map((r) => [r.subscription, r.last_sequence]));
}

/** Per subscription: events routed and not yet sent, and sent but not yet acknowledged. */
export interface DeliveryDepths {
  unsent: Record<string, number>;
  inTransit: Record<string, number>;
  /** Events sent again by the log (a count since the partition began keeping it). */
  redelivered: Record<string, number>;
}

export function deliveryDepths(sql: SqlStorage): DeliveryDepths {
  const rows = sql
    .exec<{ subscription: string; unsent: number; in_transit: number }>(
      `SELECT o.subscription, SUM(CASE WHEN o.sent_at IS NULL THEN ${ROW_EVENTS} ELSE 0 END) AS unsent,
         SUM(o.sent_at IS NOT NULL) AS in_transit FROM outbox o GROUP BY o.subscription`,
    )
    .toArray();
  const redelivered = sql
    .exec<{ subscription: string; redelivered: number }>(`SELECT subscription, redelivered FROM routing WHERE redelivered > 0`)
    .toArray();
  return {
    unsent: Object.fromEntries(rows.filter((r) => r.unsent > 0).map((r) => [r.subscription, r.unsent])),
    inTransit: Object.fromEntries(rows.filter((r) => r.in_transit > 0).map((r) => [r.subscription, r.in_transit])),
    redelivered: Object.fromEntries(redelivered.map((r) => [r.subscription, r.redelivered])),
  };
}

/** Sequences in `from`..`to` routed to `subscription` and not yet acknowledged (outbox rows: by primary key). */
export function heldSequences(sql: SqlStorage, subscription: string, from: number, to: number): number[] {
  return sql
    .exec<{ sequence: number }>(
      `SELECT sequence FROM outbox WHERE subscription = ? AND sequence BETWEEN ? AND ? ORDER BY sequence`,
      subscription,
      from,
      to,
    )
    .toArray()
    .map((r) => r.sequence);
}

/** Where an event stands with each subscription it was routed to and that has not acknowledged it. */
export interface PendingDelivery {
  subscription: string;
  /** `routed`: not handed to the queue yet; `in_transit`: sent, not settled; `redelivered`: sent more than once. */
  state: "routed" | "in_transit" | "redelivered";
  sends: number;
  sentAt: number | null;
  dueAt: number | null;
}

export function pendingDeliveries(sql: SqlStorage, sequence: number): PendingDelivery[] {
  return sql
    .exec<{ subscription: string; sends: number; sent_at: number | null; due_at: number | null }>(
      `SELECT subscription, sends, sent_at, due_at FROM outbox WHERE sequence <= ? AND COALESCE(through, sequence) >= ? ORDER BY subscription`,
      sequence,
      sequence,
    )
    .toArray()
    .map((r) => ({
      subscription: r.subscription,
      state: r.sent_at === null ? "routed" : r.sends > 1 ? "redelivered" : "in_transit",
      sends: r.sends,
      sentAt: r.sent_at,
      dueAt: r.due_at,
    }));
}

/** What a subscription has not acknowledged above its checkpoint, in one partition. */
export interface Unacknowledged {
  /** Events routed to it above its checkpoint, not acknowledged: its lag (unrouted sequences never count). */
  events: number;
  /** Of those, events the log has already sent again (lost once, or not handled since): a stall. */
  resent: number;
  /** The most times one of them was sent. */
  maxSends: number;
  /** Commit time of the oldest of them (ms), null when none. */
  oldestAt: number | null;
}

/**
 * Per subscription given with its checkpoint: what it has not acknowledged above it. Between two
 * redelivery checks an event settled out of order above the checkpoint is still counted.
 */
export function unacknowledged(sql: SqlStorage, checkpoints: Record<string, number>): Record<string, Unacknowledged> {
  const out: Record<string, Unacknowledged> = {};
  for (const [subscription, checkpoint] of Object.entries(checkpoints)) {
    const row = sql
      .exec<{ n: number; resent: number | null; max_sends: number | null; oldest: number | null }>(
        `SELECT COUNT(*) AS n, SUM(o.sends > 1) AS resent, MAX(o.sends) AS max_sends, MIN(e.received_at) AS oldest
         FROM outbox o JOIN events e ON e.sequence = o.sequence WHERE o.subscription = ? AND o.sequence > ?`,
        subscription,
        checkpoint,
      )
      .one();
    out[subscription] = { events: row.n, resent: row.resent ?? 0, maxSends: row.max_sends ?? 0, oldestAt: row.oldest };
  }
  return out;
}

/** Redelivery passes run at most this often: a pass that could not settle something must not spin. */
export const MIN_PASS_INTERVAL_MS = 1_000;

/** When the next redelivery pass is wanted, a pass interval from `now` at the soonest (null: nothing in transit). */
export function nextCheck(sql: SqlStorage, now: number): number | null {
  const due = nextDue(sql);
  return due === null ? null : Math.max(due, now + MIN_PASS_INTERVAL_MS);
}

/** When the earliest in-transit event is due for its check (null: nothing in transit). */
export function nextDue(sql: SqlStorage): number | null {
  // Per subscription through outbox_due (a seek each), not one scan of every row in transit.
  return sql
    .exec<{ at: number | null }>(
      `SELECT MIN((SELECT MIN(due_at) FROM outbox WHERE subscription = r.subscription AND due_at IS NOT NULL)) AS at FROM routing r`,
    )
    .one().at;
}
