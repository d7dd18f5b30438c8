import { recordDeadLetter } from "../../../sdk/consumer-store";
import { createLogger } from "../../../sdk/logger";
import { deliveriesOf } from "../../../sdk/messages";
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
    const parsed = deliveriesOf(message.body);
    const name = parsed.success ? parsed.subscription : queueSubscription;
    if (!views.has(name)) views.set(name, findSubscriptionView(env.DB, name));
    const view = await views.get(name);
    const attempts = view === undefined ? message.attempts : queueRetriesOf(view) + 1;
    // A run is recorded event by event: each unsettled event becomes a letter of its own (its body
    // the one-event message a redrive sends); events of the run already settled are skipped.
    const letters = parsed.success
      ? parsed.deliveries.map((delivery) => ({
          delivery,
          rawBody: parsed.version === 1 ? message.body : delivery,
          reason: "max_retries",
          error: "moved to the dead-letter queue after the queue's max_retries",
        }))
      : [{ delivery: undefined, rawBody: message.body, reason: "invalid_message", error: parsed.error.message }];
    for (const letter of letters) {
      const recorded = await recordDeadLetter(env.DB, { subscription: name, ...letter, attempts });
      const at = { subscription: name, messageId: message.id, sequence: letter.delivery?.sequence };
      if (recorded) log.warn("dead letter recorded from DLQ", at);
      else log.info("DLQ message for an event already settled: not recorded", at);
    }
    message.ack();
  }
}
