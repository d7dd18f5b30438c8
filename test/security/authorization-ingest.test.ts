import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { BATCH, event, expectAccepted, expectProblem, request, STRUCTURED } from "../helpers";
import { authzSetup, keyIds, LIMIT_BYTES, orderPlaced, placeOrderBody, structured, vaultStatus } from "./authz-fixtures";
import {
  asKey,
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
 * Authorization, route group by route group (what these tests show as a whole: authz-fixtures.ts).
 * This file: ingest — who may produce where (grants are checked before the topic is looked up:
 * 403, never 404, for a topic outside the grant), request bodies bounded before any handler or
 * Durable Object sees them, and what the audit records of those denials hold.
 */

let producer: CreatedTestKey;
let consumer: CreatedTestKey;
let tenantProducer: CreatedTestKey;
let tenantConsumer: CreatedTestKey;
let eventsAdmin: CreatedTestKey;
let denyOrders: CreatedTestKey;

beforeAll(async () => {
  ({ producer, consumer, tenantProducer, tenantConsumer, eventsAdmin, denyOrders } = await authzSetup());
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
