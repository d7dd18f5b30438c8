import { describe, expect, it } from "vitest";
import { expectProblem } from "../helpers";
import { expectAudit } from "./helpers";
import { type CreatedKey, getKey, ISO, KEY_SHAPE, listKeys, postKey, useKeySecrets } from "./keys-helpers";

/*
 * API keys end to end: POST/GET/DELETE /v1/keys as the admin (and as callers who may not), the
 * keys' grants at work, revocation and expiry, and the audit records all of it leaves. Every key
 * string a test sees is remembered and must never show up in a response other than its creation,
 * nor in the audit log.
 *
 * This file: POST /v1/keys — creating a key, what it answers and audits, and what it refuses.
 */

/** Asserts a key creation refused for its body: the key list as `before`, and the failure audited. */
async function expectBodyRefused(requestId: string, before: Awaited<ReturnType<typeof listKeys>>): Promise<void> {
  expect((await listKeys()).keys).toEqual(before.keys);
  await expectAudit(requestId, {
    action: "keys.create",
    outcome: "failure",
    status: 400,
    actor: { id: "admin" },
    reason: "invalid request body",
  });
}

const { secrets, newKey } = useKeySecrets();

describe("POST /v1/keys: creating a key", () => {
  it("answers 201 with the key shown once (no-store), its id, prefix and grants, and audits keys.create by admin", async () => {
    const before = (await listKeys()).keys.length;
    const res = await postKey({ name: "checkout-service", grants: ["produce:events", "consume:orders"], tenant: "acme" });
    const text = await res.text();
    expect(res.status, text).toBe(201);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const created = JSON.parse(text) as CreatedKey;
    secrets.push(created.key);
    const [, id, secret] = KEY_SHAPE.exec(created.key) ?? [];
    expect(id, "evl_<12 a-z0-9>_<43 base64url>").toBe(created.id);
    expect(secret).toHaveLength(43);
    expect(res.headers.get("location")).toBe(`/v1/keys/${created.id}`);
    expect(created).toEqual({
      id: created.id,
      prefix: `evl_${created.id}`,
      name: "checkout-service",
      grants: ["produce:events", "consume:orders"],
      tenant: "acme",
      createdBy: "admin",
      createdAt: expect.stringMatching(ISO),
      expiresAt: null,
      revokedAt: null,
      revokedBy: null,
      rotatedAt: null,
      previousSecretExpiresAt: null,
      key: created.key,
    });
    expect(created.key.startsWith(`${created.prefix}_`)).toBe(true);

    // Shown once: reading it back gives everything but the key.
    const { key: stored } = await getKey(created.id);
    const { key: _key, ...withoutKey } = created;
    expect(stored).toEqual(withoutKey);
    expect((await listKeys()).keys).toHaveLength(before + 1);

    await expectAudit(
      res.headers.get("x-request-id") as string,
      {
        action: "keys.create",
        outcome: "success",
        status: 201,
        resource: "keys",
        actor: { id: "admin", kind: "admin-key" },
        method: "POST",
        path: "/v1/keys",
        details: { keyId: created.id, name: "checkout-service", grants: ["produce:events", "consume:orders"], tenant: "acme" },
      },
      [created.key],
    );
  });

  it("gives every key its own id and secret, and an expiry when expiresInDays is set", async () => {
    const a = await newKey(["consume:events"]);
    const b = await newKey(["consume:events"], { expiresInDays: 30 });
    expect(a.id).not.toBe(b.id);
    expect(KEY_SHAPE.exec(a.key)?.[2]).not.toBe(KEY_SHAPE.exec(b.key)?.[2]);
    expect(a.expiresAt).toBeNull();
    const expires = Date.parse(b.expiresAt as string) - Date.parse(b.createdAt);
    expect(Math.abs(expires - 30 * 86_400_000)).toBeLessThan(5_000);
  });

  it.each([
    ["an undelimited prefix and an unknown action", ["produce:events", "produce:orders*", "fly:x"], [1, 2]],
    ["an upper-case action", ["PRODUCE:events"], [0]],
    ["an empty topic pattern", ["consume:"], [0]],
    ["no action", [":orders", "consume:events"], [0]],
    ["an upper-case topic", ["consume:Orders"], [0]],
    ["a space in the topic", ["consume:a b"], [0]],
    ["a doubled star", ["consume:orders.**"], [0]],
  ])("refuses %s with 400, an issue per bad grant (/grants/<i>), and no key", async (_name, grants, bad) => {
    const before = await listKeys();
    const res = await postKey({ name: "bad-grants", grants });
    const problem = await expectProblem(res, 400);
    expect(problem.code).toBe("invalid_parameter");
    expect(problem.issues?.map((i) => i.path)).toEqual(bad.map((i) => `/grants/${i}`));
    for (const issue of problem.issues ?? []) expect(issue.message.length).toBeGreaterThan(0);
    expect((await listKeys()).keys).toEqual(before.keys);
    await expectAudit(problem.requestId, {
      action: "keys.create",
      outcome: "failure",
      status: 400,
      actor: { id: "admin", kind: "admin-key" },
      reason: "the key's grants are not valid",
    });
  });

  it.each([
    ["no grants", { name: "x", grants: [] }, "/json/grants"],
    ["no name", { grants: ["consume:events"] }, "/json/name"],
    ["grants not strings", { name: "x", grants: [42] }, "/json/grants/0"],
    ["a tenant with spaces", { name: "x", grants: ["consume:events"], tenant: "a b" }, "/json/tenant"],
    ["expiresInDays 0", { name: "x", grants: ["consume:events"], expiresInDays: 0 }, "/json/expiresInDays"],
  ])("refuses a body with %s (400, issue at %s) and creates nothing", async (_name, body, path) => {
    const before = await listKeys();
    const problem = await expectProblem(await postKey(body), 400);
    expect(problem.issues?.map((i) => i.path)).toContain(path);
    await expectBodyRefused(problem.requestId, before);
  });

  it("refuses more grants than security.apiKeys.maxGrants (20)", async () => {
    const before = await listKeys();
    const grants = Array.from({ length: 21 }, (_, i) => `consume:t${i}`);
    const problem = await expectProblem(await postKey({ name: "many", grants }), 400);
    expect(problem.issues?.map((i) => i.path)).toEqual(["/grants"]);
    expect((await listKeys()).keys).toEqual(before.keys);
    await expectAudit(problem.requestId, {
      action: "keys.create",
      outcome: "failure",
      status: 400,
      reason: "the key's grants are not valid",
    });
  });

  it.each([
    ["createdBy", { createdBy: "someone-else" }],
    ["revokedBy", { revokedBy: "someone-else" }],
    ["id", { id: "aaaaaaaaaaaa" }],
    ["key", { key: "evl_aaaaaaaaaaaa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }],
    ["secretHash", { secretHash: "00".repeat(32) }],
  ])("refuses a body that tries to set %s (strict schema: 400) and creates nothing", async (field, extra) => {
    const before = await listKeys();
    const problem = await expectProblem(await postKey({ name: "sneaky", grants: ["consume:events"], ...extra }), 400);
    expect(problem.code).toBe("invalid_parameter");
    expect(
      problem.issues?.some((i) => i.path.startsWith("/json") && i.message.includes(field)),
      JSON.stringify(problem.issues),
    ).toBe(true);
    await expectBodyRefused(problem.requestId, before);
  });

  it("records the caller as createdBy: a key created by a key-holding admin names that key", async () => {
    const adminKey = await newKey(["admin:*", "decrypt:*"]);
    expect(adminKey.createdBy).toBe("admin");
    const res = await postKey({ name: "minted", grants: ["consume:events"] }, adminKey.key);
    const text = await res.text();
    expect(res.status, text).toBe(201);
    const minted = JSON.parse(text) as CreatedKey;
    secrets.push(minted.key);
    expect(minted.createdBy).toBe(`key:${adminKey.id}`);
    expect((await getKey(minted.id)).key.createdBy).toBe(`key:${adminKey.id}`);
    await expectAudit(
      res.headers.get("x-request-id") as string,
      { action: "keys.create", outcome: "success", status: 201, actor: { id: `key:${adminKey.id}`, kind: "api-key" } },
      [adminKey.key, minted.key],
    );
  });

  it("never lets a key mint a key with more than it holds (decrypt is not implied by admin:*; denies carry over)", async () => {
    // A global admin without decrypt, and one whose decrypt on customers is denied. (A deny of a
    // topic action takes admin on that topic, so `admin:*` + `!produce:orders` is no global admin
    // and cannot reach the key routes at all: see the last case.)
    const noDecrypt = await newKey(["admin:*"]);
    const denied = await newKey(["admin:*", "decrypt:*", "!decrypt:customers"]);
    const cases: [CreatedKey, string[], number[]][] = [
      [noDecrypt, ["consume:events", "decrypt:*"], [1]],
      [noDecrypt, ["decrypt:customers"], [0]],
      [denied, ["decrypt:customers"], [0]],
      [denied, ["decrypt:*"], [0]],
    ];
    for (const [creator, grants, bad] of cases) {
      const before = await listKeys();
      const problem = await expectProblem(await postKey({ name: "escalate", grants }, creator.key), 403);
      expect(
        problem.issues?.map((i) => i.path),
        JSON.stringify(grants),
      ).toEqual(bad.map((i) => `/grants/${i}`));
      expect((await listKeys()).keys).toEqual(before.keys);
      await expectAudit(
        problem.requestId,
        {
          action: "keys.create",
          outcome: "failure",
          status: 403,
          actor: { id: `key:${creator.id}` },
          reason: "a key may not hold grants its creator does not hold",
        },
        [creator.key],
      );
    }
    // Within the creator's grants (or carrying its deny over) is fine.
    for (const [creator, grants] of [
      [noDecrypt, ["produce:events", "consume:*", "admin:orders"]],
      [denied, ["produce:events", "decrypt:events"]],
      [denied, ["decrypt:*", "!decrypt:customers"]],
      [denied, ["admin:*", "decrypt:orders"]],
    ] as const) {
      const res = await postKey({ name: "fine", grants }, creator.key);
      const text = await res.text();
      expect(res.status, `${JSON.stringify(grants)}: ${text}`).toBe(201);
      secrets.push((JSON.parse(text) as CreatedKey).key);
    }
    // admin:* cut down by a topic deny is not a global admin: the key routes refuse it outright.
    const cut = await newKey(["admin:*", "!produce:orders"]);
    const before = await listKeys();
    const refused = await expectProblem(await postKey({ name: "cut", grants: ["produce:events"] }, cut.key), 403);
    await expectAudit(refused.requestId, { action: "access.denied", outcome: "denied", status: 403, actor: { id: `key:${cut.id}` } }, [
      cut.key,
    ]);
    expect((await listKeys()).keys).toEqual(before.keys);
  });
});
