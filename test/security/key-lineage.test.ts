import { env } from "cloudflare:workers";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import { testBindings } from "../bindings";
import { expectProblem, request, requestAs } from "../helpers";
import { auditSearch, configWithSecurity, expectAudit, expectNoSecrets, testApp } from "./helpers";
import { type ApiKeyWithSecret, storedKey } from "./keys-helpers";

/*
 * A key minted by a key never outlives it (issue 14): its expiry is at most its creator's, and
 * revoking a key revokes every key it minted, transitively. Keys minted by a JWT principal live
 * at most security.apiKeys.jwtKeyMaxDays; the bootstrap admin key's are unbounded.
 */

const DAY = 86_400_000;

type KeyView = ApiKeyWithSecret;

const secrets: string[] = [];

afterAll(async () => {
  expectNoSecrets(JSON.stringify(await auditSearch({ action: "keys." })), secrets);
});

function postKey(body: Record<string, unknown>, as?: string): Promise<Response> {
  const init = { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  return as === undefined ? request("/v1/keys", init) : requestAs(as, "/v1/keys", init);
}

/** Creates a key (as the admin, or as `as`) and asserts the 201. */
async function mint(grants: string[], as?: string, extra: Record<string, unknown> = {}): Promise<KeyView> {
  const res = await postKey({ name: `lineage-${crypto.randomUUID().slice(0, 8)}`, grants, ...extra }, as);
  const text = await res.text();
  expect(res.status, text).toBe(201);
  const created = JSON.parse(text) as KeyView;
  secrets.push(created.key);
  return created;
}

async function keyIds(): Promise<string[]> {
  const res = await request("/v1/keys");
  expect(res.status).toBe(200);
  return ((await res.json()) as { keys: { id: string }[] }).keys.map((k) => k.id);
}

const stored = storedKey;

const status = async (key: string) => (await requestAs(key, "/v1/topics")).status;

describe("a minted key's expiry", () => {
  it("is its creator's when none is asked for, through a chain of keys (was: never)", async () => {
    const parent = await mint(["admin:*", "decrypt:*"], undefined, { expiresInDays: 1 });
    expect(parent.expiresAt).not.toBeNull();
    const child = await mint(["admin:*"], parent.key);
    expect(child.createdBy).toBe(`key:${parent.id}`);
    expect(child.expiresAt).toBe(parent.expiresAt);
    const grandchild = await mint(["consume:events"], child.key);
    expect(grandchild.expiresAt).toBe(parent.expiresAt);
    expect((await stored(grandchild.id)).expiresAt).toBe(parent.expiresAt);
    const record = (await auditSearch({ action: "keys.create" })).find((r) => r.details?.keyId === child.id);
    expect(record?.details).toMatchObject({ keyId: child.id, expiresAt: parent.expiresAt });
  });

  it("may be shorter than the creator's, but a later one is refused: 400 at /expiresInDays, nothing created, audited", async () => {
    const parent = await mint(["admin:*"], undefined, { expiresInDays: 2 });
    const shorter = await mint(["consume:events"], parent.key, { expiresInDays: 1 });
    expect(Math.abs(Date.parse(shorter.expiresAt as string) - Date.now() - DAY)).toBeLessThan(60_000);

    const before = await keyIds();
    for (const days of [3, 3650]) {
      const problem = await expectProblem(
        await postKey({ name: "outlives", grants: ["consume:events"], expiresInDays: days }, parent.key),
        400,
      );
      expect(problem.code).toBe("invalid_parameter");
      expect(problem.detail).toBe("the key would outlive its creator");
      expect(problem.issues?.map((i) => i.path)).toEqual(["/expiresInDays"]);
      expect(problem.issues?.[0]?.message).toContain(parent.expiresAt as string);
      expect(await keyIds()).toEqual(before);
      await expectAudit(
        problem.requestId,
        {
          action: "keys.create",
          outcome: "failure",
          status: 400,
          actor: { id: `key:${parent.id}` },
          reason: "the key would outlive its creator",
        },
        [parent.key],
      );
    }
  });

  it("is unbounded for the bootstrap admin key and for a key that never expires", async () => {
    const forever = await mint(["admin:*"]);
    expect(forever.expiresAt).toBeNull();
    expect((await mint(["consume:events"], forever.key)).expiresAt).toBeNull();
    const long = await mint(["consume:events"], forever.key, { expiresInDays: 3650 });
    expect(Date.parse(long.expiresAt as string)).toBeGreaterThan(Date.now() + 3649 * DAY);
  });

  it("of a key minted by a JWT principal is at most security.apiKeys.jwtKeyMaxDays (its default), not the token's exp", async () => {
    const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
    const issuer = "https://lineage.idp.example/";
    const app = testApp(
      configWithSecurity({
        oidc: {
          issuers: [{ issuer, audiences: ["eventline"], jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256" }] } }],
        },
        apiKeys: { jwtKeyMaxDays: 30 },
      }),
    );
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ eventline_grants: ["admin:*"] })
      .setProtectedHeader({ alg: "RS256", kid: "k1", typ: "JWT" })
      .setIssuer(issuer)
      .setAudience("eventline")
      .setSubject("operator")
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(privateKey);
    secrets.push(token);
    const call = (body: Record<string, unknown>) =>
      app.call("/v1/keys", {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "from-sso", grants: ["consume:events"], ...body }),
      });

    const res = await call({});
    const text = await res.text();
    expect(res.status, text).toBe(201);
    const created = JSON.parse(text) as KeyView;
    secrets.push(created.key);
    expect(created.createdBy).toBe(`jwt:${issuer}#operator`);
    expect(Math.abs(Date.parse(created.expiresAt as string) - Date.now() - 30 * DAY)).toBeLessThan(60_000);
    expect((await mint(["consume:events"], undefined, { expiresInDays: 10 })).expiresAt).not.toBeNull();
    const within = await call({ expiresInDays: 30 });
    expect(within.status).toBe(201);
    secrets.push(((await within.json()) as KeyView).key);

    const before = await keyIds();
    const problem = await expectProblem(await call({ expiresInDays: 31 }), 400);
    expect(problem.issues?.[0]).toMatchObject({ path: "/expiresInDays", message: expect.stringContaining("jwtKeyMaxDays") });
    expect(await keyIds()).toEqual(before);
    await expectAudit(
      problem.requestId,
      { action: "keys.create", outcome: "failure", status: 400, actor: { id: `jwt:${issuer}#operator` } },
      [token],
    );
  });
});

describe("revoking a key", () => {
  it("revokes every key it minted, transitively, at once (also cached ones); the response and audit record list them", async () => {
    const root = await mint(["admin:*", "decrypt:*"]);
    const child = await mint(["admin:*"], root.key);
    const grandchild = await mint(["consume:events"], child.key);
    const sibling = await mint(["produce:events"], root.key);
    const unrelated = await mint(["admin:*"]);
    const unrelatedChild = await mint(["consume:events"], unrelated.key);
    // Every key used once: verified and cached in this isolate.
    for (const k of [root, child, grandchild, sibling, unrelated, unrelatedChild]) expect(await status(k.key)).toBe(200);

    const res = await request(`/v1/keys/${root.id}`, { method: "DELETE" });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    const body = JSON.parse(text) as KeyView & { cascade: string[] };
    expect(body.cascade).toEqual([child.id, grandchild.id, sibling.id]);
    expectNoSecrets(text, secrets);
    await expectAudit(
      res.headers.get("x-request-id") as string,
      {
        action: "keys.revoke",
        outcome: "success",
        status: 200,
        resource: `key:${root.id}`,
        actor: { id: "admin" },
        details: { keyId: root.id, cascade: [child.id, grandchild.id, sibling.id], cascadeCount: 3 },
      },
      secrets,
    );

    for (const k of [root, child, grandchild, sibling]) {
      const refused = await requestAs(k.key, "/v1/topics");
      const problem = await expectProblem(refused, 401);
      expect(problem.detail).toBe("API key revoked");
      await expectAudit(problem.requestId, { action: "auth.failed", reason: "API key revoked", actor: { keyId: k.id } }, [k.key]);
      const view = await stored(k.id);
      expect(view).toMatchObject({ revokedBy: "admin", revokedAt: body.revokedAt });
    }
    expect(await status(unrelated.key)).toBe(200);
    expect(await status(unrelatedChild.key)).toBe(200);

    // Revoking again (or a key of the cascade) revokes nothing more.
    const again = (await (await request(`/v1/keys/${child.id}`, { method: "DELETE" })).json()) as { cascade: string[] };
    expect(again.cascade).toEqual([]);
  });

  it("a key revoked elsewhere but still cached here cannot mint any more: 401, nothing created, audited", async () => {
    const creator = await mint(["admin:*"]);
    expect(await status(creator.key)).toBe(200); // cached as valid for security.apiKeys.cacheSeconds
    // Revoked by another isolate: D1 says so, this isolate's cache does not know yet.
    await env.DB.prepare("UPDATE api_keys SET revoked_at = ?1, revoked_by = 'admin' WHERE id = ?2").bind(Date.now(), creator.id).run();
    const before = await keyIds();
    const res = await postKey({ name: "orphan", grants: ["consume:events"] }, creator.key);
    const problem = await expectProblem(res, 401);
    expect(problem.detail).toBe("API key revoked or expired: it can no longer create keys");
    expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
    expect(await keyIds()).toEqual(before);
    await expectAudit(problem.requestId, { action: "keys.create", outcome: "failure", status: 401, actor: { id: `key:${creator.id}` } }, [
      creator.key,
    ]);
  });

  it("migration 0009 brings keys minted before this rule under it: earliest expiry and first revocation along the chain", async () => {
    const fix = testBindings.TEST_MIGRATIONS.find((m) => m.name.startsWith("0009_"))?.queries.at(-1);
    expect(fix).toContain("WITH RECURSIVE lineage");
    const p = `mig${crypto.randomUUID().replaceAll("-", "").slice(0, 9)}`;
    const id = (n: string) => `${p}${n}`;
    const rows: [string, string, number | null, number | null][] = [
      [id("a"), "admin", 1_000, null],
      [id("b"), `key:${id("a")}`, null, null],
      [id("c"), `key:${id("b")}`, 5_000, null],
      [id("d"), "admin", null, 50],
      [id("e"), `key:${id("d")}`, null, null],
      [id("f"), `key:${id("e")}`, null, 40],
    ];
    for (const [key, by, expires, revoked] of rows) {
      await env.DB.prepare(
        `INSERT INTO api_keys (id, name, secret_hash, grants, created_by, created_at, expires_at, revoked_at, revoked_by)
         VALUES (?1, 'old', 'x', '[]', ?2, 1, ?3, ?4, ?5)`,
      )
        .bind(key, by, expires, revoked, revoked === null ? null : "admin")
        .run();
    }
    await env.DB.prepare(fix as string).run();
    const { results } = await env.DB.prepare("SELECT id, expires_at, revoked_at FROM api_keys WHERE id LIKE ?1 ORDER BY id")
      .bind(`${p}%`)
      .all<{ id: string; expires_at: number | null; revoked_at: number | null }>();
    expect(results.map((r) => [r.id.slice(p.length), r.expires_at, r.revoked_at])).toEqual([
      ["a", 1_000, null],
      ["b", 1_000, null],
      ["c", 1_000, null],
      ["d", null, 50],
      ["e", null, 50],
      ["f", null, 40],
    ]);
  });
});
