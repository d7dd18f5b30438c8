import { describe, expect, it } from "vitest";
import { z } from "zod";
import shipped from "../../eventline.config";
import { schemaUri as dataschemaUri } from "../../sdk/schema-uri";
import { defineConfig, type EventlineConfigInput } from "../../shared/config";
import { type CatalogEntry, configCatalog, latestCatalog } from "../../workers/platform/asyncapi/catalog";
import { asyncApiDocument } from "../../workers/platform/asyncapi/document";
import { DRAFT_2020_12, embedSchema, SCHEMA_FORMAT } from "../../workers/platform/asyncapi/envelope";

/**
 * The AsyncAPI generator as a pure function of (config, catalog, webhooks, origin, version)
 * (ADR 0050): what each config shape turns into, that webhook targets are cut to their origin, and
 * that a data schema's own references still point into it once embedded in the document.
 */

const ORIGIN = "https://events.example.com";

const base = (over: Partial<EventlineConfigInput> = {}): EventlineConfigInput => ({
  ...(shipped as EventlineConfigInput),
  processors: [],
  security: {},
  topics: [
    {
      name: "shop",
      partitions: 2,
      retentionHours: 24,
      schemas: { "shop.sold": z.object({ sku: z.string(), qty: z.number().int().min(1) }) },
    },
    {
      name: "strict",
      retentionHours: 24,
      partitions: 1,
      strictTypes: true,
      schemas: { "a/b": z.object({ x: z.string() }), a_b: z.object({ y: z.boolean() }) },
    },
  ],
  subscriptions: [{ name: "sales", topic: "shop", queue: "SUB_SALES", ordering: "partition", filter: { type: ["shop.sold"] } }],
  ...over,
});

type Doc = {
  servers: { eventline: { host: string; protocol: string; security: unknown[] } };
  channels: Record<
    string,
    { address: string | null; parameters?: Record<string, { enum: string[] }>; messages: Record<string, { $ref: string }> }
  >;
  operations: Record<
    string,
    { action: string; security?: unknown[]; "x-eventline-also-required"?: unknown[]; "x-eventline-subscription"?: Record<string, unknown> }
  >;
  components: {
    messages: Record<
      string,
      { name: string; payload: { schemaFormat: string; schema: Record<string, never> }; "x-eventline-dataschema"?: string }
    >;
    securitySchemes: Record<string, { type: string; scheme?: string; bearerFormat?: string; description: string }>;
  };
};

const build = (input: EventlineConfigInput, webhooks: Parameters<typeof asyncApiDocument>[2] = [], catalog?: CatalogEntry[]) => {
  const config = defineConfig(input);
  return asyncApiDocument(config, catalog ?? configCatalog(config, ORIGIN), webhooks, ORIGIN, "9.9.9") as unknown as Doc;
};

describe("asyncApiDocument", () => {
  it("gives each topic its three addresses, with partition as a parameter of the reads", () => {
    const doc = build(base());
    expect(doc.servers.eventline).toMatchObject({ host: "events.example.com", protocol: "https" });
    expect(doc.channels.shop?.address).toBe("/v1/topics/shop/events");
    expect(doc.channels["shop.partition"]?.parameters?.partition?.enum).toEqual(["0", "1"]);
    expect(doc.channels["shop.stream"]?.address).toBe("/v1/topics/shop/partitions/{partition}/stream");
    expect(doc.channels["strict.partition"]?.parameters?.partition?.enum).toEqual(["0"]);
    expect(Object.entries(doc.operations).map(([id, op]) => [id, op.action])).toEqual([
      ["shop.publish", "send"],
      ["shop.read", "receive"],
      ["shop.tail", "receive"],
      ["strict.publish", "send"],
      ["strict.read", "receive"],
      ["strict.tail", "receive"],
      ["subscription.sales", "receive"],
    ]);
  });

  it("types data by the catalog's schema, keeps a generic message where other types are accepted, none where strictTypes refuses them", () => {
    const doc = build(base());
    expect(Object.keys(doc.channels.shop?.messages ?? {})).toEqual(["shop.shop.sold", "shop.CloudEvent"]);
    // Types that sanitize to the same component key stay apart; strict topics have no generic message.
    expect(Object.keys(doc.channels.strict?.messages ?? {})).toEqual(["strict.a_b", "strict.a_b_2"]);
    expect(["strict.a_b", "strict.a_b_2"].map((k) => doc.components.messages[k]?.name)).toEqual(["a/b", "a_b"]);
    const sold = doc.components.messages["shop.shop.sold"];
    expect(sold?.["x-eventline-dataschema"]).toBe(dataschemaUri(ORIGIN, "shop", "shop.sold", 1));
    expect(sold?.["x-eventline-dataschema"]).toBe(`${ORIGIN}/v1/topics/shop/types/shop.sold/schemas/1`);
    expect(sold?.payload.schemaFormat).toBe(SCHEMA_FORMAT);
    const schema = sold?.payload.schema as unknown as {
      $schema: string;
      required: string[];
      properties: Record<string, Record<string, unknown>>;
    };
    expect(schema.$schema).toBe(DRAFT_2020_12);
    expect(schema.required).toEqual(["specversion", "id", "source", "type", "data"]);
    expect(schema.properties.type).toMatchObject({ const: "shop.sold" });
    expect(schema.properties.data).toEqual({
      type: "object",
      properties: { sku: { type: "string" }, qty: { type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER } },
      // io: "input": a zod object that strips unknown members accepts them, so no additionalProperties: false.
      required: ["sku", "qty"],
    });
    for (const attribute of ["partition", "sequence", "receivedtime", "streamversion"])
      expect(schema.properties[attribute]?.readOnly).toBe(true);
    const generic = doc.components.messages["shop.CloudEvent"]?.payload.schema as unknown as {
      required: string[];
      properties: Record<string, unknown>;
    };
    expect(generic.required).toEqual(["specversion", "id", "source", "type"]);
    expect(generic.properties.data_base64).toBeDefined();
  });

  it("takes the latest versions from the catalog it is given (the registry's, at merge)", () => {
    const config = defineConfig(base());
    const catalog = configCatalog(config, ORIGIN).map((e) =>
      e.type === "shop.sold"
        ? { ...e, version: 3, dataschema: dataschemaUri(ORIGIN, "shop", "shop.sold", 3), schema: { type: "object" } }
        : e,
    );
    const sold = build(base(), [], catalog).components.messages["shop.shop.sold"] as unknown as Record<string, unknown>;
    expect(sold["x-eventline-schema-version"]).toBe(3);
    expect(sold["x-eventline-dataschema"]).toBe(`${ORIGIN}/v1/topics/shop/types/shop.sold/schemas/3`);
    expect((sold.payload as { schema: { properties: { data: unknown } } }).schema.properties.data).toEqual({ type: "object" });
  });

  it("describes config subscriptions with their queue, filter and ordering, and webhooks by their target's origin only", () => {
    const doc = build(base(), [
      {
        name: "hook",
        topic: "shop",
        filter: undefined,
        ordering: "none",
        maxRetries: 2,
        url: "https://user:pw@hooks.example.net:8443/h/t0ken?sig=abc#x",
      },
      { name: "orphan", topic: "gone", filter: undefined, ordering: "none", maxRetries: 2, url: "https://hooks.example.net/" },
    ]);
    expect(doc.operations["subscription.sales"]?.["x-eventline-subscription"]).toMatchObject({
      kind: "worker",
      queue: "eventline-sales",
      binding: "SUB_SALES",
      filter: { type: ["shop.sold"] },
      ordering: "partition",
    });
    expect(doc.operations["subscription.hook"]?.["x-eventline-subscription"]).toEqual({
      name: "hook",
      topic: "shop",
      kind: "webhook",
      target: "https://hooks.example.net:8443/…",
      filter: null,
      ordering: "none",
      maxRetries: 2,
    });
    expect(JSON.stringify(doc)).not.toMatch(/t0ken|sig=abc|user:pw|pw@/);
    // A webhook on a topic the document does not show (not visible to the caller) is left out.
    expect(doc.operations["subscription.orphan"]).toBeUndefined();
    expect(doc.channels["subscription.hook"]).toMatchObject({ address: null, messages: doc.channels.shop?.messages });
  });

  it("leaves an internal topic read-only: no publish channel or operation", () => {
    const doc = build(base({ topics: [{ name: "log", partitions: 1, retentionHours: 24, internal: true }], subscriptions: [] }));
    expect(Object.keys(doc.channels)).toEqual(["log.partition", "log.stream"]);
    expect(Object.keys(doc.operations)).toEqual(["log.read", "log.tail"]);
  });

  it("offers a JWT scheme only with OIDC issuers, and names the client certificate where mTLS applies", () => {
    const plain = build(base());
    expect(Object.keys(plain.components.securitySchemes)).toEqual(["apiKey"]);
    expect(plain.operations["shop.publish"]?.security).toEqual([{ $ref: "#/components/securitySchemes/apiKey" }]);

    const secured = build(
      base({
        security: {
          oidc: { issuers: [{ issuer: "https://idp.example.com/", audiences: ["eventline"], jwksUri: "https://idp.example.com/jwks" }] },
          mtls: { routeGroups: ["ingest"] },
        },
      }),
    );
    expect(secured.components.securitySchemes.jwt).toMatchObject({ type: "http", scheme: "bearer", bearerFormat: "JWT" });
    expect(secured.components.securitySchemes.jwt?.description).toContain("https://idp.example.com/");
    expect(secured.components.securitySchemes.clientCertificate?.type).toBe("X509");
    const bearer = [{ $ref: "#/components/securitySchemes/apiKey" }, { $ref: "#/components/securitySchemes/jwt" }];
    expect(secured.servers.eventline.security).toEqual(bearer);
    expect(secured.operations["shop.publish"]?.security).toEqual(bearer);
    expect(secured.operations["shop.publish"]?.["x-eventline-also-required"]).toEqual([
      { $ref: "#/components/securitySchemes/clientCertificate" },
    ]);
    // Reads are not in the ingest route group.
    expect(secured.operations["shop.read"]?.["x-eventline-also-required"]).toBeUndefined();
  });
});

describe("the catalog", () => {
  it("names each type's latest version: the last declared in the config, the last of the registry's list", () => {
    const config = defineConfig(
      base({
        topics: [
          {
            name: "shop",
            partitions: 1,
            retentionHours: 24,
            schemas: { "shop.sold": [z.object({ sku: z.string() }), z.object({ sku: z.string(), qty: z.number().optional() })] },
          },
        ],
        subscriptions: [],
      }),
    );
    const [entry] = configCatalog(config, ORIGIN);
    expect(entry).toMatchObject({
      topic: "shop",
      type: "shop.sold",
      version: 2,
      dataschema: `${ORIGIN}/v1/topics/shop/types/shop.sold/schemas/2`,
    });
    expect(entry?.schema).toMatchObject({ properties: { sku: { type: "string" }, qty: { type: "number" } }, required: ["sku"] });

    const version = (n: number, schema: boolean | Record<string, unknown>) => ({
      topic: "shop",
      type: "a b",
      version: n,
      schema,
      path: `/v1/topics/shop/types/a%20b/schemas/${n}`,
      source: "registry" as const,
    });
    expect(latestCatalog([{ topic: "shop", type: "a b", compatibility: "NONE", latest: version(4, true), versions: 2 }], ORIGIN)).toEqual([
      { topic: "shop", type: "a b", version: 4, dataschema: `${ORIGIN}/v1/topics/shop/types/a%20b/schemas/4`, schema: true },
    ]);
  });

  it("embeds a boolean data schema as it is", () => {
    const catalog: CatalogEntry[] = [{ topic: "shop", type: "shop.sold", version: 2, dataschema: `${ORIGIN}/x`, schema: true }];
    const sold = build(base(), [], catalog).components.messages["shop.shop.sold"]?.payload.schema as unknown as {
      properties: { data: unknown };
    };
    expect(sold.properties.data).toBe(true);
  });
});

describe("embedSchema", () => {
  it("drops $schema and $id and points the schema's own references at where it now sits", () => {
    const schema = {
      $schema: DRAFT_2020_12,
      $id: "https://example.com/s",
      type: "object",
      properties: {
        line: { $ref: "#/$defs/line" },
        self: { $ref: "#" },
        more: { items: [{ $dynamicRef: "#/$defs/line" }] },
        anchor: { $ref: "#x" },
      },
      $defs: { line: { type: "string" } },
      remote: { $ref: "https://example.com/other.json#/a" },
    };
    expect(embedSchema(schema, "#/components/messages/m/payload/schema/properties/data")).toEqual({
      type: "object",
      properties: {
        line: { $ref: "#/components/messages/m/payload/schema/properties/data/$defs/line" },
        self: { $ref: "#/components/messages/m/payload/schema/properties/data" },
        more: { items: [{ $dynamicRef: "#/components/messages/m/payload/schema/properties/data/$defs/line" }] },
        anchor: { $ref: "#x" },
      },
      $defs: { line: { type: "string" } },
      remote: { $ref: "https://example.com/other.json#/a" },
    });
  });
});
