import { env } from "cloudflare:workers";
import { Validator } from "@cfworker/json-schema";
import { describe, expect, it } from "vitest";
import { expectProblem } from "../helpers";
import { call, closed, expectJson, registered, typePath } from "./schema-fixtures";

/**
 * Reading the registry (docs/schemas.md): a type's versions, config-declared first; one version,
 * as JSON or as the raw JSON Schema with `$id` = its dataschema URI; the catalog; 404s.
 */

interface Listed {
  topic: string;
  type: string;
  compatibility: string;
  schemas: { version: number; schema: unknown; dataschema: string; source: string; createdAt?: string; createdBy?: string | null }[];
}

describe("GET the registry", () => {
  it("lists config-declared versions first (source config), then runtime ones (source registry)", async () => {
    const third = await registered("shop", "order.placed", closed(["id", "note", "gift"]));
    const listed = await expectJson<Listed>(await call(`${typePath("shop", "order.placed")}/schemas`), 200);
    expect(listed.topic).toBe("shop");
    expect(listed.type).toBe("order.placed");
    expect(listed.compatibility).toBe("BACKWARD");
    expect(listed.schemas.map((s) => [s.version, s.source])).toEqual([
      [1, "config"],
      [2, "config"],
      [3, "registry"],
    ]);
    expect(listed.schemas[0]?.schema).toMatchObject({ type: "object", required: ["id"], additionalProperties: false });
    expect(listed.schemas[0]?.createdAt).toBeUndefined();
    expect(listed.schemas[2]).toMatchObject({ dataschema: third.dataschema, createdBy: "admin", schema: closed(["id", "note", "gift"]) });
    expect(Date.parse(listed.schemas[2]?.createdAt ?? "")).toBeGreaterThan(Date.now() - 60_000);
  });

  it("GET …/schemas/{version} answers the same item as the list", async () => {
    const listed = await expectJson<Listed>(await call(`${typePath("shop", "order.placed")}/schemas`), 200);
    for (const item of listed.schemas) {
      const res = await call(`${typePath("shop", "order.placed")}/schemas/${item.version}`);
      expect(await expectJson<unknown>(res, 200)).toEqual(item);
      expect(res.headers.get("vary")).toMatch(/accept/i);
    }
  });

  it("with Accept: application/schema+json answers the JSON Schema itself, $id = its dataschema URI, usable by tooling", async () => {
    const v1 = await registered("events", "raw.type", { type: "object", properties: { n: { type: "integer" } }, required: ["n"] });
    const res = await call(new URL(v1.dataschema).pathname, { headers: { accept: "application/schema+json" } });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/schema+json");
    const raw = JSON.parse(text) as Record<string, unknown>;
    expect(raw).toEqual({
      $schema: "https://json-schema.org/draft/2020-12/schema",
      $id: v1.dataschema,
      type: "object",
      properties: { n: { type: "integer" } },
      required: ["n"],
    });
    const validator = new Validator(raw as never, "2020-12");
    expect(validator.validate({ n: 1 }).valid).toBe(true);
    expect(validator.validate({ n: "one" }).valid).toBe(false);
  });

  it("keeps the author's member order (the fingerprint alone is canonical)", async () => {
    const type = `read.order.${crypto.randomUUID().slice(0, 8)}`;
    // Written in an order canonical JSON would change: required before type, z before a.
    const authored = {
      required: ["z"],
      type: "object",
      properties: { z: { type: "string", maxLength: 8 }, a: { type: "integer" } },
      additionalProperties: false,
    };
    const { version } = await registered("shop", type, authored);
    const item = await expectJson<{ schema: Record<string, unknown> }>(await call(`${typePath("shop", type)}/schemas/${version}`), 200);
    expect(JSON.stringify(item.schema)).toBe(JSON.stringify(authored));
    // The same schema with its members in another order is the same version (idempotent).
    const reordered = {
      type: "object",
      additionalProperties: false,
      properties: { a: { type: "integer" }, z: { maxLength: 8, type: "string" } },
      required: ["z"],
    };
    const again = await call(`${typePath("shop", type)}/schemas`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ schema: reordered }),
    });
    expect(await expectJson<{ version: number; created: boolean }>(again, 200)).toMatchObject({ version, created: false });
  });

  it("serves a boolean schema in object form", async () => {
    const v1 = await registered("events", "anything.type", true);
    const res = await call(new URL(v1.dataschema).pathname, { headers: { accept: "application/schema+json" } });
    expect(JSON.parse(await res.text())).toEqual({ $schema: "https://json-schema.org/draft/2020-12/schema", $id: v1.dataschema });
    const json = await expectJson<{ schema: unknown }>(await call(new URL(v1.dataschema).pathname), 200);
    expect(json.schema).toBe(true);
  });

  it("GET /v1/schemas lists every type with versions and its latest", async () => {
    await registered("events", "catalog.type", closed(["id"]));
    const second = await registered("events", "catalog.type", closed(["id", "more"]));
    const { types } = await expectJson<{ types: Record<string, unknown>[] }>(await call("/v1/schemas"), 200);
    expect(types).toContainEqual({
      topic: "events",
      type: "catalog.type",
      compatibility: "BACKWARD",
      latestVersion: 2,
      dataschema: second.dataschema,
      versions: 2,
    });
    expect(types).toContainEqual(expect.objectContaining({ topic: "shop", type: "order.paid", latestVersion: 1, versions: 1 }));
    // Config order first: shop's declared types come before events' runtime ones.
    const order = types.map((t) => `${t.topic}/${t.type}`);
    expect(order.indexOf("shop/order.paid")).toBeLessThan(order.indexOf("events/catalog.type"));
  });

  it("GET /v1/schemas?topic= narrows to one topic; an unknown topic is a 404", async () => {
    await registered("events", "narrow.type", closed(["id"]));
    const { types } = await expectJson<{ types: { topic: string; type: string }[] }>(await call("/v1/schemas?topic=shop"), 200);
    expect(types.length).toBeGreaterThan(0);
    expect(new Set(types.map((t) => t.topic))).toEqual(new Set(["shop"]));
    expect((await expectProblem(await call("/v1/schemas?topic=nosuch"), 404)).code).toBe("topic_not_found");
  });

  it("404s an unknown topic, a type without versions and an unknown version; 400s a version that is not a positive integer", async () => {
    expect((await expectProblem(await call(`${typePath("nope", "x")}/schemas`), 404)).code).toBe("topic_not_found");
    const type = await expectProblem(await call(`${typePath("events", "never.registered")}/schemas`), 404);
    expect(type.code).toBe("not_found");
    expect(type.detail).toContain("never.registered");
    expect((await expectProblem(await call(`${typePath("shop", "order.paid")}/schemas/2`), 404)).detail).toContain("version 2");
    expect((await expectProblem(await call(`${typePath("shop", "order.paid")}/schemas/0`), 400)).code).toBe("invalid_parameter");
    expect((await expectProblem(await call(`${typePath("shop", "order.paid")}/schemas/x`), 400)).code).toBe("invalid_parameter");
    // A type longer than 256 characters (as the OpenAPI document says).
    const long = await expectProblem(await call(`${typePath("events", "t".repeat(257))}/schemas`), 400);
    expect(long.issues?.map((i) => i.path)).toContain("/param/type");
  });

  it("finds a version registered through another isolate at once, though this isolate's cache does not know it yet", async () => {
    // Warm this isolate's cache, then add a row as another isolate's registration would.
    await expectProblem(await call(`${typePath("events", "elsewhere.type")}/schemas`), 404);
    await env.DB.prepare(
      "INSERT INTO schema_versions (topic, type, version, schema, fingerprint, compatibility, created_by, created_at) VALUES ('events', 'elsewhere.type', 1, 'true', 'fp-elsewhere', 'BACKWARD', 'key:other', ?)",
    )
      .bind(Date.now())
      .run();
    const listed = await expectJson<Listed>(await call(`${typePath("events", "elsewhere.type")}/schemas`), 200);
    expect(listed.schemas.map((s) => [s.version, s.createdBy])).toEqual([[1, "key:other"]]);
    const one = await expectJson<{ version: number }>(await call(`${typePath("events", "elsewhere.type")}/schemas/1`), 200);
    expect(one.version).toBe(1);
  });
});
