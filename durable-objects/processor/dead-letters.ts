import { type ProcessorPlan, type Repartitioned, repartitioned } from "../../shared/processors";
import { processorDeadLetterId, processorRouteOf } from "../../shared/processors-config";

/** One input a processor could not use (late, without a key, timed too far ahead). */
export interface ProcessorDeadLetter {
  partition: number;
  sequence: number;
  /** The input event's id. */
  eventId: string;
  reason: "late_event" | "no_key" | "future_time";
  error: string;
  /** What the processor had of the input (stored as JSON). */
  body: unknown;
}

/**
 * Writes a processor's dead letters to D1 `dead_letters` (subscription `processor:<name>`), one per
 * input position of the input topic: INSERT OR IGNORE by that id, so a step handed on again after a
 * crash records nothing twice.
 */
export async function recordDeadLetters(
  db: D1Database,
  processor: string,
  topic: string,
  letters: readonly ProcessorDeadLetter[],
  now: number,
): Promise<void> {
  const statement = db.prepare(
    `INSERT OR IGNORE INTO dead_letters (id, subscription, topic, partition, sequence, event_id, body, reason, error, attempts, first_failure_at, last_failure_at, dead_lettered_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)`,
  );
  await db.batch(
    letters.map((l) =>
      statement.bind(
        processorDeadLetterId(processor, topic, l.partition, l.sequence),
        processorRouteOf(processor),
        topic,
        l.partition,
        l.sequence,
        l.eventId,
        JSON.stringify(l.body),
        l.reason,
        l.error,
        now,
        now,
        now,
      ),
    ),
  );
}

/**
 * What an input event is to the processor, as the re-partition step and a backfill both decide it:
 * an input; a dead letter (no usable key, an event time too far ahead of its commit); or nothing
 * (a pattern's event that is neither "a" nor "b").
 */
export function inputOrLetter(
  plan: ProcessorPlan,
  event: Record<string, unknown>,
  at: { partition: number; sequence: number; committedAt: number },
): { input: Repartitioned } | { letter: ProcessorDeadLetter } | null {
  const r = repartitioned(plan, event, at);
  if (!("skip" in r)) return { input: r };
  if (r.skip === "no_role") return null;
  return { letter: skippedLetter(plan, { ...at, id: String(event.id), reason: r.skip }) };
}

/** An input event the processor cannot take (no key; an event time too far ahead of its commit), as its dead letter. */
function skippedLetter(
  plan: ProcessorPlan,
  s: { partition: number; sequence: number; committedAt: number; id: string; reason: "no_key" | "future_time" },
): ProcessorDeadLetter {
  const { key, watermark } = plan.config;
  return {
    partition: s.partition,
    sequence: s.sequence,
    eventId: s.id,
    reason: s.reason,
    error:
      s.reason === "future_time"
        ? `the event's time is more than ${watermark.maxAhead} (watermark.maxAhead) ahead of its commit at ${new Date(s.committedAt).toISOString()}`
        : `the event has no usable key at ${key} (a string, number or boolean)`,
    body: s,
  };
}
