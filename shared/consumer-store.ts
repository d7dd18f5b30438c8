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
    db
      .prepare(
        `INSERT INTO checkpoints (subscription, topic, partition, sequence, updated_at) VALUES (?, ?, ?, 0, ?) ON CONFLICT DO NOTHING`,
      )
      .bind(...where, now),
  );
  // Advance along the chain of settled events (linked by `prev`) that follows the checkpoint. In
  // `partition` mode events are applied only at the chain's end, so this moves one step or more
  // (over successors dead-lettered early); in `none` mode it also catches up over events settled
  // out of order. It never passes an unsettled event and never moves back: a redriven letter is
  // re-settled behind the checkpoint, where the walk does not look.
  statements.push(
    db
      .prepare(
        `UPDATE checkpoints SET updated_at = ?4, sequence = (
           WITH RECURSIVE run(s) AS (
             SELECT sequence FROM checkpoints WHERE subscription = ?1 AND topic = ?2 AND partition = ?3
             UNION ALL
             SELECT p.sequence FROM processed_events p JOIN run ON p.prev = run.s
             WHERE p.subscription = ?1 AND p.topic = ?2 AND p.partition = ?3
           ) SELECT MAX(s) FROM run)
         WHERE subscription = ?1 AND topic = ?2 AND partition = ?3`,
      )
      .bind(...where, now),
  );
  if (outcome !== "duplicate_id") {
    const counter = outcome === "handled" ? "handled" : "dead_lettered";
    statements.push(
      db
        .prepare(
          `INSERT INTO subscription_stats (subscription, ${counter}, updated_at) VALUES (?, 1, ?)
           ON CONFLICT (subscription) DO UPDATE SET ${counter} = ${counter} + 1, updated_at = excluded.updated_at`,
        )
        .bind(at.subscription, now),
    );
  }
  statements.push(
    db
      .prepare(`DELETE FROM delivery_failures WHERE subscription = ? AND topic = ? AND partition = ? AND sequence = ?`)
      .bind(...where, at.sequence),
  );
  return statements;
}

export interface DeadLetterInput {
  subscription: string;
  delivery: Delivery | undefined;
  rawBody: unknown;
  reason: string;
  error: string;
  attempts: number;
}

/**
 * Records a dead letter and settles its position (so an ordered subscription moves past it).
 * Recording twice is harmless: the second batch fails on `processed_events` and changes nothing.
 */
export async function recordDeadLetter(db: D1Database, input: DeadLetterInput): Promise<void> {
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
      crypto.randomUUID(),
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
    return;
  }
  // An event that travelled by reference has no id in the message; its position identifies it.
  const identity =
    typeof d.event?.source === "string" && typeof d.event.id === "string"
      ? { source: d.event.source, id: d.event.id }
      : { source: "eventline:ref", id: `${d.topic}/${d.partition}/${d.sequence}` };
  const position: Position = { subscription: input.subscription, ...key, prev: d.prev };
  try {
    await db.batch([insert, ...settleStatements(db, position, identity, "dead_lettered")]);
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
  }
}
