import { z } from "zod";
import config from "../../eventline.config";
import { queueMaxRetries, WEBHOOK_BACKOFF, WEBHOOK_MAX_RETRIES, WEBHOOK_QUEUE, WEBHOOK_QUEUE_BINDING } from "../../shared/config";
import { type FilterPattern, filterSchema } from "../../shared/filter";

/**
 * One view over both kinds of subscription: declared in eventline.config.ts (delivered to a
 * Worker through its own queue) or created at runtime (delivered by webhook through the shared
 * WEBHOOK_DELIVERY queue; stored in D1 and pushed to the topic's partition logs).
 */

export { WEBHOOK_BACKOFF, WEBHOOK_MAX_RETRIES, WEBHOOK_QUEUE, WEBHOOK_QUEUE_BINDING } from "../../shared/config";

export interface SubscriptionView {
  name: string;
  topic: string;
  kind: "worker" | "webhook";
  description?: string;
  filter: FilterPattern | undefined;
  ordering: "none" | "partition";
  maxRetries: number;
  backoff: { baseSeconds: number; capSeconds: number };
  /** Queue producer binding and queue name the subscription is delivered through. */
  binding: string;
  queue: string;
  webhook?: WebhookTarget;
}

/** Where and how a webhook subscription delivers. */
export interface WebhookTarget {
  url: string;
  /** The current signing secret. */
  secret: string;
  /** The secret it replaced, still signed with until `expiresAt` (epoch ms): a rotation's overlap. */
  previousSecret?: { secret: string; expiresAt: number };
}

/** The secrets a delivery at `now` is signed with: the current one first, then one still in its overlap. */
export function signingSecrets(webhook: WebhookTarget, now = Date.now()): string[] {
  const previous = webhook.previousSecret;
  return previous !== undefined && previous.expiresAt > now ? [webhook.secret, previous.secret] : [webhook.secret];
}

const webhookRow = z.object({
  name: z.string(),
  topic: z.string(),
  filter: z.string().nullable(),
  ordering: z.enum(["none", "partition"]),
  max_retries: z.number().int(),
  url: z.string(),
  secret: z.string(),
  previous_secret: z.string().nullable(),
  previous_secret_expires_at: z.number().int().nullable(),
});

function fromRow(raw: unknown): SubscriptionView {
  const row = webhookRow.parse(raw);
  const filter = row.filter === null ? undefined : filterSchema.parse(JSON.parse(row.filter));
  return {
    name: row.name,
    topic: row.topic,
    kind: "webhook",
    filter,
    ordering: row.ordering,
    maxRetries: row.max_retries,
    backoff: { ...WEBHOOK_BACKOFF },
    binding: WEBHOOK_QUEUE_BINDING,
    queue: WEBHOOK_QUEUE,
    webhook: {
      url: row.url,
      secret: row.secret,
      ...(row.previous_secret === null || row.previous_secret_expires_at === null
        ? {}
        : { previousSecret: { secret: row.previous_secret, expiresAt: row.previous_secret_expires_at } }),
    },
  };
}

function fromConfig(name: string): SubscriptionView | undefined {
  const sub = config.subscriptions.find((s) => s.name === name);
  if (sub === undefined) return undefined;
  return {
    name: sub.name,
    topic: sub.topic,
    kind: "worker",
    ...(sub.description === undefined ? {} : { description: sub.description }),
    filter: sub.filter,
    ordering: sub.ordering,
    maxRetries: sub.maxRetries,
    backoff: sub.backoff,
    binding: sub.queue,
    queue: `eventline-${sub.name}`,
  };
}

export function isConfigSubscription(name: string): boolean {
  return config.subscriptions.some((s) => s.name === name);
}

export async function findSubscriptionView(db: D1Database, name: string): Promise<SubscriptionView | undefined> {
  const configured = fromConfig(name);
  if (configured !== undefined) return configured;
  const row = await db.prepare("SELECT * FROM webhook_subscriptions WHERE name = ?").bind(name).first();
  return row === null ? undefined : fromRow(row);
}

export async function listSubscriptionViews(db: D1Database): Promise<SubscriptionView[]> {
  const rows = (await db.prepare("SELECT * FROM webhook_subscriptions ORDER BY name").all()).results;
  return [
    ...config.subscriptions.map((s) => fromConfig(s.name)).filter((s): s is SubscriptionView => s !== undefined),
    ...rows.map(fromRow),
  ];
}

const createdAtRow = z.object({ created_at: z.number().int() });

/** A topic's webhook subscriptions (by name), each with when it was created (epoch ms). */
export async function webhookSubscriptionsOf(db: D1Database, topic: string): Promise<(SubscriptionView & { createdAt: number })[]> {
  const { results } = await db.prepare("SELECT * FROM webhook_subscriptions WHERE topic = ? ORDER BY name").bind(topic).all();
  return results.map((raw) => ({ ...fromRow(raw), createdAt: createdAtRow.parse(raw).created_at }));
}

/** A topic's webhook routes (name and filter), for its partitions. */
export async function webhookRoutesOf(db: D1Database, topic: string): Promise<{ name: string; filter: FilterPattern | null }[]> {
  return (await webhookSubscriptionsOf(db, topic)).map((w) => ({ name: w.name, filter: w.filter ?? null }));
}

/** The queue max_retries that applies to a subscription (for dead letters recorded from a DLQ). */
export function queueRetriesOf(sub: SubscriptionView): number {
  return sub.kind === "webhook" ? WEBHOOK_MAX_RETRIES : queueMaxRetries(sub);
}
