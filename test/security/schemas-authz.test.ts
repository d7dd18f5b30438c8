import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { expectProblem } from "../helpers";
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
} from "../integration/schema-fixtures";
import { type CreatedTestKey, createTestKey, expectAudit, expectDeniedAudit } from "./helpers";

/**
 * Who may use the schema registry (docs/schemas.md "Access"): registering needs `admin` on the
 * topic and is audited; the dry run and `/compatibility` need `produce` (a producer's CI key);
 * reading needs `consume` or `produce`; no credential is a 401. A refusal stores nothing.
 */

let producer: CreatedTestKey;
let consumer: CreatedTestKey;
let eventsAdmin: CreatedTestKey;

beforeAll(async () => {
  [producer, consumer, eventsAdmin] = await Promise.all([
    createTestKey("schema-producer", ["produce:events"]),
    createTestKey("schema-consumer", ["consume:events"]),
    createTestKey("schema-admin", ["admin:events"]),
  ]);
  await registered("events", "authz.type", closed(["id"]));
});

describe("schema registry access", () => {
  it("401 without a credential, for reads, registrations and dry runs", async () => {
    const anonymous = { authorization: "" };
    for (const res of [
      await call(`${typePath("events", "authz.type")}/schemas`, { headers: anonymous }),
      await call("/v1/schemas", { headers: anonymous }),
      await call(`${typePath("events", "authz.type")}/schemas`, {
        method: "POST",
        headers: { ...anonymous, "content-type": "application/json" },
        body: JSON.stringify({ schema: true }),
      }),
    ]) {
      expect((await expectProblem(res, 401)).code).toBe("unauthorized");
    }
  });

  it("a topic admin registers, audited as schemas.register with the version", async () => {
    const res = await postSchema("events", "authz.type", closed(["id", "extra"]), { token: eventsAdmin.key });
    const body = await expectJson<Registered>(res, 201);
    expect(body.version).toBe(2);
    await expectAudit(res.headers.get("x-request-id") ?? "", {
      action: "schemas.register",
      outcome: "success",
      resource: "schema:events/authz.type",
      actor: { id: eventsAdmin.principal },
      details: expect.objectContaining({ type: "authz.type", version: 2, created: true, checkedAgainst: [1] }),
    });
    const listed = await expectJson<{ schemas: { createdBy: string | null }[] }>(
      await call(`${typePath("events", "authz.type")}/schemas`),
      200,
    );
    expect(listed.schemas.at(-1)?.createdBy).toBe(eventsAdmin.principal);
  });

  it("an incompatible registration is audited as a failure", async () => {
    const res = await postSchema("events", "authz.type", closed(["id", "amount"], 2), { token: eventsAdmin.key });
    await expectProblem(res, 409);
    await expectAudit(res.headers.get("x-request-id") ?? "", { action: "schemas.register", outcome: "failure", status: 409 });
  });

  it("a topic admin cannot register on another topic (403, audited, nothing stored)", async () => {
    const res = await postSchema("shop", "order.paid", closed(["id"]), { token: eventsAdmin.key });
    expect((await expectProblem(res, 403)).detail).toContain("admin on topic shop");
    await expectDeniedAudit(res.headers.get("x-request-id") ?? "", { actor: { id: eventsAdmin.principal } });
    expect(await storedVersions(env.DB, "shop", "order.paid")).toEqual([]);
  });

  it("a producer key may dry-run (both forms) but not register", async () => {
    const verdict = await expectJson<Verdict>(
      await postSchema("events", "authz.type", closed(["id", "amount"], 2), { dryRun: true, token: producer.key }),
      200,
    );
    expect(verdict.compatible).toBe(false);
    const alias = await expectJson<Verdict>(await checkSchema("events", "authz.type", closed(["id", "extra", "more"]), producer.key), 200);
    expect(alias.compatible).toBe(true);
    const res = await postSchema("events", "authz.type", closed(["id", "extra", "more"]), { token: producer.key });
    expect((await expectProblem(res, 403)).detail).toContain("admin on topic events");
    // Any dryRun value but "true" is a registration: it needs admin (fail closed).
    await expectProblem(await postSchema("events", "authz.type", true, { token: producer.key, dryRun: false }), 403);
    expect((await storedVersions(env.DB, "events", "authz.type")).map((r) => r.version)).toEqual([1, 2]);
  });

  it("a consumer key reads but may neither register nor dry-run", async () => {
    const listed = await expectJson<{ schemas: unknown[] }>(
      await call(`${typePath("events", "authz.type")}/schemas`, {}, consumer.key),
      200,
    );
    expect(listed.schemas.length).toBe(2);
    await expectProblem(await postSchema("events", "authz.type", true, { dryRun: true, token: consumer.key }), 403);
    await expectProblem(await checkSchema("events", "authz.type", true, consumer.key), 403);
    await expectProblem(await postSchema("events", "authz.type", true, { token: consumer.key }), 403);
    // Reading another topic's schemas is refused too.
    await expectProblem(await call(`${typePath("shop", "order.paid")}/schemas`, {}, consumer.key), 403);
  });

  it("a producer key reads the schemas it must name (list, version, catalog), on its own topics only", async () => {
    const listed = await expectJson<{ schemas: unknown[] }>(
      await call(`${typePath("events", "authz.type")}/schemas`, {}, producer.key),
      200,
    );
    expect(listed.schemas.length).toBe(2);
    await expectJson(await call(`${typePath("events", "authz.type")}/schemas/1`, {}, producer.key), 200);
    const denied = await expectProblem(await call(`${typePath("shop", "order.paid")}/schemas/1`, {}, producer.key), 403);
    expect(denied.detail).toContain("shop");
    const { types } = await expectJson<{ types: { topic: string }[] }>(await call("/v1/schemas", {}, producer.key), 200);
    expect(new Set(types.map((t) => t.topic))).toEqual(new Set(["events"]));
    await expectJson(await call("/v1/schemas?topic=events", {}, producer.key), 200);
    expect((await expectProblem(await call("/v1/schemas?topic=shop", {}, producer.key), 403)).detail).toContain("topic shop");
  });

  it("GET /v1/schemas lists only the topics the caller may consume or produce to", async () => {
    const { types } = await expectJson<{ types: { topic: string }[] }>(await call("/v1/schemas", {}, consumer.key), 200);
    expect(types.length).toBeGreaterThan(0);
    expect(new Set(types.map((t) => t.topic))).toEqual(new Set(["events"]));
  });
});
