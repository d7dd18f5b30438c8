import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sha256Hex } from "../../shared/json";
import { createApiKey, verifyApiKey } from "../../workers/platform/auth/api-keys";
import { event, expectAccepted, expectProblem, request, requestAs } from "../helpers";
import { auditSearch, dataHeads, expectAudit, expectAuthFailedAudit, expectDeniedAudit, expectNoSecrets } from "./helpers";
import {
  type ApiKeyView,
  getKey,
  ISO,
  KEY_SHAPE,
  listKeys,
  orderPlaced,
  postKey,
  produce,
  useKeySecrets,
  withWrongSecret,
} from "./keys-helpers";

/*
 * API keys end to end: POST/GET/DELETE /v1/keys as the admin (and as callers who may not), the
 * keys' grants at work, revocation and expiry, and the audit records all of it leaves. Every key
 * string a test sees is remembered and must never show up in a response other than its creation,
 * nor in the audit log.
 *
 * This file: the keys' grants at work, revoking and expiry, and that only global admins manage keys.
 */

const { secrets, newKey } = useKeySecrets();

describe("API keys at work", () => {
  it("a key can do what its grants allow (202 on events) and nothing else (403 on orders, audited as access.denied of key:<id>)", async () => {
    const key = await newKey(["produce:events"], { tenant: "acme" });
    const acks = await expectAccepted(await produce("events", key.key));
    expect(acks).toHaveLength(1);

    const before = await dataHeads();
    const res = await produce("orders", key.key, orderPlaced());
    const problem = await expectProblem(res, 403);
    expect(problem.code).toBe("forbidden");
    expect(problem.detail).toBe(`key:${key.id} lacks produce on topic orders`);
    expect(res.headers.get("www-authenticate")).toBeNull();
    expect(await dataHeads()).toEqual(before);
    expectNoSecrets(JSON.stringify(problem), [key.key]);
    await expectDeniedAudit(
      problem.requestId,
      {
        resource: "topic:orders",
        actor: { id: `key:${key.id}`, kind: "api-key", tenant: "acme" },
        reason: `key:${key.id} lacks produce on topic orders`,
        method: "POST",
        path: "/v1/topics/orders/events",
      },
      [key.key],
    );
  });

  it("nobody produces to the audit topic, not even a key holding admin:*", async () => {
    const key = await newKey(["admin:*"]);
    const before = await dataHeads();
    const auditBefore = (await auditSearch()).length;
    const problem = await expectProblem(await produce("audit", key.key, event({ type: "eventline.audit.keys.create" })), 403);
    expect(problem.detail).toBe("topic audit is written only by the platform");
    expect(await dataHeads()).toEqual(before);
    const denial = await expectDeniedAudit(problem.requestId, {
      resource: "topic:audit",
      actor: { id: `key:${key.id}` },
    });
    // The only record added is the platform's own denial.
    const after = await auditSearch();
    expect(after.length).toBe(auditBefore + 1);
    expect(after.at(-1)?.sequence).toBe(denial.sequence);
  });

  it("list and get never show a key's secret or its hash", async () => {
    const key = await newKey(["consume:events"]);
    const hash = await sha256Hex(key.key);
    const secret = KEY_SHAPE.exec(key.key)?.[2] as string;
    const { text: listText, keys } = await listKeys();
    const { text: getText, key: stored } = await getKey(key.id);
    expect(keys.some((k) => k.id === key.id)).toBe(true);
    for (const text of [listText, getText]) {
      expect(text.includes(key.key)).toBe(false);
      expect(text.includes(secret)).toBe(false);
      expect(text.includes(hash)).toBe(false);
      expect(text.toLowerCase().includes("hash")).toBe(false);
    }
    const fields = [
      "createdAt",
      "createdBy",
      "expiresAt",
      "grants",
      "id",
      "name",
      "prefix",
      "previousSecretExpiresAt",
      "revokedAt",
      "revokedBy",
      "rotatedAt",
      "tenant",
    ];
    expect(Object.keys(stored).sort()).toEqual(fields);
    for (const listed of keys) expect(Object.keys(listed).sort()).toEqual(fields);
  });

  it("a key whose id is known but whose secret is wrong gets 401, before and after the right key was cached", async () => {
    const key = await newKey(["consume:events"]);
    const wrong = withWrongSecret(key.key);
    secrets.push(wrong);
    // Not cached yet, then cached (the right key used once), then again.
    for (const step of ["cold", "warm"]) {
      const before = await dataHeads();
      const res = await requestAs(wrong, "/v1/topics");
      const problem = await expectProblem(res, 401);
      expect(problem.detail, step).toBe("API key not recognised");
      expect(res.headers.get("www-authenticate")).toBe(
        'Bearer realm="eventline", error="invalid_token", error_description="API key not recognised"',
      );
      expect(await dataHeads()).toEqual(before);
      await expectAuthFailedAudit(
        problem.requestId,
        {
          reason: "API key not recognised",
          actor: { id: "unauthenticated", kind: "none", keyId: key.id },
          resource: "/v1/topics",
        },
        [wrong, key.key],
      );
      const ok = await requestAs(key.key, "/v1/topics");
      expect(ok.status).toBe(200);
    }
  });

  it("an unknown id or a malformed evl_ string gets 401", async () => {
    const unknown = `evl_${"z".repeat(12)}_${"A".repeat(43)}`;
    const malformed = "evl_short_secret";
    for (const [token, detail, keyId] of [
      [unknown, "API key not recognised", "z".repeat(12)],
      [malformed, "malformed API key", undefined],
    ] as const) {
      const problem = await expectProblem(await requestAs(token, "/v1/topics"), 401);
      expect(problem.detail).toBe(detail);
      const record = await expectAudit(problem.requestId, { action: "auth.failed", reason: detail, status: 401 }, [token]);
      expect(record.actor).toEqual(
        keyId === undefined ? { id: "unauthenticated", kind: "none" } : { id: "unauthenticated", kind: "none", keyId },
      );
    }
  });
});

describe("revoking and expiry", () => {
  it("a revoked key gets 401 at once (also when it was cached), audited as keys.revoke by admin", async () => {
    const key = await newKey(["produce:events"]);
    await expectAccepted(await produce("events", key.key)); // now verified and cached in this isolate

    const res = await request(`/v1/keys/${key.id}`, { method: "DELETE" });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    const revoked = JSON.parse(text) as ApiKeyView;
    expect(revoked).toMatchObject({ id: key.id, revokedBy: "admin", revokedAt: expect.stringMatching(ISO) });
    expect(text.includes(key.key)).toBe(false);
    await expectAudit(
      res.headers.get("x-request-id") as string,
      {
        action: "keys.revoke",
        outcome: "success",
        status: 200,
        resource: `key:${key.id}`,
        actor: { id: "admin", kind: "admin-key" },
        details: { keyId: key.id },
      },
      [key.key],
    );

    const before = await dataHeads();
    const refused = await produce("events", key.key);
    const problem = await expectProblem(refused, 401);
    expect(problem.detail).toBe("API key revoked");
    expect(refused.headers.get("www-authenticate")).toContain('error="invalid_token"');
    expect(await dataHeads()).toEqual(before);
    await expectAuthFailedAudit(
      problem.requestId,
      {
        reason: "API key revoked",
        actor: { id: "unauthenticated", kind: "none", keyId: key.id },
        path: "/v1/topics/events/events",
      },
      [key.key],
    );
  });

  it("revoking is idempotent: the first revocation's time and actor are kept, each call is audited", async () => {
    const key = await newKey(["consume:events"]);
    const first = await request(`/v1/keys/${key.id}`, { method: "DELETE" });
    expect(first.status).toBe(200);
    const { cascade: firstCascade, ...firstView } = (await first.json()) as ApiKeyView & { cascade: string[] };
    expect(firstCascade).toEqual([]);
    // The second revocation comes from another admin (a key holding admin:*).
    const otherAdmin = await newKey(["admin:*"]);
    const second = await requestAs(otherAdmin.key, `/v1/keys/${key.id}`, { method: "DELETE" });
    expect(second.status).toBe(200);
    const { cascade: secondCascade, ...secondView } = (await second.json()) as ApiKeyView & { cascade: string[] };
    expect(secondCascade).toEqual([]);
    expect(secondView).toEqual(firstView);
    expect(secondView.revokedBy).toBe("admin");
    expect((await getKey(key.id)).key).toEqual(firstView);
    const records = (await auditSearch({ action: "keys.revoke" })).filter((r) => r.resource === `key:${key.id}`);
    expect(records.map((r) => [r.actor.id, r.outcome, r.status])).toEqual([
      ["admin", "success", 200],
      [`key:${otherAdmin.id}`, "success", 200],
    ]);
    expect((await requestAs(key.key, "/v1/topics")).status).toBe(401);
  });

  it("revoking an unknown key is 404 and a malformed id 400; neither changes anything", async () => {
    const before = await listKeys();
    const missing = await expectProblem(await request(`/v1/keys/${"q".repeat(12)}`, { method: "DELETE" }), 404);
    await expectAudit(missing.requestId, {
      action: "keys.revoke",
      outcome: "failure",
      status: 404,
      resource: `key:${"q".repeat(12)}`,
      reason: `no API key ${"q".repeat(12)}`,
    });
    const malformed = await expectProblem(await request("/v1/keys/NOT-AN-ID", { method: "DELETE" }), 400);
    expect(malformed.issues?.map((i) => i.path)).toEqual(["/param/id"]);
    await expectAudit(malformed.requestId, { action: "keys.revoke", outcome: "failure", status: 400, reason: "invalid param" });
    expect((await listKeys()).keys).toEqual(before.keys);
  });

  it("an expired key gets 401 (API key expired)", async () => {
    // Created directly with an expiry in the past: the clock cannot be moved for the Worker.
    const { record, key } = await createApiKey(env.DB, {
      name: "expired",
      grants: ["produce:events"],
      createdBy: "admin",
      expiresAt: new Date(Date.now() - 1_000),
    });
    secrets.push(key);
    const before = await dataHeads();
    const problem = await expectProblem(await produce("events", key), 401);
    expect(problem.detail).toBe("API key expired");
    expect(await dataHeads()).toEqual(before);
    await expectAuthFailedAudit(problem.requestId, { reason: "API key expired", actor: { keyId: record.id } }, [key]);
  });

  it("verifyApiKey: a key made with expiresInDays works until then and is refused from then on, cached or not", async () => {
    const created = await newKey(["consume:events"], { expiresInDays: 1 });
    const expiresAt = Date.parse(created.expiresAt as string);
    const now = Date.now();
    for (const cacheSeconds of [0, 300]) {
      await expect(verifyApiKey(env.DB, created.key, cacheSeconds, now)).resolves.toMatchObject({ ok: true, record: { id: created.id } });
      await expect(verifyApiKey(env.DB, created.key, cacheSeconds, expiresAt - 1)).resolves.toMatchObject({ ok: true });
      for (const at of [expiresAt, expiresAt + 1, now + 2 * 86_400_000]) {
        await expect(verifyApiKey(env.DB, created.key, cacheSeconds, at)).resolves.toEqual({
          ok: false,
          reason: "API key expired",
          keyId: created.id,
        });
      }
    }
    // And over HTTP it still works today.
    expect((await requestAs(created.key, "/v1/topics")).status).toBe(200);
  });
});

describe("only global admins manage keys", () => {
  it.each([
    ["produce:events", ["produce:events"]],
    ["admin on some topics", ["admin:events", "admin:orders", "decrypt:*"]],
    ["admin:* cut down by a deny", ["admin:*", "!admin:audit"]],
  ])("a key with %s gets 403 on POST /v1/keys (access.denied, nothing created)", async (_name, grants) => {
    const caller = await newKey(grants);
    const before = await listKeys();
    const res = await postKey({ name: "escalate", grants: ["admin:*"] }, caller.key);
    const problem = await expectProblem(res, 403);
    expect(problem.detail).toBe(`key:${caller.id} lacks admin on every topic (admin:*)`);
    expect((await listKeys()).keys).toEqual(before.keys);
    await expectDeniedAudit(
      problem.requestId,
      {
        resource: "keys",
        actor: { id: `key:${caller.id}`, kind: "api-key" },
        details: { attempted: "keys.create" },
      },
      [caller.key],
    );
    expect(await auditSearch({ action: "keys.create" }).then((r) => r.filter((x) => x.requestId === problem.requestId))).toEqual([]);
  });

  it("a non-admin key can neither list, read nor revoke keys", async () => {
    const caller = await newKey(["consume:events"]);
    const victim = await newKey(["consume:events"]);
    for (const [method, path] of [
      ["GET", "/v1/keys"],
      ["GET", `/v1/keys/${victim.id}`],
      ["DELETE", `/v1/keys/${victim.id}`],
    ] as const) {
      const problem = await expectProblem(await requestAs(caller.key, path, { method }), 403);
      expectNoSecrets(JSON.stringify(problem), [victim.key, caller.key]);
      await expectAudit(problem.requestId, { action: "access.denied", status: 403, actor: { id: `key:${caller.id}` } }, [caller.key]);
    }
    expect((await getKey(victim.id)).key.revokedAt).toBeNull();
    expect((await requestAs(victim.key, "/v1/topics")).status).toBe(200);
  });
});
