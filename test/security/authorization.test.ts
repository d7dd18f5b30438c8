import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { testBindings } from "../bindings";
import { BATCH, event, expectAccepted, expectProblem, request, STRUCTURED } from "../helpers";
import {
  asKey,
  auditSearch,
  type CreatedTestKey,
  captureConsole,
  chunkedBody,
  createTestKey,
  dataHeads,
  expectAccessDenied,
  jsonInit,
  nestedJson,
  splitUtf8,
} from "./helpers";

/**
 * Authorization, route group by route group: API keys with narrow grants are refused (403
 * problem+json) whatever they are not granted, each refusal leaves an `access.denied` audit
 * record naming the key and what it lacked, and nothing changes. Grants are checked before the
 * topic is looked up (403, never 404, for a topic outside the grant), and request bodies are
 * bounded before any handler or Durable Object sees them.
 */

const HOOK = "authz-hook";
const LIMIT_BYTES = 1024 * 1024;

let producer: CreatedTestKey;
let consumer: CreatedTestKey;
let tenantProducer: CreatedTestKey;
let tenantConsumer: CreatedTestKey;
let replayer: CreatedTestKey;
let eventsAdmin: CreatedTestKey;
let denyOrders: CreatedTestKey;

const structured = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": STRUCTURED },
  body: typeof body === "string" ? body : JSON.stringify(body),
});

const orderPlaced = () =>
  event({
    type: "orders.placed",
    subject: `ord-${crypto.randomUUID()}`,
    data: { orderId: "o-1", customerId: "c-1", currency: "EUR", lines: [{ sku: "A", quantity: 1, unitPrice: 100 }] },
  });

const placeOrderBody = { customerId: "authz-customer", currency: "EUR", lines: [{ sku: "A", quantity: 1, unitPrice: 100 }] };

async function dlqDepth(subscription: string): Promise<number> {
  const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM dead_letters WHERE subscription = ?")
    .bind(subscription)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

async function replayJobCount(): Promise<number> {
  return (await env.DB.prepare("SELECT COUNT(*) AS n FROM replay_jobs").first<{ n: number }>())?.n ?? 0;
}

async function keyIds(): Promise<string[]> {
  const res = await request("/v1/keys");
  expect(res.status).toBe(200);
  return ((await res.json()) as { keys: { id: string }[] }).keys.map((k) => k.id).sort();
}

async function subscriptionExists(name: string): Promise<boolean> {
  const res = await request(`/v1/subscriptions/${name}`);
  await res.body?.cancel();
  expect([200, 404]).toContain(res.status);
  return res.status === 200;
}

async function archiveManifest(topic: string): Promise<unknown> {
  const res = await request(`/v1/topics/${topic}/archive`);
  expect(res.status).toBe(200);
  return res.json();
}

async function vaultStatus(): Promise<{ keys: number; shredded: number }> {
  const res = await request("/v1/encryption");
  expect(res.status).toBe(200);
  return ((await res.json()) as { dataKeys: { keys: number; shredded: number } }).dataKeys;
}

async function visibleTopics(key: CreatedTestKey | "admin"): Promise<string[]> {
  const res = key === "admin" ? await request("/v1/topics") : await asKey(key, "/v1/topics");
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return (JSON.parse(text) as { topics: { name: string }[] }).topics.map((t) => t.name).sort();
}

/** A dead letter of the webhook subscription that a redrive would send (and delete). */
async function seedDeadLetter(id: string): Promise<void> {
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

beforeAll(async () => {
  [producer, consumer, tenantProducer, tenantConsumer, replayer, eventsAdmin, denyOrders] = await Promise.all([
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
});

describe("ingest: who may produce where", () => {
  it("a producer of one topic is refused on every other topic (403, audited, nothing stored); its own topic works", async () => {
    const before = await dataHeads();
    for (const topic of ["orders", "customers"]) {
      await expectAccessDenied(await asKey(producer, `/v1/topics/${topic}/events`, structured(event())), {
        actor: producer.principal,
        reason: ["produce", `topic ${topic}`],
        resource: `topic:${topic}`,
      });
    }
    await expectAccessDenied(await asKey(producer, "/v1/topics/orders/streams/ord-1/events", structured(orderPlaced())), {
      actor: producer.principal,
      reason: ["produce", "topic orders"],
    });
    expect(await dataHeads()).toEqual(before);

    const [ack] = await expectAccepted(await asKey(producer, "/v1/topics/events/events", structured(event())));
    const after = await dataHeads();
    expect(after.events?.[ack?.partition ?? -1]).toBe((before.events?.[ack?.partition ?? -1] ?? 0) + 1);
  });

  it("a prefix grant ends at its delimiter: produce:acme. covers neither acme-evil, acmeX, acme_x nor acme (403 before the topic lookup)", async () => {
    const before = await dataHeads();
    for (const topic of ["acme-evil", "acmeX", "acmex", "acme_x", "acme"]) {
      await expectAccessDenied(await asKey(tenantProducer, `/v1/topics/${topic}/events`, structured(event())), {
        actor: tenantProducer.principal,
        reason: ["produce", `topic ${topic}`],
        resource: `topic:${topic}`,
      });
    }
    // Inside the prefix the grant applies: the (non-existent) topic is then looked up, and is a 404.
    expect((await expectProblem(await asKey(tenantProducer, "/v1/topics/acme.orders/events", structured(event())), 404)).code).toBe(
      "topic_not_found",
    );
    // The same for `consume:acme.*` (the `*` spelling of the prefix).
    for (const topic of ["acme-evil", "acme"]) {
      await expectAccessDenied(await asKey(tenantConsumer, `/v1/topics/${topic}/partitions/0/events`), {
        actor: tenantConsumer.principal,
        reason: ["consume", `topic ${topic}`],
      });
    }
    await expectProblem(await asKey(tenantConsumer, "/v1/topics/acme.orders/partitions/0/events"), 404);
    // A consume grant does not imply produce, even inside the prefix.
    await expectAccessDenied(await asKey(tenantConsumer, "/v1/topics/acme.orders/events", structured(event())), {
      actor: tenantConsumer.principal,
      reason: ["produce", "topic acme.orders"],
    });
    expect(await dataHeads()).toEqual(before);
  });

  it("a consumer may read the events topic but not produce to it", async () => {
    const before = await dataHeads();
    await expectAccessDenied(await asKey(consumer, "/v1/topics/events/events", structured(event())), {
      actor: consumer.principal,
      reason: ["produce", "topic events"],
    });
    await expectAccessDenied(
      await asKey(consumer, "/v1/topics/events/events", {
        method: "POST",
        headers: { "content-type": BATCH },
        body: JSON.stringify([event()]),
      }),
      { actor: consumer.principal, reason: ["produce", "topic events"] },
    );
    expect(await dataHeads()).toEqual(before);
    const read = await asKey(consumer, "/v1/topics/events/partitions/0/events");
    expect(read.status, await read.text()).toBe(200);
    const topic = await asKey(consumer, "/v1/topics/events");
    expect(topic.status, await topic.text()).toBe(200);
  });

  it("a deny overrides an allow: admin:* with !produce:orders cannot produce orders events or commands, but produces events", async () => {
    const before = await dataHeads();
    const denied: [string, RequestInit][] = [
      ["/v1/topics/orders/events", structured(orderPlaced())],
      ["/v1/topics/orders/events", { method: "POST", headers: { "content-type": BATCH }, body: JSON.stringify([orderPlaced()]) }],
      ["/v1/topics/orders/streams/ord-deny/events", structured(orderPlaced())],
      ["/v1/orders", jsonInit(placeOrderBody)],
      ["/v1/orders/ord-deny/pay", jsonInit({ amount: 100, currency: "EUR" })],
      ["/v1/orders/ord-deny/cancel", jsonInit({})],
    ];
    for (const [path, init] of denied) {
      await expectAccessDenied(await asKey(denyOrders, path, init), { actor: denyOrders.principal, reason: ["produce", "topic orders"] });
    }
    expect(await dataHeads()).toEqual(before);
    const orders = await request("/v1/orders?customer=authz-customer");
    expect(((await orders.json()) as { orders: unknown[] }).orders).toEqual([]);

    await expectAccepted(await asKey(denyOrders, "/v1/topics/events/events", structured(event())));
    // The deny is only of produce: reading orders (implied by admin:*) still works.
    const read = await asKey(denyOrders, "/v1/topics/orders/partitions/0/events");
    expect(read.status, await read.text()).toBe(200);
  });

  it("a deny of admin on one topic takes away the global functions of admin:*", async () => {
    const partial = await createTestKey("admin-but-orders", ["admin:*", "!admin:orders"]);
    const keys = await keyIds();
    await expectAccessDenied(await asKey(partial, "/v1/keys", jsonInit({ name: "escalate", grants: ["admin:*"] })), {
      actor: partial.principal,
      reason: ["admin:*"],
    });
    await expectAccessDenied(await asKey(partial, "/v1/audit"), { actor: partial.principal, reason: ["admin:*"] });
    await expectAccessDenied(await asKey(partial, "/v1/topics/orders/archive", { method: "POST" }), {
      actor: partial.principal,
      reason: ["admin", "topic orders"],
    });
    expect(await keyIds()).toEqual(keys);
    // The deny names admin only: produce on orders, implied by admin:*, is not denied by it.
    await expectAccepted(await asKey(partial, "/v1/topics/orders/events", structured(orderPlaced())));
    const archive = await asKey(partial, "/v1/topics/events/archive", { method: "POST" });
    expect(archive.status, await archive.text()).toBe(200);
  });

  it("nobody, not even the admin key, may produce to the internal audit topic", async () => {
    const forged = event({ source: "/authz-forged", type: "eventline.audit.keys.create" });
    const cases: [string, (path: string, init: RequestInit) => Promise<Response>, string][] = [
      ["admin", request, "admin"],
      ["admin:* key", (path, init) => asKey(denyOrders, path, init), denyOrders.principal],
      ["events admin", (path, init) => asKey(eventsAdmin, path, init), eventsAdmin.principal],
    ];
    for (const [, send, actor] of cases) {
      await expectAccessDenied(await send("/v1/topics/audit/events", structured(forged)), { actor, reason: ["audit"] });
      await expectAccessDenied(
        await send("/v1/topics/audit/events", { method: "POST", headers: { "content-type": BATCH }, body: JSON.stringify([forged]) }),
        { actor, reason: ["audit"] },
      );
      await expectAccessDenied(await send("/v1/topics/audit/streams/keys/events", structured(forged)), { actor, reason: ["audit"] });
    }
    // The audit log holds the denials, but never the forged event.
    const stored = await request("/v1/topics/audit/partitions/0/events?limit=1000");
    const text = await stored.text();
    expect(stored.status, text).toBe(200);
    expect(text).toContain("access.denied");
    expect(text).not.toContain(forged.id as string);
    expect(text).not.toContain("/authz-forged");
  });

  it("server-owned CloudEvents attributes in the body are a 400 naming the attribute; nothing is stored", async () => {
    const before = await dataHeads();
    for (const [attr, value] of [
      ["partition", 0],
      ["sequence", "00000000000000000001"],
      ["receivedtime", "2026-01-01T00:00:00Z"],
      ["streamversion", 1],
    ] as const) {
      const single = await expectProblem(await request("/v1/topics/events/events", structured(event({ [attr]: value }))), 400);
      expect(single.code).toBe("invalid_envelope");
      expect(single.issues?.map((i) => i.path)).toContain(`/${attr}`);
      const batch = await expectProblem(
        await request("/v1/topics/events/events", {
          method: "POST",
          headers: { "content-type": BATCH },
          body: JSON.stringify([event(), event({ [attr]: value })]),
        }),
        400,
      );
      expect(batch.issues?.map((i) => i.path)).toContain(`/1/${attr}`);
      // Binary mode: the same attribute as a ce- header.
      const binary = await expectProblem(
        await request("/v1/topics/events/events", {
          method: "POST",
          headers: {
            "ce-specversion": "1.0",
            "ce-id": crypto.randomUUID(),
            "ce-source": "/tests",
            "ce-type": "test.created",
            [`ce-${attr}`]: String(value),
            "content-type": "application/json",
          },
          body: "{}",
        }),
        400,
      );
      expect(binary.issues?.map((i) => i.path)).toContain(`/headers/ce-${attr}`);
    }
    expect(await dataHeads()).toEqual(before);
  });
});

describe("ingest: bounded bodies", () => {
  it("a body over 1 MiB is a 413 before any Durable Object is called: nothing stored, no data key made", async () => {
    const before = await dataHeads();
    const vaultBefore = await vaultStatus();
    const subject = `authz-oversize-${crypto.randomUUID()}`;
    const oversize = JSON.stringify(
      event({ type: "customer.created", subject, data: { email: "x@example.com", pad: "p".repeat(LIMIT_BYTES) } }),
    );
    expect(new TextEncoder().encode(oversize).byteLength).toBeGreaterThan(LIMIT_BYTES);
    const logs = captureConsole();
    try {
      // Declared by Content-Length (as fetch sets it for a string body)…
      const declared = await expectProblem(await request("/v1/topics/customers/events", structured(oversize)), 413);
      expect(declared.code).toBe("payload_too_large");
      // …and streamed without one: counted while read.
      const streamed = await request("/v1/topics/customers/events", {
        method: "POST",
        headers: { "content-type": STRUCTURED },
        body: chunkedBody(splitUtf8(oversize, 64 * 1024)),
        duplex: "half",
      } as RequestInit);
      expect((await expectProblem(streamed, 413)).code).toBe("payload_too_large");
      // No partition was asked to append (each append is logged).
      expect(logs.text()).not.toContain('"msg":"append"');
    } finally {
      logs.restore();
    }
    expect(await dataHeads()).toEqual(before);
    // The KeyVault was not called either: no data key for the event's subject.
    expect(await vaultStatus()).toEqual(vaultBefore);
  });

  it("a lying Content-Length (declares a few bytes, streams more than 1 MiB) on ingest is a 413; nothing stored", async () => {
    const before = await dataHeads();
    const body = JSON.stringify(event({ data: { pad: "z".repeat(LIMIT_BYTES + 1000) } }));
    const res = await request("/v1/topics/events/events", {
      method: "POST",
      headers: { "content-type": STRUCTURED, "content-length": "100" },
      body: chunkedBody(splitUtf8(body, 100)),
      duplex: "half",
    } as RequestInit);
    expect((await expectProblem(res, 413)).code).toBe("payload_too_large");
    expect(await dataHeads()).toEqual(before);
  });

  it("an event nested 100 levels deep is a 400 whose issue points at the first value too deep", async () => {
    const before = await dataHeads();
    const deep = await expectProblem(await request("/v1/topics/events/events", structured(event({ data: nestedJson(100) }))), 400);
    expect(deep.code).toBe("invalid_envelope");
    // The event is level 0, so the first object beyond level 63 is data/a×63.
    expect(deep.issues?.[0]?.path).toBe(`/data${"/a".repeat(63)}`);
    expect(deep.issues?.[0]?.message).toContain("64");
    const batch = await expectProblem(
      await request("/v1/topics/events/events", {
        method: "POST",
        headers: { "content-type": BATCH },
        body: JSON.stringify([event(), event({ data: [nestedJson(100)] })]),
      }),
      400,
    );
    expect(batch.issues?.[0]?.path).toBe(`/1/data/0${"/a".repeat(62)}`);
    expect(await dataHeads()).toEqual(before);
  });

  it("an event with 20,000 members is a 400; nothing stored", async () => {
    const before = await dataHeads();
    const data = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, i]));
    const wide = await expectProblem(await request("/v1/topics/events/events", structured(event({ data }))), 400);
    expect(wide.code).toBe("invalid_envelope");
    expect(wide.issues?.[0]).toMatchObject({ path: "/", message: expect.stringContaining("10000") });
    const array = await expectProblem(
      await request("/v1/topics/events/events", structured(event({ data: Array.from({ length: 20_000 }, () => 0) }))),
      400,
    );
    expect(array.code).toBe("invalid_envelope");
    expect(await dataHeads()).toEqual(before);
  });
});

describe("reads", () => {
  it("a producer cannot read partitions, streams, topic details, subscriptions or the orders read models", async () => {
    const cases: [string, string][] = [
      ["/v1/topics/events", "consume"],
      ["/v1/topics/events/partitions/0/events", "consume"],
      ["/v1/topics/events/streams/s-1", "consume"],
      ["/v1/topics/events/streams/s-1/events", "consume"],
      ["/v1/subscriptions/activity", "consume"],
      ["/v1/subscriptions/activity/dlq", "admin"],
      ["/v1/topics/events/archive", "admin"],
    ];
    for (const [path, action] of cases) {
      await expectAccessDenied(await asKey(producer, path), { actor: producer.principal, reason: [action, "topic events"] });
    }
    for (const path of ["/v1/orders", "/v1/orders/ord-1", "/v1/customers/c-1/summary", "/v1/topics/orders/partitions/0/events"]) {
      await expectAccessDenied(await asKey(producer, path), { actor: producer.principal, reason: ["consume", "topic orders"] });
    }
  });

  it("GET /v1/topics lists only what the caller holds a grant on (and /v1/subscriptions what it may consume)", async () => {
    expect(await visibleTopics("admin")).toEqual(["audit", "customers", "events", "orders"]);
    // The audit topic is listed for global admins only; a topic deny makes admin:* no global admin.
    expect(await visibleTopics(denyOrders)).toEqual(["customers", "events", "orders"]);
    expect(await visibleTopics(producer)).toEqual(["events"]);
    expect(await visibleTopics(consumer)).toEqual(["events"]);
    expect(await visibleTopics(replayer)).toEqual(["events"]);
    expect(await visibleTopics(eventsAdmin)).toEqual(["events"]);
    expect(await visibleTopics(tenantProducer)).toEqual([]);
    expect(await visibleTopics(tenantConsumer)).toEqual([]);

    // A key holding only a deny sees nothing at all.
    const denyOnly = await createTestKey("deny-only", ["!produce:orders"]);
    await expectAccessDenied(await asKey(denyOnly, "/v1/topics"), { actor: denyOnly.principal, reason: ["has no grants"] });

    const subscriptionTopics = async (key: CreatedTestKey) => {
      const subs = await asKey(key, "/v1/subscriptions");
      expect(subs.status).toBe(200);
      return [...new Set(((await subs.json()) as { subscriptions: { topic: string }[] }).subscriptions.map((s) => s.topic))];
    };
    expect(await subscriptionTopics(consumer)).toEqual(["events"]);
    expect(await subscriptionTopics(producer)).toEqual([]);
  });
});

describe("admin and global functions", () => {
  it("a producer gets a 403 from every admin and global function, each audited, and nothing changes", async () => {
    await seedDeadLetter("dl-authz-producer");
    const state = async () => ({
      dlq: await dlqDepth(HOOK),
      replays: await replayJobCount(),
      keys: await keyIds(),
      vault: await vaultStatus(),
      manifest: await archiveManifest("events"),
      evil: await subscriptionExists("authz-evil"),
      hook: await subscriptionExists(HOOK),
      heads: await dataHeads(),
    });
    const before = await state();
    expect(before.dlq).toBeGreaterThanOrEqual(1);
    const GLOBAL = "admin on every topic (admin:*)";
    const cases: { method: string; path: string; body?: unknown; reason: string[]; attempted?: string }[] = [
      {
        method: "POST",
        path: "/v1/replays",
        body: { topic: "events", from: { sequence: 1 }, subscription: HOOK },
        reason: ["replay", "topic events"],
        attempted: "replays.create",
      },
      {
        method: "POST",
        path: `/v1/subscriptions/${HOOK}/dlq/redrive`,
        body: {},
        reason: ["admin", "topic events"],
        attempted: "dlq.redrive",
      },
      { method: "POST", path: "/v1/keys", body: { name: "escalate", grants: ["admin:*"] }, reason: [GLOBAL], attempted: "keys.create" },
      { method: "GET", path: "/v1/keys", reason: [GLOBAL] },
      { method: "GET", path: "/v1/audit", reason: [GLOBAL] },
      { method: "DELETE", path: "/v1/subjects/x/keys", reason: [GLOBAL], attempted: "subjects.shred" },
      { method: "GET", path: "/v1/encryption", reason: [GLOBAL] },
      { method: "POST", path: "/v1/encryption/rewrap", body: {}, reason: [GLOBAL], attempted: "keys.rewrap" },
      { method: "POST", path: "/v1/topics/events/archive", reason: ["admin", "topic events"], attempted: "archive.seal" },
      {
        method: "POST",
        path: "/v1/projections/orders-view/rebuild",
        body: {},
        reason: ["admin", "topic orders"],
        attempted: "projections.rebuild",
      },
      {
        method: "POST",
        path: "/v1/subscriptions",
        body: { name: "authz-evil", topic: "events", webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/authz-evil` } },
        reason: ["admin", "topic events"],
        attempted: "subscriptions.create",
      },
      { method: "DELETE", path: `/v1/subscriptions/${HOOK}`, reason: ["admin", "topic events"], attempted: "subscriptions.delete" },
    ];
    for (const c of cases) {
      const init: RequestInit = c.body === undefined ? { method: c.method } : jsonInit(c.body, { method: c.method });
      await expectAccessDenied(await asKey(producer, c.path, init), {
        actor: producer.principal,
        reason: c.reason,
        ...(c.attempted === undefined ? {} : { attempted: c.attempted }),
      });
    }
    expect(await state()).toEqual(before);
    // No admin action was recorded as done by the producer.
    const done = (await auditSearch({ actor: producer.principal })).filter((r) => r.outcome !== "denied");
    expect(done).toEqual([]);
  });

  it("a consumer reads the events topic and its subscriptions, but cannot replay, redrive, archive or subscribe", async () => {
    const before = { dlq: await dlqDepth(HOOK), replays: await replayJobCount() };
    expect((await asKey(consumer, `/v1/subscriptions/${HOOK}`)).status).toBe(200);
    await expectAccessDenied(
      await asKey(consumer, "/v1/replays", jsonInit({ topic: "events", from: { sequence: 1 }, subscription: HOOK })),
      { actor: consumer.principal, reason: ["replay", "topic events"] },
    );
    await expectAccessDenied(await asKey(consumer, `/v1/subscriptions/${HOOK}/dlq/redrive`, jsonInit({})), {
      actor: consumer.principal,
      reason: ["admin", "topic events"],
    });
    await expectAccessDenied(await asKey(consumer, "/v1/topics/events/archive", { method: "POST" }), {
      actor: consumer.principal,
      reason: ["admin", "topic events"],
    });
    expect({ dlq: await dlqDepth(HOOK), replays: await replayJobCount() }).toEqual(before);
  });

  it("a replayer creates a replay of an events subscription (201, audited) but may not redrive its DLQ or replay orders", async () => {
    await seedDeadLetter("dl-authz-replayer");
    const dlqBefore = await dlqDepth(HOOK);
    const res = await asKey(
      replayer,
      "/v1/replays",
      jsonInit({ topic: "events", partitions: [0], from: { sequence: 1 }, subscription: HOOK }),
    );
    const text = await res.text();
    expect(res.status, text).toBe(201);
    const job = JSON.parse(text) as { id: string; topic: string; subscription: string };
    expect(job).toMatchObject({ topic: "events", subscription: HOOK });
    const created = (await auditSearch({ action: "replays.create", actor: replayer.principal })).filter((r) => r.outcome === "success");
    expect(created).toHaveLength(1);
    expect(created[0]).toMatchObject({ status: 201, resource: "topic:events" });
    expect((await asKey(replayer, `/v1/replays/${job.id}`)).status).toBe(200);

    await expectAccessDenied(await asKey(replayer, `/v1/subscriptions/${HOOK}/dlq/redrive`, jsonInit({})), {
      actor: replayer.principal,
      reason: ["admin", "topic events"],
      attempted: "dlq.redrive",
    });
    expect(await dlqDepth(HOOK)).toBe(dlqBefore);
    const replays = await replayJobCount();
    await expectAccessDenied(
      await asKey(replayer, "/v1/replays", jsonInit({ topic: "orders", from: { sequence: 1 }, subscription: "orders-view" })),
      { actor: replayer.principal, reason: ["replay", "topic orders"] },
    );
    await expectAccessDenied(await asKey(replayer, "/v1/projections/activity/rebuild", jsonInit({})), {
      actor: replayer.principal,
      reason: ["admin", "topic events"],
    });
    expect(await replayJobCount()).toBe(replays);
  });

  it("admin:events redrives and archives events, but not orders, and none of the global functions", async () => {
    await seedDeadLetter("dl-authz-admin");
    const redrive = await asKey(eventsAdmin, `/v1/subscriptions/${HOOK}/dlq/redrive`, jsonInit({}));
    const redriven = await redrive.text();
    expect(redrive.status, redriven).toBe(200);
    expect(JSON.parse(redriven)).toMatchObject({ remaining: 0 });
    expect(await dlqDepth(HOOK)).toBe(0);
    const archive = await asKey(eventsAdmin, "/v1/topics/events/archive", { method: "POST" });
    expect(archive.status, await archive.text()).toBe(200);
    const outcomes = await auditSearch({ actor: eventsAdmin.principal, outcome: "success" });
    expect(outcomes.map((r) => r.action)).toEqual(expect.arrayContaining(["dlq.redrive", "archive.seal"]));

    const before = {
      manifest: await archiveManifest("orders"),
      replays: await replayJobCount(),
      keys: await keyIds(),
      vault: await vaultStatus(),
      sub: await subscriptionExists("authz-orders-hook"),
    };
    const GLOBAL = "admin on every topic (admin:*)";
    const cases: [string, RequestInit, string[]][] = [
      ["/v1/subscriptions/orders-view/dlq/redrive", jsonInit({}), ["admin", "topic orders"]],
      ["/v1/topics/orders/archive", { method: "POST" }, ["admin", "topic orders"]],
      ["/v1/projections/orders-view/rebuild", jsonInit({}), ["admin", "topic orders"]],
      [
        "/v1/subscriptions",
        jsonInit({ name: "authz-orders-hook", topic: "orders", webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/authz-orders-hook` } }),
        ["admin", "topic orders"],
      ],
      ["/v1/keys", jsonInit({ name: "escalate", grants: ["admin:*"] }), [GLOBAL]],
      ["/v1/keys", { method: "GET" }, [GLOBAL]],
      ["/v1/audit", { method: "GET" }, [GLOBAL]],
      ["/v1/subjects/x/keys", { method: "DELETE" }, [GLOBAL]],
      ["/v1/encryption", { method: "GET" }, [GLOBAL]],
      ["/v1/encryption/rewrap", jsonInit({}), [GLOBAL]],
    ];
    for (const [path, init, reason] of cases) {
      await expectAccessDenied(await asKey(eventsAdmin, path, init), { actor: eventsAdmin.principal, reason });
    }
    expect({
      manifest: await archiveManifest("orders"),
      replays: await replayJobCount(),
      keys: await keyIds(),
      vault: await vaultStatus(),
      sub: await subscriptionExists("authz-orders-hook"),
    }).toEqual(before);
  });

  it("a webhook subscription body cannot set an owner or createdBy (strict: 400) and nothing is created", async () => {
    const url = `${testBindings.WEBHOOK_SINK}/hooks/authz-owned`;
    const bodies = [
      { name: "authz-owned", topic: "events", webhook: { url }, owner: "key:someone-else" },
      { name: "authz-owned", topic: "events", webhook: { url }, createdBy: "admin" },
      { name: "authz-owned", topic: "events", webhook: { url, owner: "key:someone-else" } },
    ];
    for (const body of bodies) {
      // As the admin, and as a topic admin whose grant covers the topic: refused for the body, not the caller.
      for (const send of [request, (p: string, i: RequestInit) => asKey(eventsAdmin, p, i)]) {
        const problem = await expectProblem(await send("/v1/subscriptions", jsonInit(body)), 400);
        expect(problem.code).toBe("invalid_parameter");
        expect(JSON.stringify(problem.issues)).toMatch(/owner|createdBy/);
      }
    }
    expect(await subscriptionExists("authz-owned")).toBe(false);
    // The same body without the extra member is accepted (from the topic admin), so the 400 was only for it.
    const ok = await asKey(eventsAdmin, "/v1/subscriptions", jsonInit({ name: "authz-owned", topic: "events", webhook: { url } }));
    expect(ok.status, await ok.text()).toBe(201);
    expect(await subscriptionExists("authz-owned")).toBe(true);
  });

  it("API key bodies are bounded: over 64 KiB is a 413 and no key is created", async () => {
    const before = await keyIds();
    // Valid JSON (whitespace padding), so only its size can refuse it.
    const body = `{"name":"oversize","grants":["produce:events"]}${" ".repeat(70 * 1024)}`;
    const res = await request("/v1/keys", { method: "POST", headers: { "content-type": "application/json" }, body });
    expect((await expectProblem(res, 413)).code).toBe("payload_too_large");
    const streamed = await request("/v1/keys", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chunkedBody(splitUtf8(body, 1024)),
      duplex: "half",
    } as RequestInit);
    expect((await expectProblem(streamed, 413)).code).toBe("payload_too_large");
    expect(await keyIds()).toEqual(before);
  });

  it("a lying Content-Length on an admin route (declares 48 bytes, streams 70 KiB) is a 413 and no key is created", async () => {
    const before = await keyIds();
    const head = `{"name":"smuggled","grants":["admin:*"]}`;
    const body = `${head}${" ".repeat(70 * 1024)}`;
    const res = await request("/v1/keys", {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": String(head.length) },
      body: chunkedBody(splitUtf8(body, head.length)),
      duplex: "half",
    } as RequestInit);
    expect((await expectProblem(res, 413)).code).toBe("payload_too_large");
    expect(await keyIds()).toEqual(before);
  });

  it("deeply nested admin bodies are a 400, never a 5xx, and create nothing", async () => {
    const url = `${testBindings.WEBHOOK_SINK}/hooks/authz-deep`;
    const deepFilter = { type: [nestedJson(1000, "x")] };
    const sub = await expectProblem(
      await request("/v1/subscriptions", jsonInit({ name: "authz-deep", topic: "events", filter: deepFilter, webhook: { url } })),
      400,
    );
    expect(sub.code).toBe("malformed_request");
    expect(await subscriptionExists("authz-deep")).toBe(false);
    // Just past the admin depth limit of 16 is refused the same way.
    const justPast = await request(
      "/v1/subscriptions",
      jsonInit({ name: "authz-deep", topic: "events", filter: nestedJson(16), webhook: { url } }),
    );
    expect((await expectProblem(justPast, 400)).code).toBe("malformed_request");
    expect(await subscriptionExists("authz-deep")).toBe(false);

    const replays = await replayJobCount();
    const replay = await request(
      "/v1/replays",
      jsonInit({ topic: "events", from: { sequence: 1 }, subscription: HOOK, filter: nestedJson(1000) }),
    );
    expect((await expectProblem(replay, 400)).code).toBe("malformed_request");
    expect(await replayJobCount()).toBe(replays);
    const keys = await keyIds();
    const key = await request("/v1/keys", jsonInit(`{"name":"deep","grants":${"[".repeat(1000)}${"]".repeat(1000)}}`));
    await expectProblem(key, 400);
    expect(await keyIds()).toEqual(keys);
  });
});

describe("audit records of denials", () => {
  it("name the key (and its tenant), never its secret, in the records and in the stored audit log", async () => {
    const { record } = await expectAccessDenied(await asKey(producer, "/v1/topics/orders/events", structured(event())), {
      actor: producer.principal,
      reason: ["produce", "topic orders"],
    });
    expect(record).toMatchObject({ method: "POST", path: "/v1/topics/orders/events", actor: { id: producer.principal, kind: "api-key" } });
    expect(JSON.stringify(record)).not.toContain(producer.key);
    // The secret is everything after `evl_<12-char id>_`; it may itself contain "_" (base64url).
    const secret = producer.key.slice("evl_".length + 12 + 1);
    expect(secret).toHaveLength(43);
    expect(JSON.stringify(record)).not.toContain(secret);
    // The tenant of a key is named in its audit records.
    const { record: tenantRecord } = await expectAccessDenied(await asKey(tenantProducer, "/v1/topics/acme/events", structured(event())), {
      actor: tenantProducer.principal,
      reason: ["produce", "topic acme"],
    });
    expect(tenantRecord.actor).toMatchObject({ tenant: "acme" });
    // The stored audit events: the key id only, never its secret.
    await runInDurableObject(env.PARTITION_LOG.getByName("audit/0"), async (_i: unknown, state: DurableObjectState) => {
      const bodies = state.storage.sql
        .exec<{ body: string }>("SELECT body FROM events")
        .toArray()
        .map((r) => r.body)
        .join("\n");
      expect(bodies).toContain(producer.principal);
      expect(bodies).not.toContain(producer.key);
    });
  });
});

describe("a deny of consume also denies moving the topic's events elsewhere", () => {
  it("replay:events or admin:events with !consume:events: no replay create, status, cancel or listing, no rebuild, no DLQ (403, audited)", async () => {
    const created = await request("/v1/replays", jsonInit({ topic: "events", partitions: [0], from: { sequence: 1 }, subscription: HOOK }));
    const createdText = await created.text();
    expect(created.status, createdText).toBe(201);
    const job = JSON.parse(createdText) as { id: string };
    await seedDeadLetter(`dl-authz-deny-consume-${crypto.randomUUID()}`);
    const jobState = async () => ((await (await request(`/v1/replays/${job.id}`)).json()) as { state: string }).state;

    for (const [name, grants] of [
      ["deny-consume-replayer", ["replay:events", "!consume:events"]],
      ["deny-consume-admin", ["admin:events", "!consume:events"]],
    ] as const) {
      const key = await createTestKey(name, [...grants]);
      const before = { replays: await replayJobCount(), dlq: await dlqDepth(HOOK) };
      const cases: [string, RequestInit, string[], string | undefined][] = [
        [
          "/v1/replays",
          jsonInit({ topic: "events", partitions: [0], from: { sequence: 1 }, subscription: HOOK }),
          ["replay", "topic events"],
          "replays.create",
        ],
        [`/v1/replays/${job.id}`, { method: "GET" }, ["replay", "topic events"], undefined],
        [`/v1/replays/${job.id}`, { method: "DELETE" }, ["replay", "topic events"], "replays.cancel"],
        ["/v1/projections/activity/rebuild", jsonInit({}), ["admin", "topic events"], "projections.rebuild"],
        [`/v1/subscriptions/${HOOK}/dlq`, { method: "GET" }, ["admin", "topic events"], undefined],
        [`/v1/subscriptions/${HOOK}/dlq/redrive`, jsonInit({}), ["admin", "topic events"], "dlq.redrive"],
      ];
      for (const [path, init, reason, attempted] of cases) {
        await expectAccessDenied(await asKey(key, path, init), {
          actor: key.principal,
          reason,
          ...(attempted === undefined ? {} : { attempted }),
        });
      }
      // The job list shows none of the topic's jobs.
      const list = await asKey(key, "/v1/replays");
      const listed = await list.text();
      expect(list.status, listed).toBe(200);
      expect((JSON.parse(listed) as { replays: { topic: string }[] }).replays.filter((r) => r.topic === "events")).toEqual([]);
      // Nothing changed: no job created, the admin's job not cancelled, the DLQ as it was.
      expect({ replays: await replayJobCount(), dlq: await dlqDepth(HOOK) }).toEqual(before);
      expect(await jobState()).not.toBe("cancelled");
      expect((await auditSearch({ actor: key.principal })).filter((r) => r.outcome !== "denied")).toEqual([]);
    }
  });
});

describe("subscriptions are seen only by who may consume their topic", () => {
  const names = async (key: CreatedTestKey, path: string, member: "subscriptions" | "replays") => {
    const res = await asKey(key, path);
    const text = await res.text();
    expect(res.status, text).toBe(200);
    const body = JSON.parse(text) as Record<string, { subscription?: string; name?: string; topic: string }[]>;
    return (body[member] ?? []).map((s) => `${s.topic}/${s.name ?? s.subscription}`).sort();
  };

  it("GET /v1/subscriptions and /v1/metrics list a topic's subscriptions to its consumers only, not to its producers or replayers", async () => {
    const eventsSubscriptions = ["events/activity", `events/${HOOK}`, "events/greetings"];
    expect(await names(consumer, "/v1/subscriptions", "subscriptions")).toEqual(expect.arrayContaining(eventsSubscriptions));
    expect((await names(consumer, "/v1/subscriptions", "subscriptions")).every((n) => n.startsWith("events/"))).toBe(true);
    for (const key of [producer, replayer]) {
      // Each of them gets a 403 from GET /v1/subscriptions/{name} for these, so the list shows none.
      await expectAccessDenied(await asKey(key, "/v1/subscriptions/activity"), {
        actor: key.principal,
        reason: ["consume", "topic events"],
      });
      expect(await names(key, "/v1/subscriptions", "subscriptions")).toEqual([]);
      expect(await names(key, "/v1/metrics", "subscriptions")).toEqual([]);
    }
    expect(await names(consumer, "/v1/metrics", "subscriptions")).toEqual(expect.arrayContaining(eventsSubscriptions));
  });

  it("a name outside the caller's grants is a 403 whether it exists or not (same detail), on every route about one subscription or replay", async () => {
    const hidden = `authz-hidden-${crypto.randomUUID().slice(0, 8)}`;
    const missing = `authz-missing-${crypto.randomUUID().slice(0, 8)}`;
    const sub = await request(
      "/v1/subscriptions",
      jsonInit({
        name: hidden,
        topic: "customers",
        filter: { type: ["authz.none"] },
        webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/${hidden}` },
      }),
    );
    expect(sub.status, await sub.text()).toBe(201);
    const job = await request(
      "/v1/replays",
      jsonInit({ topic: "customers", partitions: [0], from: { sequence: 1 }, subscription: hidden }),
    );
    const jobText = await job.text();
    expect(job.status, jobText).toBe(201);
    const jobId = (JSON.parse(jobText) as { id: string }).id;
    const missingJob = `rpl_${"0".repeat(32)}`;

    const pairs: {
      key: CreatedTestKey;
      action: string;
      init: () => RequestInit;
      path: (name: string) => string;
      names: [string, string];
    }[] = [
      { key: consumer, action: "consume", init: () => ({}), path: (n) => `/v1/subscriptions/${n}`, names: [hidden, missing] },
      { key: eventsAdmin, action: "admin", init: () => ({}), path: (n) => `/v1/subscriptions/${n}/dlq`, names: [hidden, missing] },
      {
        key: eventsAdmin,
        action: "admin",
        init: () => jsonInit({}),
        path: (n) => `/v1/subscriptions/${n}/dlq/redrive`,
        names: [hidden, missing],
      },
      {
        key: eventsAdmin,
        action: "admin",
        init: () => ({ method: "DELETE" }),
        path: (n) => `/v1/subscriptions/${n}`,
        names: [hidden, missing],
      },
      {
        key: eventsAdmin,
        action: "admin",
        init: () => jsonInit({}),
        path: (n) => `/v1/projections/${n}/rebuild`,
        names: ["customer-summary", missing],
      },
      { key: replayer, action: "replay", init: () => ({}), path: (n) => `/v1/replays/${n}`, names: [jobId, missingJob] },
      { key: replayer, action: "replay", init: () => ({ method: "DELETE" }), path: (n) => `/v1/replays/${n}`, names: [jobId, missingJob] },
    ];
    const answer = (p: { detail: string; title: string; code: string; status: number }, name: string) => ({
      title: p.title,
      code: p.code,
      status: p.status,
      detail: p.detail.replaceAll(name, "<name>"),
    });
    for (const {
      key,
      action,
      init,
      path,
      names: [existing, absent],
    } of pairs) {
      const shown = await expectAccessDenied(await asKey(key, path(existing), init()), { actor: key.principal, reason: [action] });
      const hiddenMissing = await expectAccessDenied(await asKey(key, path(absent), init()), {
        actor: key.principal,
        reason: [action, "does not exist"],
      });
      // The caller cannot tell them apart; the audit record (global admins only) can.
      expect(answer(hiddenMissing.problem, absent), path(existing)).toEqual(answer(shown.problem, existing));
      expect(shown.problem.detail).not.toContain("customers");
      expect(shown.record.reason).toContain("topic ");
    }
    // Nothing changed: the subscription and the job are there, not cancelled.
    expect(await subscriptionExists(hidden)).toBe(true);
    const state = (await (await request(`/v1/replays/${jobId}`)).json()) as { state: string };
    expect(state.state).not.toBe("cancelled");
    // A principal that may use every topic is told what does not exist.
    expect((await expectProblem(await request(`/v1/subscriptions/${missing}`), 404)).code).toBe("not_found");
    expect((await expectProblem(await request(`/v1/replays/${missingJob}`), 404)).code).toBe("not_found");
    // And a key keeps seeing what its grants cover.
    expect((await asKey(consumer, `/v1/subscriptions/${HOOK}`)).status).toBe(200);
  });
});
