import { type Consumer, defineConsumer } from "../../../sdk/consumer";
import { createLogger } from "../../../sdk/logger";
import { deliveriesOf } from "../../../sdk/messages";
import { redactUrl, redactUrlIn } from "../../../shared/redact-url";
import { signWebhook } from "../../../shared/webhook-signature";
import { type WebhookAllow, webhookAllowOf, webhookTargetRefusal } from "../../../shared/webhook-target";
import { findSubscriptionView, type SubscriptionView, signingSecrets, WEBHOOK_MAX_RETRIES } from "../subscription-registry";

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

/**
 * POSTs one event, structured mode, signed (with both secrets during a rotation's overlap); any
 * non-2xx answer — a redirect too, which is not followed — or a timeout is a failure. The target
 * is checked again here (it was checked when the subscription was created): EVENTLINE_WEBHOOK_ALLOW
 * may have changed since. Errors name the target by its origin only (the URL may hold a token),
 * since they end up in delivery attempts, traces, dead letters and logs.
 */
export async function deliverWebhook(
  view: SubscriptionView,
  event: Record<string, unknown>,
  messageId: string,
  allow: WebhookAllow,
  replayId?: string,
): Promise<void> {
  if (view.webhook === undefined) throw new Error(`subscription ${view.name} has no webhook`);
  const { url } = view.webhook;
  const target = redactUrl(url);
  const refusal = webhookTargetRefusal(url, allow);
  if (refusal !== undefined) throw new Error(`webhook ${target} refused: ${refusal} (not allowed by EVENTLINE_WEBHOOK_ALLOW)`);
  const body = JSON.stringify(event);
  const headers: Record<string, string> = {
    "content-type": "application/cloudevents+json",
    ...(await signWebhook(signingSecrets(view.webhook), messageId, Math.floor(Date.now() / 1000), body)),
  };
  // A replayed delivery says so (and which job); its webhook-id is the original's, so a receiver
  // that dedupes by it ignores the replay unless it looks at this header.
  if (replayId !== undefined) headers["eventline-replay"] = replayId;
  // The event's trace context (W3C Trace Context headers), so the receiver joins the producer's trace.
  if (typeof event.traceparent === "string") {
    headers.traceparent = event.traceparent;
    if (typeof event.tracestate === "string") headers.tracestate = event.tracestate;
  }
  let res: Response;
  try {
    // The URL as the parser serialized it: the form whose host was checked above. Redirects are
    // not followed: a 3xx could send the signed body to a target that was never checked.
    res = await fetch(new URL(url).href, { method: "POST", headers, body, redirect: "manual", signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (err) {
    const reason = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    throw new Error(`webhook ${target} did not answer: ${redactUrlIn(reason, url)}`);
  }
  await res.body?.cancel();
  if (res.status >= 300 && res.status <= 399) throw new Error(`webhook ${target} answered ${res.status} (redirects are not followed)`);
  if (res.status < 200 || res.status > 299) throw new Error(`webhook ${target} answered ${res.status}`);
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
          // The effect (the POST) leaves D1: each event is settled right after its POST, so a crash
          // repeats only the POSTs in flight, not a whole batch's (ADR 0036).
          settlement: "event",
          handle: async (event, { delivery, env: current }) => {
            // The webhook id is stable across retries of one delivery, so receivers can dedupe.
            const id = `${delivery.topic}-${delivery.partition}-${delivery.sequence}`;
            await deliverWebhook(view, event, id, webhookAllowOf(current.EVENTLINE_WEBHOOK_ALLOW), delivery.replay?.jobId);
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
