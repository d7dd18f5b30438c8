import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import committed from "../../docs/asyncapi.json";
import config from "../../eventline.config";
import pkg from "../../package.json";
import { configCatalog, LOCAL_ORIGIN, latestCatalog } from "../../workers/platform/asyncapi/catalog";
import { schemaCatalog } from "../../workers/platform/schemas/catalog";
import { invalidateSchemaCache } from "../../workers/platform/schemas/registry";
import { testBindings } from "../bindings";
import { anonymousRequest, BASE, expectProblem, request } from "../helpers";
import { asKey, type CreatedTestKey, createTestKey, jsonInit } from "../security/helpers";

/**
 * GET /asyncapi.json as served (ADR 0050): the committed docs/asyncapi.json is what a fresh stack
 * serves an admin (modulo the origin), the document follows the caller's grants, and runtime
 * webhook subscriptions appear by their target's origin only. test/docs/asyncapi.test.ts runs the
 * official parser over both the file and a live stack's document.
 */

interface Doc {
  info: { version: string };
  servers: Record<string, { host: string; protocol: string }>;
  channels: Record<string, { address: string | null; messages: Record<string, { $ref: string }>; "x-eventline-internal"?: boolean }>;
  operations: Record<string, { action: string; channel: { $ref: string }; "x-eventline-subscription"?: Record<string, unknown> }>;
  components: {
    messages: Record<
      string,
      {
        name: string;
        "x-eventline-dataschema"?: string;
        "x-eventline-schema-version"?: number;
        payload: { schema: { properties: { data: unknown } } };
      }
    >;
  };
}

const fetchDoc = async (res: Promise<Response>): Promise<{ doc: Doc; text: string }> => {
  const response = await res;
  const text = await response.text();
  expect(response.status, text).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^application\/json/);
  expect(response.headers.get("cache-control")).toBe("private, no-cache");
  return { doc: JSON.parse(text) as Doc, text };
};

const HOOK_URL = `${testBindings.WEBHOOK_SINK}/hooks/asyncapi-token-s3cr3t?sig=t0ken`;

describe("GET /asyncapi.json", () => {
  let producer: CreatedTestKey;
  let consumer: CreatedTestKey;

  beforeAll(async () => {
    [producer, consumer] = await Promise.all([
      createTestKey("asyncapi-producer", ["produce:orders"]),
      createTestKey("asyncapi-consumer", ["consume:events"]),
    ]);
  });

  it("is docs/asyncapi.json on a fresh stack (modulo the origin), with the package's version", async () => {
    const { doc, text } = await fetchDoc(request("/asyncapi.json"));
    expect(JSON.parse(text.replaceAll(BASE, LOCAL_ORIGIN).replaceAll(new URL(BASE).host, new URL(LOCAL_ORIGIN).host))).toEqual(committed);
    expect(doc.info.version).toBe(pkg.version);
    expect(doc.servers.eventline).toMatchObject({ host: new URL(BASE).host, protocol: "http" });
    // The committed file names the local stack, and no other origin.
    expect(JSON.stringify(committed)).not.toContain(BASE);
  });

  it("describes every topic address, typed messages with their dataschema, and the audit topic read-only", async () => {
    const { doc } = await fetchDoc(request("/asyncapi.json"));
    expect(doc.channels.orders?.address).toBe("/v1/topics/orders/events");
    expect(doc.channels["orders.partition"]?.address).toBe("/v1/topics/orders/partitions/{partition}/events");
    expect(doc.channels["orders.stream"]?.address).toBe("/v1/topics/orders/partitions/{partition}/stream");
    const placed = doc.components.messages["orders.orders.placed"];
    expect(placed?.name).toBe("orders.placed");
    expect(placed?.["x-eventline-dataschema"]).toBe(`${BASE}/v1/topics/orders/types/orders.placed/schemas/1`);
    // audit: readable by global admins, written only by the platform.
    expect(doc.channels.audit).toBeUndefined();
    expect(doc.operations["audit.publish"]).toBeUndefined();
    expect(doc.channels["audit.partition"]?.["x-eventline-internal"]).toBe(true);
    expect(doc.operations["audit.read"]?.action).toBe("receive");
  });

  it("needs a credential, and shows only the topics and subscriptions the caller's grants reach", async () => {
    expect((await expectProblem(await anonymousRequest("/asyncapi.json"), 401)).code).toBe("unauthorized");

    const asProducer = (await fetchDoc(asKey(producer, "/asyncapi.json"))).doc;
    expect(Object.keys(asProducer.channels).sort()).toEqual(["orders", "orders.partition", "orders.stream"]);
    // A producer does not see the consumers of its topic (as on GET /v1/subscriptions).
    expect(Object.keys(asProducer.operations).sort()).toEqual(["orders.publish", "orders.read", "orders.tail"]);

    const asConsumer = (await fetchDoc(asKey(consumer, "/asyncapi.json"))).doc;
    expect(Object.keys(asConsumer.channels)).not.toContain("audit.partition");
    expect(
      Object.keys(asConsumer.operations)
        .filter((o) => o.startsWith("subscription."))
        .sort(),
    ).toEqual(["subscription.activity", "subscription.greetings"]);
    expect(Object.keys(asConsumer.components.messages)).toEqual(["events.CloudEvent"]);
  });

  it("lists a runtime webhook subscription to its topic's consumers, naming the target by its origin only", async () => {
    const created = await request(
      "/v1/subscriptions",
      jsonInit({ name: "asyncapi-hook", topic: "events", filter: { type: [{ prefix: "com.example." }] }, webhook: { url: HOOK_URL } }),
    );
    expect(created.status, await created.text()).toBe(201);
    try {
      for (const caller of [() => request("/asyncapi.json"), () => asKey(consumer, "/asyncapi.json")]) {
        const { doc, text } = await fetchDoc(caller());
        const op = doc.operations["subscription.asyncapi-hook"];
        expect(op?.action).toBe("receive");
        expect(op?.channel).toEqual({ $ref: "#/channels/subscription.asyncapi-hook" });
        expect(op?.["x-eventline-subscription"]).toEqual({
          name: "asyncapi-hook",
          topic: "events",
          kind: "webhook",
          target: `${new URL(HOOK_URL).origin}/…`,
          filter: { type: [{ prefix: "com.example." }] },
          ordering: "none",
          maxRetries: 5,
        });
        expect(doc.channels["subscription.asyncapi-hook"]?.address).toBeNull();
        expect(doc.channels["subscription.asyncapi-hook"]?.messages).toEqual({
          "events.CloudEvent": { $ref: "#/components/messages/events.CloudEvent" },
        });
        // Nothing of the URL's path or query, anywhere in the document.
        expect(text).not.toMatch(/s3cr3t|t0ken|\/hooks\//);
      }
      // Not a consumer of events: the webhook is not shown.
      const asProducer = (await fetchDoc(asKey(producer, "/asyncapi.json"))).doc;
      expect(asProducer.operations["subscription.asyncapi-hook"]).toBeUndefined();
    } finally {
      expect((await request("/v1/subscriptions/asyncapi-hook", { method: "DELETE" })).status).toBe(204);
    }
    const { doc } = await fetchDoc(request("/asyncapi.json"));
    expect(doc.operations["subscription.asyncapi-hook"]).toBeUndefined();
  });

  it("follows the schema registry: a type's latest version, runtime versions and runtime-only types included", async () => {
    // A fresh database holds no runtime versions: the registry's catalog is the config's (what npm run asyncapi writes).
    expect(latestCatalog(await schemaCatalog(env.DB, config), BASE)).toEqual(configCatalog(config, BASE));

    const insert = (topic: string, type: string, version: number, schema: unknown) =>
      env.DB.prepare(
        "INSERT INTO schema_versions (topic, type, version, schema, fingerprint, compatibility, created_by, created_at) VALUES (?, ?, ?, ?, ?, 'NONE', NULL, ?)",
      )
        .bind(topic, type, version, JSON.stringify(schema), `fp-${topic}-${type}-${version}`, Date.now())
        .run();
    const placedV2 = {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      properties: { orderId: { $ref: "#/$defs/id" }, note: { type: "string" } },
      required: ["orderId"],
      $defs: { id: { type: "string", minLength: 1 } },
    };
    await insert("orders", "orders.placed", 2, placedV2);
    await insert("events", "com.example.typed", 1, { type: "object", properties: { n: { type: "integer" } } });
    invalidateSchemaCache();
    try {
      const { doc } = await fetchDoc(request("/asyncapi.json"));
      const placed = doc.components.messages["orders.orders.placed"];
      expect(placed?.["x-eventline-schema-version"]).toBe(2);
      expect(placed?.["x-eventline-dataschema"]).toBe(`${BASE}/v1/topics/orders/types/orders.placed/schemas/2`);
      // Its own reference now points at where the schema sits in the document.
      expect(placed?.payload.schema.properties.data).toEqual({
        type: "object",
        properties: {
          orderId: { $ref: "#/components/messages/orders.orders.placed/payload/schema/properties/data/$defs/id" },
          note: { type: "string" },
        },
        required: ["orderId"],
        $defs: { id: { type: "string", minLength: 1 } },
      });
      // A type registered only at runtime gets its message beside the topic's generic one.
      expect(Object.keys(doc.channels.events?.messages ?? {})).toEqual(["events.com.example.typed", "events.CloudEvent"]);
      expect(doc.components.messages["events.com.example.typed"]?.["x-eventline-dataschema"]).toBe(
        `${BASE}/v1/topics/events/types/com.example.typed/schemas/1`,
      );
    } finally {
      await env.DB.prepare("DELETE FROM schema_versions").run();
      invalidateSchemaCache();
    }
  });
});
