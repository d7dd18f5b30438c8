import { queueMaxRetries } from "../../../shared/config";
import { recordDeadLetter } from "../../../shared/consumer-store";
import { createLogger } from "../../../shared/logger";
import { deliverySchema } from "../../../shared/messages";
import { findSubscription } from "../../../shared/subscriptions";

const log = createLogger({ component: "dlq" });

/**
 * Consumer of every `eventline-<subscription>-dlq` queue: records each message that Queues moved
 * there (a consumer that crashed or timed out on every attempt) as a dead letter in D1. The SDK
 * dead-letters handler failures itself, so this is the backstop for failures outside it.
 */
export async function recordDlqBatch(batch: MessageBatch<unknown>, env: Env, subscriptionName: string): Promise<void> {
  const subscription = findSubscription(subscriptionName);
  for (const message of batch.messages) {
    const parsed = deliverySchema.safeParse(message.body);
    await recordDeadLetter(env.DB, {
      subscription: subscriptionName,
      delivery: parsed.success ? parsed.data : undefined,
      rawBody: message.body,
      reason: parsed.success ? "max_retries" : "invalid_message",
      error: parsed.success ? "moved to the dead-letter queue after the queue's max_retries" : parsed.error.message,
      attempts: subscription === undefined ? message.attempts : queueMaxRetries(subscription) + 1,
    });
    log.warn("dead letter recorded from DLQ", { subscription: subscriptionName, messageId: message.id });
    message.ack();
  }
}
