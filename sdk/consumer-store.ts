import { z } from "zod";
import { sha256Hex } from "./hash";
import type { Logger } from "./logger";
import type { Delivery } from "./messages";

/**
 * The D1 statements of the consumer SDK. `settleStatements` go into the same `db.batch()` as a
 * handler's effects: the `processed_events` insert fails on a second settle of the same event,
 * which rolls the whole batch back — that is what makes effects exactly-once.
 */

/** True when a settle batch failed because the event was already settled (the exactly-once guard). */
export function isUniqueViolation(err: unknown): boolean {
  return err instanceof Error && /UNIQUE constraint failed: processed_events/.test(err.message);
}

export interface Position {
  subscription: string;
  topic: string;
  partition: number;
  sequence: number;
  /** Sequence of the previous event of this partition routed to this subscription (0: none). */
  prev: number;
}

export function settleStatements(
  db: D1Database,
  at: Position,
  event: { source: string; id: string },
  outcome: "handled" | "dead_lettered" | "duplicate_id",
  replacingDeadLetter = false,
): D1PreparedStatement[] {
  const now = Date.now();
  const where = [at.subscription, at.topic, at.partition] as const;
  const statements: D1PreparedStatement[] = [];
  if (replacingDeadLetter) {
    // Only a dead-lettered record is removed, so a second delivery of the same redrive still
    // fails on the insert below and changes nothing.
    statements.push(
      db
        .prepare(`DELETE FROM processed_events WHERE subscription = ? AND source = ? AND event_id = ? AND outcome = 'dead_lettered'`)
        .bind(at.subscription, event.source, event.id),
    );
  }
  statements.push(
    db
      .prepare(
        `INSERT INTO processed_events (subscription, source, event_id, topic, partition, sequence, prev, outcome, processed_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .bind(at.subscription, event.source, event.id, at.topic, at.partition, at.sequence, at.prev, outcome, now),
    ...checkpointWalkStatements(db, at, now),
  );
  if (outcome !== "duplicate_id") {
    const counter = outcome === "handled" ? "handled" : "dead_lettered";
    statements.push(countStatement(db, at.subscription, counter, now));
  }
  statements.push(
    db
      .prepare(`DELETE FROM delivery_failures WHERE subscription = ? AND topic = ? AND partition = ? AND sequence = ?`)
      .bind(...where, at.sequence),
  );
  return statements;
}

/**
 * Creates a partition's checkpoint if need be, then advances it along the chain of settled events
 * (linked by `prev`) that follows it. In `partition` mode events are applied only at the chain's
 * end, so this moves one step or more (over successors dead-lettered early, or every event a batch
 * settled); in `none` mode it also catches up over events settled out of order. It never passes an
 * unsettled event and never moves back: a redriven letter is re-settled behind the checkpoint,
 * where the walk does not look.
 */
export function checkpointWalkStatements(
  db: D1Database,
  at: { subscription: string; topic: string; partition: number },
  now = Date.now(),
): D1PreparedStatement[] {
  const where = [at.subscription, at.topic, at.partition] as const;
  return [
    db
      .prepare(
        `INSERT INTO checkpoints (subscription, topic, partition, sequence, updated_at) VALUES (?, ?, ?, 0, ?) ON CONFLICT DO NOTHING`,
      )
      .bind(...where, now),
    db.prepare(CHECKPOINT_WALK).bind(...where, now),
  ];
}

/**
 * The checkpoint walk (?1 subscription, ?2 topic, ?3 partition, ?4 now). `run CROSS JOIN
 * processed_events` makes each step one lookup in processed_events_chain by (subscription, topic,
 * partition, prev): SQLite keeps a CROSS JOIN's left table as the outer loop. With a plain JOIN the
 * planner (no ANALYZE statistics, as on D1) put processed_events outside and scanned all of the
 * partition's records at every step, so a walk cost O(steps × records so far) — most of the
 * delivery CPU once a subscription had handled a few thousand events (bench/profile.mjs deliver).
 * test/consumer/sdk-store.test.ts checks the plan.
 */
export const CHECKPOINT_WALK = `UPDATE checkpoints SET updated_at = ?4, sequence = (
  WITH RECURSIVE run(s) AS (
    SELECT sequence FROM checkpoints WHERE subscription = ?1 AND topic = ?2 AND partition = ?3
    UNION ALL
    SELECT p.sequence FROM run CROSS JOIN processed_events p ON p.prev = run.s
    WHERE p.subscription = ?1 AND p.topic = ?2 AND p.partition = ?3
  ) SELECT MAX(s) FROM run)
WHERE subscription = ?1 AND topic = ?2 AND partition = ?3`;

/** What a subscription recorded when it settled an event (its `processed_events` row). */
export interface SeenRecord {
  outcome: string;
  topic: string;
  partition: number;
  sequence: number;
}

/** Rows as the prefetch reads them (parsed: D1 results are untyped). */
const seenRow = z.object({
  source: z.string(),
  event_id: z.string(),
  outcome: z.string(),
  topic: z.string(),
  partition: z.number(),
  sequence: z.number(),
});
const checkpointRow = z.object({ topic: z.string(), partition: z.number(), sequence: z.number() });

/** Reads one event's idempotency record (null: never settled). */
export function readSeen(db: D1Database, subscription: string, event: { source: string; id: string }): Promise<SeenRecord | null> {
  return db
    .prepare("SELECT outcome, topic, partition, sequence FROM processed_events WHERE subscription = ? AND source = ? AND event_id = ?")
    .bind(subscription, event.source, event.id)
    .first<SeenRecord>();
}

/** The statement reading a partition's checkpoint; also appended to a settle batch to learn where it moved. */
export function checkpointStatement(db: D1Database, at: { subscription: string; topic: string; partition: number }): D1PreparedStatement {
  return db
    .prepare("SELECT sequence FROM checkpoints WHERE subscription = ? AND topic = ? AND partition = ?")
    .bind(at.subscription, at.topic, at.partition);
}

/** A partition's checkpoint (0: none yet). */
export async function readCheckpoint(db: D1Database, at: { subscription: string; topic: string; partition: number }): Promise<number> {
  return (await checkpointStatement(db, at).first<{ sequence: number }>())?.sequence ?? 0;
}

/** A subscription's checkpoint per partition of a topic (partitions without one are absent). */
export async function readCheckpoints(db: D1Database, subscription: string, topic: string): Promise<Map<number, number>> {
  const rows = await db
    .prepare("SELECT partition, sequence FROM checkpoints WHERE subscription = ? AND topic = ?")
    .bind(subscription, topic)
    .all<{ partition: number; sequence: number }>();
  return new Map(rows.results.map((r) => [r.partition, r.sequence]));
}

/** The sequence a `checkpointStatement` read, from its result in a batch (undefined: no row). */
export function checkpointFrom(result: D1Result | undefined): number | undefined {
  const row = checkpointRow.pick({ sequence: true }).safeParse(result?.results[0]);
  return row.success ? row.data.sequence : undefined;
}

/** Map keys for the batch prefetch (JSON, so no separator can make two keys collide). */
export const eventKey = (event: { source: string; id: string }): string => JSON.stringify([event.source, event.id]);
export const partitionKey = (at: { topic: string; partition: number }): string => JSON.stringify([at.topic, at.partition]);

/**
 * What a `queue()` invocation read up front for all of its messages, in place of one SELECT per
 * message. Every key asked for has an entry: `seen` null and checkpoint 0 mean "no row when read".
 * The values may be stale — other invocations keep settling — but only ever in the safe
 * direction: a record or checkpoint that exists is never removed or moved back (a redrive only
 * replaces a dead-lettered record with a handled one), so "not seen" and a low checkpoint can be
 * stale, "seen" and a high one cannot.
 */
export interface BatchContext {
  seen: Map<string, SeenRecord | null>;
  checkpoints: Map<string, number>;
}

/** Pairs per prefetch query: D1 binds at most 100 parameters per statement (1 + 2 per pair). */
const PREFETCH_PAIRS = 40;

/** `items` in consecutive slices of at most `size`. */
export function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Reads the idempotency records of `events` and the checkpoints of `partitions` in one round trip
 * (one `db.batch()` of SELECTs, chunked for the parameter limit). The `WITH k AS (VALUES …) JOIN`
 * form looks each key up by primary key; `(a, b) IN (VALUES …)` would scan the subscription's rows.
 */
export async function readBatchContext(
  db: D1Database,
  subscription: string,
  events: { source: string; id: string }[],
  partitions: { topic: string; partition: number }[],
): Promise<BatchContext> {
  // The same event may be in a batch twice, and a partition usually is.
  const uniqueEvents = [...new Map(events.map((e) => [eventKey(e), e])).values()];
  const uniquePartitions = [...new Map(partitions.map((p) => [partitionKey(p), p])).values()];
  const context: BatchContext = {
    seen: new Map(uniqueEvents.map((e) => [eventKey(e), null])),
    checkpoints: new Map(uniquePartitions.map((p) => [partitionKey(p), 0])),
  };
  const eventChunks = chunks(uniqueEvents, PREFETCH_PAIRS);
  const partitionChunks = chunks(uniquePartitions, PREFETCH_PAIRS);
  const values = (n: number) => Array.from({ length: n }, () => "(?, ?)").join(", ");
  const statements = [
    ...eventChunks.map((pairs) =>
      db
        .prepare(
          `WITH k(source, event_id) AS (VALUES ${values(pairs.length)})
           SELECT p.source, p.event_id, p.outcome, p.topic, p.partition, p.sequence
           FROM k JOIN processed_events p ON p.subscription = ? AND p.source = k.source AND p.event_id = k.event_id`,
        )
        .bind(...pairs.flatMap((e) => [e.source, e.id]), subscription),
    ),
    ...partitionChunks.map((pairs) =>
      db
        .prepare(
          `WITH k(topic, partition) AS (VALUES ${values(pairs.length)})
           SELECT c.topic, c.partition, c.sequence
           FROM k JOIN checkpoints c ON c.subscription = ? AND c.topic = k.topic AND c.partition = k.partition`,
        )
        .bind(...pairs.flatMap((p) => [p.topic, p.partition]), subscription),
    ),
  ];
  if (statements.length === 0) return context;
  const results = await db.batch(statements);
  for (const result of results.slice(0, eventChunks.length)) {
    for (const row of result.results) {
      const { source, event_id: id, ...record } = seenRow.parse(row);
      context.seen.set(eventKey({ source, id }), record);
    }
  }
  for (const result of results.slice(eventChunks.length)) {
    for (const row of result.results) {
      const checkpoint = checkpointRow.parse(row);
      context.checkpoints.set(partitionKey(checkpoint), checkpoint.sequence);
    }
  }
  return context;
}

/** A subscription's running totals (`subscription_stats`), for the status API. */
export type StatsCounter = "handled" | "retried" | "dead_lettered" | "replay_duplicates";

/** Adds `by` (one unless said) to a subscription's counter. */
export function countStatement(db: D1Database, subscription: string, counter: StatsCounter, now = Date.now(), by = 1): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO subscription_stats (subscription, ${counter}, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (subscription) DO UPDATE SET ${counter} = ${counter} + excluded.${counter}, updated_at = excluded.updated_at`,
    )
    .bind(subscription, by, now);
}

export interface DeadLetterInput {
  subscription: string;
  delivery: Delivery | undefined;
  rawBody: unknown;
  reason: string;
  error: string;
  attempts: number;
  /** More statements for the dead letter's batch (its `delivery_attempts` record). */
  also?: D1PreparedStatement[];
}

/**
 * The id of the letter a redriven letter becomes when it fails again: derived from the letter it
 * was redriven from, so every copy of one redrive message names the same letter (a second copy
 * conflicts on it and changes nothing), and never that letter's own id, which the redrive route
 * deletes once the queue has taken the message — perhaps only after the consumer ran.
 */
async function redrivenLetterId(deadLetterId: string): Promise<string> {
  const hex = await sha256Hex(`redriven:${deadLetterId}`);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/**
 * Records a dead letter and settles its position (so an ordered subscription moves past it).
 * A redriven letter that fails again replaces its dead-lettered record and goes back to the DLQ.
 * Returns false when nothing was recorded because the event was already settled (a redelivery of
 * an event handled or dead-lettered before, or a second copy of a redrive): recording twice is
 * harmless, the second batch fails on `processed_events` or on the letter's id and changes nothing.
 */
export async function recordDeadLetter(db: D1Database, input: DeadLetterInput): Promise<boolean> {
  const now = Date.now();
  const d = input.delivery;
  const body = JSON.stringify(input.rawBody) ?? "null";
  const key =
    d === undefined ? { topic: "", partition: -1, sequence: -1 } : { topic: d.topic, partition: d.partition, sequence: d.sequence };
  const eventId = typeof d?.event?.id === "string" ? d.event.id : null;
  const insert = db
    .prepare(
      `INSERT INTO dead_letters (id, subscription, topic, partition, sequence, event_id, body, reason, error, attempts,
         first_failure_at, last_failure_at, dead_lettered_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,
         COALESCE((SELECT first_failure_at FROM delivery_failures WHERE subscription = ?2 AND topic = ?3 AND partition = ?4 AND sequence = ?5), ?11),
         ?11, ?11)`,
    )
    .bind(
      d?.redrive === undefined ? crypto.randomUUID() : await redrivenLetterId(d.redrive.deadLetterId),
      input.subscription,
      key.topic,
      key.partition,
      key.sequence,
      eventId,
      body,
      input.reason,
      input.error,
      input.attempts,
      now,
    );
  if (d === undefined) {
    await db.batch([insert]);
    return true;
  }
  // An event that travelled by reference has no id in the message; its position identifies it.
  const identity =
    typeof d.event?.source === "string" && typeof d.event.id === "string"
      ? { source: d.event.source, id: d.event.id }
      : { source: "eventline:ref", id: `${d.topic}/${d.partition}/${d.sequence}` };
  const position: Position = { subscription: input.subscription, ...key, prev: d.prev };
  const also = input.also ?? [];
  try {
    return await unlessLetterTaken(db, [
      insert,
      ...settleStatements(db, position, identity, "dead_lettered", d.redrive !== undefined),
      ...also,
    ]);
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    // Already settled (e.g. a replay re-sent to a webhook that now fails): keep the letter anyway.
    return d.replay !== undefined && (await unlessLetterTaken(db, [insert, ...also]));
  }
}

/**
 * Runs a batch that inserts a letter; false when the letter's id is taken (this redrive's letter was
 * recorded by an earlier copy of its message), which changes nothing.
 */
async function unlessLetterTaken(db: D1Database, statements: D1PreparedStatement[]): Promise<boolean> {
  try {
    await db.batch(statements);
    return true;
  } catch (err) {
    if (err instanceof Error && /UNIQUE constraint failed: dead_letters\.id/.test(err.message)) return false;
    throw err;
  }
}

/**
 * How a delivery attempt ended, as `delivery_attempts` records it (`failed`: retried later;
 * `parked`: waited for its predecessor as long as the queue allows, acked, and sent again by the
 * partition log once its redelivery timeout is up).
 */
export type AttemptOutcome = "handled" | "failed" | "dead_lettered" | "duplicate" | "deferred" | "skipped" | "parked";

/** Error text kept per attempt (the dead letter keeps the last error at full length). */
export const ATTEMPT_ERROR_CHARS = 500;

export interface AttemptRecord {
  subscription: string;
  topic: string;
  partition: number;
  sequence: number;
  /** Delivery attempt (Message.attempts), 1 for the first. */
  attempt: number;
  outcome: AttemptOutcome;
  error?: string | undefined;
  /** When the queue accepted the message (Message.timestamp), ms since epoch. */
  sentAt: number | null;
}

/** One `delivery_attempts` row, for an event's trace; put it in the batch the outcome writes anyway. */
export function attemptStatement(db: D1Database, a: AttemptRecord, now = Date.now()): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO delivery_attempts (subscription, topic, partition, sequence, attempt, outcome, error, at, sent_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .bind(
      a.subscription,
      a.topic,
      a.partition,
      a.sequence,
      a.attempt,
      a.outcome,
      a.error === undefined ? null : a.error.slice(0, ATTEMPT_ERROR_CHARS),
      now,
      a.sentAt,
    );
}

/** Handler failures recorded so far for this position (`delivery_failures`). */
export async function failuresSoFar(db: D1Database, key: Position): Promise<number> {
  const row = await db
    .prepare("SELECT attempts FROM delivery_failures WHERE subscription = ? AND topic = ? AND partition = ? AND sequence = ?")
    .bind(key.subscription, key.topic, key.partition, key.sequence)
    .first<{ attempts: number }>();
  return row?.attempts ?? 0;
}

/** Records one more handler failure for this position, and counts a retry. */
export function recordFailureStatements(db: D1Database, key: Position, attempts: number, error: string): D1PreparedStatement[] {
  const now = Date.now();
  const { subscription } = key;
  return [
    db
      .prepare(
        `INSERT INTO delivery_failures (subscription, topic, partition, sequence, attempts, first_failure_at, last_failure_at, last_error)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (subscription, topic, partition, sequence)
         DO UPDATE SET attempts = excluded.attempts, last_failure_at = excluded.last_failure_at, last_error = excluded.last_error`,
      )
      .bind(subscription, key.topic, key.partition, key.sequence, attempts, now, now, error),
    countStatement(db, subscription, "retried", now),
  ];
}

/**
 * One read for a whole `queue()` batch: the idempotency records of its inline events and (ordered)
 * the checkpoints of its partitions. If it fails, undefined: each message then reads for itself.
 */
export async function prefetchBatch(
  db: D1Database,
  subscription: string,
  ordered: boolean,
  items: { parsed: { success: boolean; data?: Delivery } }[],
  log: Pick<Logger, "warn">,
): Promise<BatchContext | undefined> {
  const deliveries = items.flatMap(({ parsed }) => (parsed.success && parsed.data?.subscription === subscription ? [parsed.data] : []));
  const events = deliveries.flatMap(({ event }) =>
    typeof event?.source === "string" && typeof event.id === "string" ? [{ source: event.source, id: event.id }] : [],
  );
  try {
    return await readBatchContext(db, subscription, events, ordered ? deliveries : []);
  } catch (err) {
    log.warn("batch prefetch failed; reading per message", { error: err instanceof Error ? err.message : String(err) });
    return undefined;
  }
}
