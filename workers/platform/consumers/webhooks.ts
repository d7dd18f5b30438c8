import { type Consumer, defineConsumer } from "../../../shared/consumer";
import { createLogger } from "../../../shared/logger";
import { deliveriesOf } from "../../../shared/messages";
import { signWebhook } from "../../../shared/webhook-signature";
import { findSubscriptionView, type SubscriptionView, WEBHOOK_MAX_RETRIES } from "../subscription-registry";

/**
 * Delivery of runtime (webhook) subscriptions: every one shares the WEBHOOK_DELIVERY queue, and
 * each message is handled by the consumer SDK configured for its subscription, so webhooks get
 * the same idempotency, backoff, circuit breaker and dead letters as Worker consumers.
 */

const log = createLogger({ component: "webhooks" });
const TIMEOUT_MS = 10_000;
/** Subscription definitions are re-read from D1 at most this often per isolate. */
const CACHE_MS = 5_000;

const cache = new Map<string, { view: SubscriptionView | undefined; consumer: Consumer<Env> | undefined; at: number }>();

/** POSTs one event, structured mode, signed; any non-2xx answer or a timeout is a failure. */
export async function deliverWebhook(
  view: SubscriptionView,
  event: Record<string, unknown>,
  messageId: string,
  replayId?: string,
): Promise<void> {
  if (view.webhook === undefined) throw new Error(`subscription ${view.name} has no webhook`);
  const body = JSON.stringify(event);
  const headers: Record<string, string> = {
    "content-type": "application/cloudevents+json",
    ...(await signWebhook(view.webhook.secret, messageId, Math.floor(Date.now() / 1000), body)),
  };
  // A replayed delivery says so (and which job); its webhook-id is the original's, so a receiver
  // that dedupes by it ignores the replay unless it looks at this header.
  if (replayId !== undefined) headers["eventline-replay"] = replayId;
  // The event's trace context (W3C Trace Context headers), so the receiver joins the producer's trace.
  if (typeof event.traceparent === "string") {
    headers.traceparent = event.traceparent;
    if (typeof event.tracestate === "string") headers.tracestate = event.tracestate;
  }
  const res = await fetch(view.webhook.url, { method: "POST", headers, body, signal: AbortSignal.timeout(TIMEOUT_MS) });
  await res.body?.cancel();
  if (res.status < 200 || res.status > 299) throw new Error(`webhook ${view.webhook.url} answered ${res.status}`);
}

async function consumerFor(env: Env, name: string): Promise<{ view: SubscriptionView | undefined; consumer: Consumer<Env> | undefined }> {
  const hit = cache.get(name);
  if (hit !== undefined && Date.now() - hit.at < CACHE_MS) return hit;
  const view = await findSubscriptionView(env.DB, name);
  const consumer =
    view?.webhook === undefined
      ? undefined
      : defineConsumer<Env>({
          subscription: view.name,
          db: (e) => e.DB,
          maxRetries: view.maxRetries,
          // The shared queue's max_retries: an ordered webhook waits for a predecessor within what it leaves.
          queueMaxRetries: WEBHOOK_MAX_RETRIES,
          ordering: view.ordering,
          backoff: view.backoff,
          // A replay to a webhook subscription is sent again even if it was delivered before.
          replays: "always",
          handle: async (event, { delivery }) => {
            // The webhook id is stable across retries of one delivery, so receivers can dedupe.
            await deliverWebhook(view, event, `${delivery.topic}-${delivery.partition}-${delivery.sequence}`, delivery.replay?.jobId);
            return [];
          },
        });
  const entry = { view, consumer, at: Date.now() };
  cache.set(name, entry);
  return entry;
}

export async function handleWebhookBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const bySubscription = new Map<string, Message<unknown>[]>();
  for (const message of batch.messages) {
    const parsed = deliveriesOf(message.body);
    const name = parsed.success ? parsed.subscription : "";
    bySubscription.set(name, [...(bySubscription.get(name) ?? []), message]);
  }
  await Promise.all(
    [...bySubscription].map(async ([name, messages]) => {
      const { consumer } = name === "" ? { consumer: undefined } : await consumerFor(env, name);
      if (consumer === undefined) {
        // Deleted subscription (or not a delivery): nobody is waiting for these any more.
        log.warn("messages for an unknown webhook subscription dropped", { subscription: name, messages: messages.length });
        for (const m of messages) m.ack();
        return;
      }
      await consumer.queue({ ...batch, messages }, env);
    }),
  );
}
