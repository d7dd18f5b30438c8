import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { testBindings } from "../bindings";
import { event, request, STRUCTURED } from "../helpers";
import { asKey, type CreatedTestKey, createTestKey, jsonInit } from "./helpers";

/*
 * Shared fixtures of the authorization tests (test/security/authorization-*.test.ts): the keys
 * with narrow grants and the webhook subscription every one of those files starts from
 * (authzSetup, called from each file's beforeAll, since storage is isolated per test file), and
 * the read-only probes of state (DLQ depth, replay jobs, keys, archive, vault) the tests use to
 * show that a refused request changed nothing.
 *
 * What the authorization tests show, route group by route group: API keys with narrow grants are
 * refused (403 problem+json) whatever they are not granted, each refusal leaves an
 * `access.denied` audit record naming the key and what it lacked, and nothing changes.
 */

export const HOOK = "authz-hook";
export const LIMIT_BYTES = 1024 * 1024;

/** The keys the authorization tests act as: each holds only the grants its name says. */
export interface AuthzKeys {
  producer: CreatedTestKey;
  consumer: CreatedTestKey;
  tenantProducer: CreatedTestKey;
  tenantConsumer: CreatedTestKey;
  replayer: CreatedTestKey;
  eventsAdmin: CreatedTestKey;
  denyOrders: CreatedTestKey;
}

/** Creates the keys and the HOOK webhook subscription (on `events`, filtered to a type nobody sends). */
export async function authzSetup(): Promise<AuthzKeys> {
  const [producer, consumer, tenantProducer, tenantConsumer, replayer, eventsAdmin, denyOrders] = await Promise.all([
    createTestKey("producer", ["produce:events"]),
    createTestKey("consumer", ["consume:events"]),
    createTestKey("tenant-producer", ["produce:acme."], "acme"),
    createTestKey("tenant-consumer", ["consume:acme.*"], "acme"),
    createTestKey("replayer", ["replay:events"]),
    createTestKey("events-admin", ["admin:events"]),
    createTestKey("deny-orders", ["admin:*", "!produce:orders"]),
  ]);
  const res = await request(
    "/v1/subscriptions",
    jsonInit({
      name: HOOK,
      topic: "events",
      filter: { type: ["authz.none"] },
      webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/${HOOK}` },
    }),
  );
  expect(res.status, await res.text()).toBe(201);
  return { producer, consumer, tenantProducer, tenantConsumer, replayer, eventsAdmin, denyOrders };
}

export const structured = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": STRUCTURED },
  body: typeof body === "string" ? body : JSON.stringify(body),
});

export const orderPlaced = () =>
  event({
    type: "orders.placed",
    subject: `ord-${crypto.randomUUID()}`,
    data: { orderId: "o-1", customerId: "c-1", currency: "EUR", lines: [{ sku: "A", quantity: 1, unitPrice: 100 }] },
  });

export const placeOrderBody = { customerId: "authz-customer", currency: "EUR", lines: [{ sku: "A", quantity: 1, unitPrice: 100 }] };

export async function dlqDepth(subscription: string): Promise<number> {
  const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM dead_letters WHERE subscription = ?")
    .bind(subscription)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

export async function replayJobCount(): Promise<number> {
  return (await env.DB.prepare("SELECT COUNT(*) AS n FROM replay_jobs").first<{ n: number }>())?.n ?? 0;
}

export async function keyIds(): Promise<string[]> {
  const res = await request("/v1/keys");
  expect(res.status).toBe(200);
  return ((await res.json()) as { keys: { id: string }[] }).keys.map((k) => k.id).sort();
}

export async function subscriptionExists(name: string): Promise<boolean> {
  const res = await request(`/v1/subscriptions/${name}`);
  await res.body?.cancel();
  expect([200, 404]).toContain(res.status);
  return res.status === 200;
}

export async function archiveManifest(topic: string): Promise<unknown> {
  const res = await request(`/v1/topics/${topic}/archive`);
  expect(res.status).toBe(200);
  return res.json();
}

export async function vaultStatus(): Promise<{ keys: number; shredded: number }> {
  const res = await request("/v1/encryption");
  expect(res.status).toBe(200);
  return ((await res.json()) as { dataKeys: { keys: number; shredded: number } }).dataKeys;
}

export async function visibleTopics(key: CreatedTestKey | "admin"): Promise<string[]> {
  const res = key === "admin" ? await request("/v1/topics") : await asKey(key, "/v1/topics");
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return (JSON.parse(text) as { topics: { name: string }[] }).topics.map((t) => t.name).sort();
}

/** A dead letter of the webhook subscription that a redrive would send (and delete). */
export async function seedDeadLetter(id: string): Promise<void> {
  const now = Date.now();
  const delivery = {
    v: 1,
    subscription: HOOK,
    topic: "events",
    partition: 0,
    sequence: 1,
    prev: 0,
    event: event({ id, type: "authz.none" }),
    committedAt: now,
  };
  await env.DB.prepare(
    `INSERT INTO dead_letters (id, subscription, topic, partition, sequence, event_id, body, reason, error, attempts,
       first_failure_at, last_failure_at, dead_lettered_at) VALUES (?, ?, 'events', 0, 1, ?, ?, 'max_retries', 'answered 500', 3, ?, ?, ?)`,
  )
    .bind(id, HOOK, id, JSON.stringify(delivery), now, now, now)
    .run();
}
