import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { fingerprintOf } from "../../workers/platform/schemas/submitted";
import { expectProblem } from "../helpers";
import { call, checkSchema, closed, postSchema, registered, storedVersions, typePath, type Verdict } from "./schema-fixtures";

/**
 * Refused registrations (docs/schemas.md): an incompatible schema is a 409 naming what broke;
 * what is not a valid, self-contained draft 2020-12 schema is a 422 (400 for a body of the wrong
 * shape, 413 past the size limit); internal topics take no schemas. Nothing is stored, never a 5xx.
 */

const rowCount = async () => (await env.DB.prepare("SELECT COUNT(*) AS n FROM schema_versions").first<{ n: number }>())?.n ?? 0;

describe("registration refused", () => {
  it("409 schema_incompatible names the incompatible path in detail and issues, with the full verdict", async () => {
    await registered("events", "payment.made", closed(["id"]));
    const before = await rowCount();
    const res = await postSchema("events", "payment.made", closed(["id", "amount"], 2));
    const problem = (await expectProblem(res, 409)) as Awaited<ReturnType<typeof expectProblem>> & Verdict;
    expect(problem.code).toBe("schema_incompatible");
    expect(problem.type).toBe("https://eventline.dev/problems/schema-incompatible");
    expect(problem.detail).toContain("/data/amount");
    expect(problem.detail).toContain("BACKWARD");
    expect(problem.issues).toContainEqual({ path: "/data/amount", message: expect.stringContaining("against version 1") });
    expect(problem).toMatchObject({ compatible: false, version: 2, compatibility: "BACKWARD", checkedAgainst: [1] });
    expect(problem.incompatibilities).toContainEqual(expect.objectContaining({ version: 1, path: "/data/amount", direction: "backward" }));
    expect(await rowCount()).toBe(before);
  });

  it("409 against a config-declared version: the new version must read data written with version 2", async () => {
    const res = await postSchema("shop", "order.placed", closed(["id", "total"], 2));
    const problem = await expectProblem(res, 409);
    expect(problem.issues?.map((i) => i.path)).toContain("/data/total");
    expect(await storedVersions(env.DB, "shop", "order.placed")).toEqual([]);
  });

  it.each([
    ["an array", [1, 2], "/schema"],
    ["a string", "object", "/schema"],
    ["null", null, "/schema"],
    ["a misspelt type", { type: "object", properties: { a: { type: "strin" } } }, "/schema/properties/a/type"],
    ["required that is not an array", { type: "object", required: "a" }, "/schema/required"],
    ["a negative minLength", { type: "string", minLength: -1 }, "/schema/minLength"],
    ["a remote $ref", { properties: { a: { $ref: "https://example.com/a.json" } } }, "/schema/properties/a/$ref"],
    ["a relative file $ref", { properties: { a: { $ref: "other.json#/x" } } }, "/schema/properties/a/$ref"],
    ["a local $ref that does not resolve", { properties: { a: { $ref: "#/$defs/missing" } } }, "/schema/properties/a/$ref"],
    ["an anchor $ref that does not resolve", { properties: { a: { $ref: "#nowhere" } } }, "/schema/properties/a/$ref"],
    ["a nested $id", { $defs: { x: { $id: "https://example.com/x", type: "string" } } }, "/schema/$defs/x/$id"],
    ["another dialect", { $schema: "http://json-schema.org/draft-07/schema#", type: "object" }, "/schema/$schema"],
  ])("422 for %s, naming where, storing nothing", async (_name, schema, path) => {
    const before = await rowCount();
    const problem = await expectProblem(await postSchema("events", "bad.schema", schema), 422);
    expect(problem.code).toBe("unprocessable_request");
    expect(problem.issues?.map((i) => i.path)).toContain(path);
    // The dry run refuses the same input the same way.
    await expectProblem(await postSchema("events", "bad.schema", schema, { dryRun: true }), 422);
    expect(await rowCount()).toBe(before);
  });

  it("accepts local references that resolve ($defs pointers and anchors) and deeply nested schemas", async () => {
    const withRefs = {
      $defs: { money: { $anchor: "money", type: "number", minimum: 0 }, id: { type: "string" } },
      type: "object",
      properties: { id: { $ref: "#/$defs/id" }, amount: { $ref: "#money" }, self: { $ref: "#" } },
    };
    expect((await registered("events", "refs.type", withRefs)).version).toBe(1);
    let deep: Record<string, unknown> = { type: "string" };
    for (let i = 0; i < 12; i++) deep = { type: "object", properties: { [`l${i}`]: deep } };
    expect((await registered("events", "deep.type", deep)).version).toBe(1);
  });

  it("400 for a body of the wrong shape or not JSON", async () => {
    const post = (body: string) =>
      call(`${typePath("events", "shape.type")}/schemas`, { method: "POST", headers: { "content-type": "application/json" }, body });
    const missing = await expectProblem(await post("{}"), 400);
    expect(missing.issues?.map((i) => i.path)).toContain("/json/schema");
    const extra = await expectProblem(await post(JSON.stringify({ schema: true, version: 7 })), 400);
    expect(extra.code).toBe("invalid_parameter");
    expect((await expectProblem(await post("{not json"), 400)).code).toBe("malformed_request");
    const badQuery = await call(`${typePath("events", "shape.type")}/schemas?dryRun=maybe`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ schema: true }),
    });
    expect((await expectProblem(badQuery, 400)).issues?.map((i) => i.path)).toContain("/query/dryRun");
    expect(await storedVersions(env.DB, "events", "shape.type")).toEqual([]);
  });

  it("413 for a schema over 64 KiB as canonical JSON", async () => {
    const properties = Object.fromEntries(
      Array.from({ length: 1200 }, (_, i) => [`member_${i}`, { type: "string", description: "x".repeat(40) }]),
    );
    const problem = await expectProblem(await postSchema("events", "huge.type", { type: "object", properties }), 413);
    expect(problem.detail).toContain("65536");
    expect(await storedVersions(env.DB, "events", "huge.type")).toEqual([]);
  });

  it("404 for an unknown topic; 422 for an internal topic (the audit log takes no schemas), for registration and dry run alike", async () => {
    expect((await expectProblem(await postSchema("nope", "x", true), 404)).code).toBe("topic_not_found");
    const internal = await expectProblem(await postSchema("audit", "eventline.audit.custom", true), 422);
    expect(internal.detail).toContain("internal");
    // The dry run (both forms) answers the same: the topic is checked before the grant nobody can hold.
    expect((await expectProblem(await postSchema("audit", "eventline.audit.custom", true, { dryRun: true }), 422)).detail).toContain(
      "internal",
    );
    expect((await expectProblem(await checkSchema("audit", "eventline.audit.custom", true), 422)).detail).toContain("internal");
    expect(await storedVersions(env.DB, "audit", "eventline.audit.custom")).toEqual([]);
  });

  it("400 for an unknown query parameter, naming it and the accepted one: a misspelled dryRun registers nothing", async () => {
    const post = (query: string) =>
      call(`${typePath("events", "query.type")}/schemas${query}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ schema: true }),
      });
    const misspelled = await expectProblem(await post("?dryrun=true"), 400);
    expect(misspelled.code).toBe("invalid_parameter");
    expect(misspelled.detail).toContain('"dryrun"');
    expect(misspelled.detail).toContain('"dryRun"');
    await expectProblem(await post("?dryRun=true&force=1"), 400);
    const alias = await call(`${typePath("events", "query.type")}/compatibility?dryRun=true`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ schema: true }),
    });
    expect((await expectProblem(alias, 400)).detail).toContain("takes none");
    expect(await storedVersions(env.DB, "events", "query.type")).toEqual([]);
    // dryRun=false is a registration, dryRun=1 is a 400 (only "true" and "false" are values).
    expect((await expectProblem(await post("?dryRun=1"), 400)).issues?.map((i) => i.path)).toContain("/query/dryRun");
    expect((await post("?dryRun=false")).status).toBe(201);
  });

  it("422 once a type has 1,000 versions", async () => {
    await env.DB.prepare(
      `WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 1000)
       INSERT INTO schema_versions (topic, type, version, schema, fingerprint, compatibility, created_by, created_at)
       SELECT 'events', 'cap.type', v, '{"description":"v' || v || '"}', 'fp-' || v, 'NONE', 'test', 0 FROM n`,
    ).run();
    const problem = await expectProblem(await postSchema("events", "cap.type", { description: "one more" }), 422);
    expect(problem.detail).toContain("1000 versions");
    expect((await storedVersions(env.DB, "events", "cap.type")).length).toBe(1000);
  });

  it("409 conflict for a schema stored as a runtime version the config now shadows", async () => {
    // Registered as version 1 of order.paid back when the config declared no version of it; the config's version 1 now shadows it.
    const shadowed = closed(["id"]);
    await env.DB.prepare(
      "INSERT INTO schema_versions (topic, type, version, schema, fingerprint, compatibility, created_by, created_at) VALUES ('shop', 'order.paid', 1, ?, ?, 'BACKWARD', 'test', 0)",
    )
      .bind(JSON.stringify(shadowed), await fingerprintOf(shadowed))
      .run();
    const problem = await expectProblem(await postSchema("shop", "order.paid", shadowed), 409);
    expect(problem.code).toBe("conflict");
    expect(problem.detail).toContain("eventline.config.ts now declares differently");
    expect((await storedVersions(env.DB, "shop", "order.paid")).length).toBe(1);
  });
});
