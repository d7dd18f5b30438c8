import type { Frame } from "./consumer-batch";
import type { ConsumerMetrics } from "./consumer-metrics";
import { attemptStatement, type Position } from "./consumer-store";
import type { Logger } from "./logger";
import type { Delivery } from "./messages";

/** An error as the text logs and records keep (name and message, at most 2,000 characters). */
export function errorText(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`.slice(0, 2000);
  return String(err).slice(0, 2000);
}

/**
 * What every settlement path needs about one message: its position in the subscription's chain, a
 * logger carrying the event's trace, and its attempt records — written with the invocation's next
 * batch when `riders` is given, else alone (best effort).
 */
export function createFrame(
  deps: { subscription: string; db: D1Database; log: Logger; metered: ConsumerMetrics },
  message: Message<unknown>,
  delivery: Delivery,
  riders: D1PreparedStatement[] | undefined,
): Frame {
  const { db, metered } = deps;
  // Every line about this message carries the event's trace (an event sent by reference: once resolved).
  const inlineTrace = typeof delivery.event?.traceparent === "string" ? delivery.event.traceparent : undefined;
  const log = deps.log.with({
    topic: delivery.topic,
    partition: delivery.partition,
    sequence: delivery.sequence,
    attempts: message.attempts,
    ...(inlineTrace === undefined ? {} : { traceparent: inlineTrace }),
  });
  const key: Position = {
    subscription: deps.subscription,
    topic: delivery.topic,
    partition: delivery.partition,
    sequence: delivery.sequence,
    // An unchained replay message stands outside the subscription's order chain: -1 links to
    // nothing, so it never moves the checkpoint.
    prev: delivery.replay !== undefined && !delivery.replay.chain ? -1 : delivery.prev,
  };
  // Each settled attempt is recorded (`delivery_attempts`, the event's trace) in the batch its
  // outcome writes anyway, else on its own; not at all with EVENTLINE_METRICS=off.
  const sentAt = message.timestamp instanceof Date ? message.timestamp.getTime() : null;
  const frame: Frame = {
    db,
    message,
    delivery,
    key,
    log,
    metered,
    attempt: (outcome, error) =>
      metered.enabled ? [attemptStatement(db, { ...key, attempt: message.attempts, outcome, error, sentAt })] : [],
    recordAttempt: async (outcome) => {
      const statements = frame.attempt(outcome);
      if (riders !== undefined) {
        riders.push(...statements);
        return;
      }
      if (statements.length === 0) return;
      // Best effort: the outcome stands whether or not its record was written.
      await db
        .batch(statements)
        .catch((err: unknown) => frame.log.warn("delivery attempt not recorded", { outcome, error: errorText(err) }));
    },
  };
  return frame;
}
