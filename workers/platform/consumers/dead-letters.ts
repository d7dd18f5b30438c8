import { recordDeadLetter } from "../../../shared/consumer-store";
import { createLogger } from "../../../shared/logger";
import { deliverySchema } from "../../../shared/messages";
import { findSubscriptionView, queueRetriesOf, type SubscriptionView } from "../subscription-registry";

const log = createLogger({ component: "dlq" });

/**
 * Consumer of every `eventline-*-dlq` queue: records each message Queues moved there (a consumer
 * that crashed or timed out on every attempt) as a dead letter in D1, under the subscription the
 * message names (the webhook DLQ carries many). The SDK dead-letters handler failures itself, so
 * this is the backstop for failures outside it.
 */
export async function recordDlqBatch(batch: MessageBatch<unknown>, env: Env, queueSubscription: string): Promise<void> {
  const views = new Map<string, Promise<SubscriptionView | undefined>>();
  for (const message of batch.messages) {
    const parsed = deliverySchema.safeParse(message.body);
    const name = parsed.success ? parsed.data.subscription : queueSubscription;
    if (!views.has(name)) views.set(name, findSubscriptionView(env.DB, name));
    const view = await views.get(name);
    const recorded = await recordDeadLetter(env.DB, {
      subscription: name,
      delivery: parsed.success ? parsed.data : undefined,
      rawBody: message.body,
      reason: parsed.success ? "max_retries" : "invalid_message",
      error: parsed.success ? "moved to the dead-letter queue after the queue's max_retries" : parsed.error.message,
      attempts: view === undefined ? message.attempts : queueRetriesOf(view) + 1,
    });
    if (recorded) log.warn("dead letter recorded from DLQ", { subscription: name, messageId: message.id });
    else log.info("DLQ message for an event already settled: not recorded", { subscription: name, messageId: message.id });
    message.ack();
  }
}
