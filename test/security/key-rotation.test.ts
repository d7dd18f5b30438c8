import { env } from "cloudflare:workers";
import { afterAll, describe, expect, it } from "vitest";
import shipped from "../../eventline.config";
import { verifyApiKey } from "../../workers/platform/auth/api-keys";
import { PREVIOUS_SECRET_AUDIT_ACTION, PREVIOUS_SECRET_AUDIT_SECONDS } from "../../workers/platform/auth/principal";
import { expectProblem, request, requestAs } from "../helpers";
import { auditSearch, expectAccessDenied, expectAudit, expectNoSecrets, testApp } from "./helpers";
import { type ApiKeyWithSecret, ISO, KEY_SHAPE, storedKey } from "./keys-helpers";
import { tallyOf } from "./tally-helpers";

/*
 * API keys rotate in place (issue 14): POST /v1/keys/{id}/rotate gives the key a new secret (same
 * id, grants, name, expiry), shown once; the old secret keeps working for a grace period, then
 * stops. The rotation is audited, and so are uses of the old secret during the grace period (one
 * record per key and window, with a count).
 */

const secrets: string[] = [];

afterAll(async () => {
  expectNoSecrets(JSON.stringify(await auditSearch()), secrets);
});

async function mint(grants: string[], extra: Record<string, unknown> = {}): Promise<ApiKeyWithSecret> {
  const res = await request("/v1/keys", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: `rotation-${crypto.randomUUID().slice(0, 8)}`, grants, ...extra }),
  });
  const text = await res.text();
  expect(res.status, text).toBe(201);
  const created = JSON.parse(text) as ApiKeyWithSecret;
  secrets.push(created.key);
  return created;
}

function rotate(id: string, body?: unknown, as?: string): Promise<Response> {
  const init: RequestInit =
    body === undefined
      ? { method: "POST" }
      : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  return as === undefined ? request(`/v1/keys/${id}/rotate`, init) : requestAs(as, `/v1/keys/${id}/rotate`, init);
}

/** Rotates as the admin and asserts the 200. */
async function rotated(id: string, body?: unknown): Promise<ApiKeyWithSecret> {
  const res = await rotate(id, body);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  const view = JSON.parse(text) as ApiKeyWithSecret;
  secrets.push(view.key);
  return view;
}

const stored = storedKey;

const topics = async (key: string) => (await requestAs(key, "/v1/topics")).status;

describe("POST /v1/keys/{id}/rotate", () => {
  it("gives the key a new secret shown once (no-store): same id, name, grants, tenant and expiry; both secrets work during the grace period; audited", async () => {
    const key = await mint(["consume:events"], { tenant: "acme", expiresInDays: 5 });
    const res = await rotate(key.id);
    const text = await res.text();
    expect(res.status, text).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const view = JSON.parse(text) as ApiKeyWithSecret;
    secrets.push(view.key);
    expect(KEY_SHAPE.exec(view.key)?.[1]).toBe(key.id);
    expect(view.key).not.toBe(key.key);
    const { key: _old, rotatedAt: _r, previousSecretExpiresAt: _p, ...unchanged } = key;
    expect(view).toMatchObject(unchanged);
    expect(view.rotatedAt).toMatch(ISO);
    // Default grace period: 24 h.
    expect(Date.parse(view.previousSecretExpiresAt as string) - Date.parse(view.rotatedAt as string)).toBe(86_400_000);
    const { key: _new, ...withoutKey } = view;
    expect(await stored(key.id)).toEqual(withoutKey);

    expect(await topics(view.key)).toBe(200);
    expect(await topics(key.key)).toBe(200);
    await expectAudit(
      res.headers.get("x-request-id") as string,
      {
        action: "keys.rotate",
        outcome: "success",
        status: 200,
        resource: `key:${key.id}`,
        actor: { id: "admin", kind: "admin-key" },
        method: "POST",
        path: `/v1/keys/${key.id}/rotate`,
        details: { keyId: key.id, graceSeconds: 86_400, previousSecretExpiresAt: view.previousSecretExpiresAt },
      },
      [key.key, view.key],
    );
  });

  it("the old secret stops when its grace period ends (clock), at once with graceSeconds 0, and when the grace already elapsed", async () => {
    const key = await mint(["consume:events"]);
    const view = await rotated(key.id, { graceSeconds: 60 });
    const until = Date.parse(view.previousSecretExpiresAt as string);
    expect(until - Date.parse(view.rotatedAt as string)).toBe(60_000);
    for (const cacheSeconds of [0, 300]) {
      await expect(verifyApiKey(env.DB, key.key, cacheSeconds, until - 1)).resolves.toMatchObject({ ok: true, previousSecret: true });
      await expect(verifyApiKey(env.DB, key.key, cacheSeconds, until)).resolves.toEqual({
        ok: false,
        reason: "API key secret replaced by a rotation; its grace period is over",
        keyId: key.id,
      });
      await expect(verifyApiKey(env.DB, view.key, cacheSeconds, until + 1)).resolves.toMatchObject({ ok: true, previousSecret: false });
    }

    // A grace period that has already elapsed (set in D1, the old secret never cached since).
    const other = await mint(["consume:events"]);
    const next = await rotated(other.id, { graceSeconds: 60 });
    await env.DB.prepare("UPDATE api_keys SET previous_secret_until = ?1 WHERE id = ?2")
      .bind(Date.now() - 1, other.id)
      .run();
    const refused = await requestAs(other.key, "/v1/topics");
    const problem = await expectProblem(refused, 401);
    expect(problem.detail).toBe("API key secret replaced by a rotation; its grace period is over");
    expect(refused.headers.get("www-authenticate")).toContain('error="invalid_token"');
    await expectAudit(problem.requestId, { action: "auth.failed", status: 401, actor: { keyId: other.id } }, [other.key, next.key]);
    expect(await topics(next.key)).toBe(200);

    // graceSeconds 0: the old secret stops at once, even where it was cached as valid.
    const third = await mint(["consume:events"]);
    expect(await topics(third.key)).toBe(200);
    const now = await rotated(third.id, { graceSeconds: 0 });
    expect(now.previousSecretExpiresAt).toBeNull();
    expect(await topics(third.key)).toBe(401);
    expect(await topics(now.key)).toBe(200);
  });

  it("a second rotation ends the first one's grace at once (one previous secret is kept)", async () => {
    const key = await mint(["consume:events"]);
    const second = await rotated(key.id, { graceSeconds: 3600 });
    expect(await topics(key.key)).toBe(200);
    const third = await rotated(key.id, { graceSeconds: 3600 });
    expect(await topics(key.key)).toBe(401);
    expect(await topics(second.key)).toBe(200);
    expect(await topics(third.key)).toBe(200);
  });

  it("keeps the key's lineage: revoking its creator still revokes it, and a rotated creator still mints", async () => {
    const creator = await mint(["admin:*"]);
    const newCreator = await rotated(creator.id, { graceSeconds: 0 });
    const res = await requestAs(newCreator.key, "/v1/keys", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "minted-after-rotation", grants: ["consume:events"] }),
    });
    expect(res.status).toBe(201);
    const minted = (await res.json()) as ApiKeyWithSecret;
    secrets.push(minted.key);
    const mintedNew = await rotated(minted.id);
    expect((await (await request(`/v1/keys/${creator.id}`, { method: "DELETE" })).json()) as { cascade: string[] }).toMatchObject({
      cascade: [minted.id],
    });
    expect(await topics(minted.key)).toBe(401);
    expect(await topics(mintedNew.key)).toBe(401);
  });

  it("is refused for callers without admin:* (403, access.denied) and changes nothing", async () => {
    const victim = await mint(["consume:events"]);
    for (const grants of [["consume:events"], ["admin:events", "admin:orders"], ["admin:*", "!admin:audit"]]) {
      const caller = await mint(grants);
      const res = await rotate(victim.id, { graceSeconds: 0 }, caller.key);
      const { problem } = await expectAccessDenied(res, {
        actor: `key:${caller.id}`,
        reason: ["admin:*"],
        resource: `key:${victim.id}`,
        attempted: "keys.rotate",
      });
      expectNoSecrets(JSON.stringify(problem), [victim.key, caller.key]);
    }
    expect(await stored(victim.id)).toMatchObject({ rotatedAt: null, previousSecretExpiresAt: null });
    expect(await topics(victim.key)).toBe(200);
  });

  it.each([
    ["an unknown key", "q".repeat(12), undefined, 404, "not_found"],
    ["a malformed id", "NOT-AN-ID", undefined, 400, "invalid_parameter"],
    ["a grace period over 7 days", undefined, { graceSeconds: 7 * 86_400 + 1 }, 400, "invalid_parameter"],
    ["a negative grace period", undefined, { graceSeconds: -1 }, 400, "invalid_parameter"],
    ["an unknown body member", undefined, { graceSeconds: 10, key: "evl_x" }, 400, "invalid_parameter"],
  ] as const)("refuses %s and changes nothing, audited as a keys.rotate failure", async (_name, id, body, status, code) => {
    const key = await mint(["consume:events"]);
    const target = id ?? key.id;
    const problem = await expectProblem(await rotate(target, body), status);
    expect(problem.code).toBe(code);
    await expectAudit(problem.requestId, { action: "keys.rotate", outcome: "failure", status, actor: { id: "admin" } });
    expect(await stored(key.id)).toMatchObject({ rotatedAt: null });
    expect(await topics(key.key)).toBe(200);
  });

  it("allows POST only (405 with Allow: POST)", async () => {
    const key = await mint(["consume:events"]);
    for (const method of ["GET", "PUT", "DELETE"]) {
      const res = await request(`/v1/keys/${key.id}/rotate`, { method });
      const problem = await expectProblem(res, 405);
      expect(problem.code).toBe("method_not_allowed");
      expect(res.headers.get("allow")).toBe("POST");
    }
    expect(await stored(key.id)).toMatchObject({ rotatedAt: null });
  });

  it("refuses a revoked or expired key with 409 key_inactive", async () => {
    const revoked = await mint(["consume:events"]);
    expect((await request(`/v1/keys/${revoked.id}`, { method: "DELETE" })).status).toBe(200);
    const expired = await mint(["consume:events"], { expiresInDays: 1 });
    await env.DB.prepare("UPDATE api_keys SET expires_at = ?1 WHERE id = ?2")
      .bind(Date.now() - 1, expired.id)
      .run();
    for (const [key, state] of [
      [revoked, "revoked"],
      [expired, "expired"],
    ] as const) {
      const problem = await expectProblem(await rotate(key.id), 409);
      expect(problem.code).toBe("key_inactive");
      expect(problem.detail).toBe(`API key ${key.id} is ${state}; only an active key can be rotated`);
      await expectAudit(problem.requestId, { action: "keys.rotate", outcome: "failure", status: 409 });
      expect(await stored(key.id)).toMatchObject({ rotatedAt: null });
    }
  });
});

describe("uses of the old secret during its grace period", () => {
  it("are audited once per key and window, with their count (not per request), however many batches they arrive in", async () => {
    const app = testApp(shipped);
    const key = await mint(["consume:events"], { tenant: "acme" });
    const view = await rotated(key.id, { graceSeconds: 3600 });
    const tally = tallyOf(PREVIOUS_SECRET_AUDIT_ACTION, `key:${key.id}`, `key:${key.id}`);
    const records = async () => (await auditSearch({ action: PREVIOUS_SECRET_AUDIT_ACTION })).filter((r) => r.details?.keyId === key.id);
    // A call returns once its waitUntil work is done: the counts it gathered have reached the tally.
    const call = (token: string) => app.call("/v1/topics", { headers: { authorization: `Bearer ${token}` } });

    // Three uses gathered together, and the new secret (not counted); then one more use, sent in
    // another batch (as another isolate's): one window.
    const responses = await Promise.all([call(key.key), call(key.key), call(key.key), call(view.key)]);
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect((await tally.windows()).map((w) => w.counts.count)).toEqual([3]);
    expect((await call(key.key)).status).toBe(200);
    expect((await call(view.key)).status).toBe(200);
    expect(await records()).toEqual([]);
    const window = await tally.close("count", 4);
    expect(window.until - window.from).toBe(PREVIOUS_SECRET_AUDIT_SECONDS * 1000);

    const first = await records();
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({
      action: PREVIOUS_SECRET_AUDIT_ACTION,
      outcome: "success",
      resource: `key:${key.id}`,
      actor: { id: `key:${key.id}`, kind: "api-key", tenant: "acme" },
      requestId: responses[0]?.headers.get("x-request-id"),
      details: {
        keyId: key.id,
        count: 4,
        previousSecretExpiresAt: view.previousSecretExpiresAt,
        from: new Date(window.from).toISOString(),
        until: new Date(window.until).toISOString(),
      },
    });
    expectNoSecrets(JSON.stringify(first), [key.key, view.key]);

    // The new secret alone adds nothing; the next use of the old one opens a new window.
    expect((await call(view.key)).status).toBe(200);
    expect(await tally.windows()).toEqual([]);
    expect((await call(key.key)).status).toBe(200);
    await tally.close("count", 1);
    const second = await records();
    expect(second).toHaveLength(2);
    expect(second[1]?.details).toMatchObject({ count: 1 });
  });
});
