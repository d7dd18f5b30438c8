import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BASE } from "../helpers";
import {
  call,
  checkSchema,
  closed,
  expectJson,
  postSchema,
  type Registered,
  registered,
  storedVersions,
  typePath,
  type Verdict,
} from "./schema-fixtures";

/**
 * Registering schema versions at runtime (docs/schemas.md): 201 with the next version after the
 * config-declared ones and its dataschema URI, idempotent re-registration, dry runs that store
 * nothing, the per-type mode override, and concurrent registrations that stay contiguous and each
 * checked against its predecessor.
 */

describe("POST /v1/topics/{topic}/types/{type}/schemas", () => {
  it("numbers a runtime version after the config-declared ones, with its dataschema URI and Location", async () => {
    const schema = closed(["id", "note", "coupon"]);
    const res = await postSchema("shop", "order.placed", schema);
    const body = await expectJson<Registered>(res, 201);
    expect(body).toEqual({
      created: true,
      version: 3,
      dataschema: `${BASE}/v1/topics/shop/types/order.placed/schemas/3`,
      compatibility: "BACKWARD",
      checkedAgainst: [2],
    });
    expect(res.headers.get("location")).toBe(body.dataschema);
    const rows = await storedVersions(env.DB, "shop", "order.placed");
    expect(rows.map((r) => r.version)).toEqual([3]);
    expect(JSON.parse(rows[0]?.schema ?? "null")).toEqual(schema);
  });

  it("answers 200 with the existing version for an identical schema (canonical JSON, $id and $schema ignored), storing nothing", async () => {
    const first = await registered("events", "user.created", {
      type: "object",
      properties: { a: { type: "string" }, b: { type: "number" } },
    });
    expect(first.version).toBe(1);
    expect(first.checkedAgainst).toEqual([]);
    // Same schema, members in another order, with the $schema and $id the raw GET serves.
    const again = await postSchema("events", "user.created", {
      $id: first.dataschema,
      $schema: "https://json-schema.org/draft/2020-12/schema",
      properties: { b: { type: "number" }, a: { type: "string" } },
      type: "object",
    });
    const body = await expectJson<Registered>(again, 200);
    expect(body.version).toBe(1);
    expect(body.created).toBe(false);
    expect(first.created).toBe(true);
    expect(body.dataschema).toBe(first.dataschema);
    expect(again.headers.get("location")).toBeNull();
    expect((await storedVersions(env.DB, "events", "user.created")).length).toBe(1);
  });

  it("answers 200 with a config-declared version when the schema is identical to it", async () => {
    const res = await postSchema("shop", "order.paid", {
      type: "object",
      properties: { id: { type: "string" }, amount: { type: "number" } },
      required: ["id", "amount"],
    });
    expect((await expectJson<Registered>(res, 200)).version).toBe(1);
    expect(await storedVersions(env.DB, "shop", "order.paid")).toEqual([]);
  });

  it("dryRun=true checks without storing, 200 whether compatible or not", async () => {
    await registered("events", "dry.type", closed(["id"]));
    const ok = await expectJson<Verdict>(await postSchema("events", "dry.type", closed(["id", "extra"]), { dryRun: true }), 200);
    expect(ok).toEqual({
      compatible: true,
      version: 2,
      registered: false,
      compatibility: "BACKWARD",
      checkedAgainst: [1],
      incompatibilities: [],
    });
    const bad = await expectJson<Verdict>(await postSchema("events", "dry.type", closed(["id", "amount"], 2), { dryRun: true }), 200);
    expect(bad.compatible).toBe(false);
    expect(bad.version).toBe(2);
    expect(bad.incompatibilities.map((i) => i.path)).toContain("/data/amount");
    expect((await storedVersions(env.DB, "events", "dry.type")).map((r) => r.version)).toEqual([1]);
  });

  it("POST …/compatibility is the dry run under another name", async () => {
    await registered("events", "alias.type", closed(["id"]));
    const compatible = await expectJson<Verdict>(await checkSchema("events", "alias.type", closed(["id", "extra"])), 200);
    expect(compatible).toMatchObject({ compatible: true, version: 2, checkedAgainst: [1] });
    const incompatible = await expectJson<Verdict>(await checkSchema("events", "alias.type", closed(["id", "amount"], 2)), 200);
    expect(incompatible.compatible).toBe(false);
    expect(incompatible.incompatibilities[0]).toMatchObject({ version: 1, path: "/data/amount", direction: "backward" });
    const same = await expectJson<Verdict>(await checkSchema("events", "alias.type", closed(["id"])), 200);
    expect(same).toMatchObject({ compatible: true, version: 1, registered: true });
    expect((await storedVersions(env.DB, "events", "alias.type")).length).toBe(1);
  });

  it("checks under the type's override: NONE accepts anything, FORWARD_TRANSITIVE checks every earlier version", async () => {
    await registered("shop", "order.noted", closed(["id"]));
    const none = await registered("shop", "order.noted", { type: "object", properties: { id: { type: "integer" } }, required: ["id"] });
    expect(none).toMatchObject({ version: 2, compatibility: "NONE", checkedAgainst: [] });

    await registered("shop", "order.shipped", { type: "object", properties: { id: { type: "string" } } });
    await registered("shop", "order.shipped", { type: "object", properties: { id: { type: "string" }, at: { type: "string" } } });
    const third = await registered("shop", "order.shipped", {
      type: "object",
      properties: { id: { type: "string" }, at: { type: "string" }, by: { type: "string" } },
    });
    expect(third).toMatchObject({ version: 3, compatibility: "FORWARD_TRANSITIVE", checkedAgainst: [1, 2] });
  });

  it("gives a type the config does not declare its first version, which a strictTypes topic then accepts", async () => {
    const first = await registered("shop", "order.returned", closed(["id"]));
    expect(first).toMatchObject({ version: 1, checkedAgainst: [] });
    const listed = await expectJson<{ schemas: { version: number; source: string }[] }>(
      await call(`${typePath("shop", "order.returned")}/schemas`),
      200,
    );
    expect(listed.schemas).toEqual([expect.objectContaining({ version: 1, source: "registry" })]);
  });

  it("keeps 8 concurrent registrations contiguous, each checked against its predecessor", async () => {
    await registered("events", "race.type", closed(["id"]));
    // Distinct schemas (another description each) that accept the same data: compatible in any order.
    const candidates = Array.from({ length: 8 }, (_, i) => ({ ...closed(["id"]), description: `revision ${i}` }));
    const results = await Promise.all(candidates.map((schema) => postSchema("events", "race.type", schema)));
    const bodies = await Promise.all(results.map((res) => expectJson<Registered>(res, 201)));
    expect(bodies.map((b) => b.version).sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    for (const body of bodies) expect(body.checkedAgainst).toEqual([body.version - 1]);
    const rows = await storedVersions(env.DB, "events", "race.type");
    expect(rows.map((r) => r.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});
