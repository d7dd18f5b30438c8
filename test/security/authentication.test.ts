import { env } from "cloudflare:workers";
import { base64url, type CryptoKey, exportJWK, exportSPKI, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";
import { parse } from "smol-toml";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import shipped from "../../eventline.config";
import { THROTTLED_AUDIT_ACTION } from "../../workers/platform/auth/lockout";
import wranglerToml from "../../wrangler.toml?raw";
import { ADMIN_KEY, anonymousRequest, event, expectAccepted, expectProblem, request, requestAs, STRUCTURED, waitFor } from "../helpers";
import {
  auditSearch,
  captureLogs,
  configWithSecurity,
  countingFetch,
  dataHeads,
  expectAudit,
  expectNoAudit,
  expectNoSecrets,
  type LogCapture,
  sleep,
  type TestApp,
  type TestRequestInit,
  testApp,
} from "./helpers";
import { tallyOf } from "./tally-helpers";

/*
 * Authentication end to end: the Authorization header, JWTs from two OIDC issuers (a static JWKS
 * and a jwksUri served by a counting fake fetch), mTLS route groups, rate limits, log injection,
 * and EVENTLINE_AUTH. Every refusal is checked for its status, its problem document, the absence
 * of any state change, and its audit record — which must never contain the credential.
 */

const IP = "192.0.2.44";
const ISS_STATIC = "https://static.idp.example/";
const ISS_REMOTE = "https://remote.idp.example/";
const JWKS_URI = "https://remote.idp.example/.well-known/jwks.json";
const EVIL = "https://evil.example";
const AUD = "eventline";
const PRODUCE_PATH = "/v1/topics/events/events";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** RFC 6750 §3: a challenge's error_description is printable ASCII without `"` and `\`. */
const INVALID_TOKEN_CHALLENGE = /^Bearer realm="eventline", error="invalid_token", error_description="[\x20\x21\x23-\x5b\x5d-\x7e]*"$/;
const INVALID_REQUEST_CHALLENGE = 'Bearer realm="eventline", error="invalid_request", error_description="expected Bearer <token>"';

/** Every credential a test used: none may appear in a log line or an audit record. */
const secrets: string[] = [];
let logs: LogCapture;

beforeAll(() => {
  logs = captureLogs();
});

afterEach(() => {
  expectNoSecrets(logs.lines().join("\n"), secrets);
});

afterAll(async () => {
  logs.restore();
  expectNoSecrets(JSON.stringify(await auditSearch()), secrets);
});

interface TestKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

async function makeKey(alg: string, kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Claims of a valid token of the static issuer, now. An override of `undefined` removes the claim. */
function claims(overrides: Record<string, unknown> = {}): JWTPayload {
  const now = nowSeconds();
  const all: Record<string, unknown> = {
    iss: ISS_STATIC,
    aud: AUD,
    sub: "alice",
    iat: now,
    exp: now + 300,
    tenant: "acme",
    eventline_grants: ["produce:events"],
    ...overrides,
  };
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined));
}

async function sign(payload: JWTPayload, key: TestKey, header: Record<string, unknown> = {}): Promise<string> {
  const protectedHeader = Object.fromEntries(
    Object.entries({ alg: key.alg, typ: "JWT", kid: key.kid, ...header }).filter(([, v]) => v !== undefined),
  );
  const token = await new SignJWT(payload).setProtectedHeader(protectedHeader as { alg: string }).sign(key.privateKey);
  secrets.push(token);
  return token;
}

const b64json = (value: unknown) => base64url.encode(JSON.stringify(value));

/** An HS256 token keyed with `secret` (the key-confusion attack uses the RSA public key's PEM). */
async function hmacToken(payload: JWTPayload, secret: string, kid: string): Promise<string> {
  const input = `${b64json({ alg: "HS256", typ: "JWT", kid })}.${b64json(payload)}`;
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(input)));
  const token = `${input}.${base64url.encode(mac)}`;
  secrets.push(token);
  return token;
}

/** A request init producing one event with `token` (and the test's client address). */
function produceInit(token: string, extra: TestRequestInit = {}): TestRequestInit {
  return {
    method: "POST",
    ...extra,
    headers: { authorization: `Bearer ${token}`, "content-type": STRUCTURED, "cf-connecting-ip": IP, ...(extra.headers as object) },
    body: JSON.stringify(event()),
  };
}

// The OIDC test app: one static-JWKS issuer (RS256 + ES256 keys) and one jwksUri issuer.
let rsa: TestKey;
let ec: TestKey;
let remote: TestKey;
let attacker: TestKey;
let rsaPem: string;
let published: { keys: JWK[] };
let jwks: ReturnType<typeof countingFetch>;
let jwtApp: TestApp;

function oidcConfig(cooldownSeconds: number) {
  return configWithSecurity({
    oidc: {
      issuers: [
        { issuer: ISS_STATIC, audiences: [AUD], jwks: { keys: [rsa.publicJwk, ec.publicJwk] as Record<string, unknown>[] } },
        { issuer: ISS_REMOTE, audiences: [AUD], jwksUri: JWKS_URI },
      ],
      jwksCacheSeconds: 600,
      jwksCooldownSeconds: cooldownSeconds,
    },
  });
}

function jwksEndpoint() {
  return countingFetch({ [JWKS_URI]: () => Response.json(structuredClone(published)) });
}

beforeAll(async () => {
  rsa = await makeKey("RS256", "rsa-1");
  ec = await makeKey("ES256", "ec-1");
  remote = await makeKey("RS256", "remote-1");
  attacker = await makeKey("RS256", "evil");
  rsaPem = await exportSPKI(rsa.publicKey);
  published = { keys: [remote.publicJwk] };
  jwks = jwksEndpoint();
  jwtApp = testApp(oidcConfig(30), { fetch: jwks.fetch });
});

/** The request log line of `requestId`. */
function requestLine(requestId: string): Record<string, unknown> | undefined {
  return logs.records().find((r) => r.msg === "request" && r.requestId === requestId);
}

/**
 * Sends `token` to produce on the JWT app and asserts the refusal: 401 problem, an invalid_token
 * challenge, no event stored, one auth.failed audit record with `reason` — and the token nowhere.
 */
async function expectTokenRefused(app: TestApp, token: string, reason: string): Promise<string> {
  const before = await dataHeads();
  const res = await app.call(PRODUCE_PATH, produceInit(token));
  const problem = await expectProblem(res, 401);
  expect(problem.code).toBe("unauthorized");
  expect(problem.detail).toBe(`invalid token: ${reason}`);
  const challenge = res.headers.get("www-authenticate") ?? "";
  expect(challenge).toMatch(INVALID_TOKEN_CHALLENGE);
  expect(await dataHeads()).toEqual(before);
  expectNoSecrets(`${JSON.stringify(problem)}\n${challenge}`, [token]);
  await expectAudit(
    problem.requestId,
    {
      action: "auth.failed",
      outcome: "failure",
      status: 401,
      resource: PRODUCE_PATH,
      actor: { id: "unauthenticated", kind: "none" },
      reason: `invalid token: ${reason}`,
      method: "POST",
      path: PRODUCE_PATH,
      ip: IP,
    },
    [token],
  );
  return problem.requestId;
}

describe("the Authorization header", () => {
  it("missing: 401 with the bare Bearer challenge, audited as auth.failed, nothing stored", async () => {
    const before = await dataHeads();
    const res = await anonymousRequest(PRODUCE_PATH, {
      method: "POST",
      headers: { "content-type": STRUCTURED, "cf-connecting-ip": IP },
      body: JSON.stringify(event()),
    });
    const problem = await expectProblem(res, 401);
    expect(problem.code).toBe("unauthorized");
    expect(problem.detail).toBe("this endpoint needs credentials: send Authorization: Bearer <API key or JWT>");
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="eventline"');
    expect(await dataHeads()).toEqual(before);
    await expectAudit(problem.requestId, {
      action: "auth.failed",
      outcome: "failure",
      status: 401,
      actor: { id: "unauthenticated", kind: "none" },
      reason: problem.detail,
      method: "POST",
      path: PRODUCE_PATH,
      resource: PRODUCE_PATH,
      ip: IP,
    });
  });

  it.each([
    ["Basic credentials", "Basic dXNlcjpjb3JyZWN0LWhvcnNlLWJhdHRlcnktc3RhcGxl"],
    ["Bearer with no token", "Bearer"],
    ["Bearer with only spaces", "Bearer    "],
    ["a token with spaces", "Bearer evl_aaaaaaaaaaaa secret-part-after-a-space"],
    ["a token with a tab", "Bearer abcdefgh\tijklmnop"],
    ["a token with a comma", "Bearer abcdefgh,ijklmnop"],
    ["a token with a quote", 'Bearer abcdefgh"ijklmnop'],
    ["two schemes", `Bearer ${ADMIN_KEY}, Basic eA==`],
    ["another scheme", "Token abcdefghijklmnopqrstuvwxyz0123456789"],
  ])("malformed (%s): 401 invalid_request, audited, nothing stored", async (_name, header) => {
    const credential = header.replace(/^\S+\s*/, "");
    if (credential.length >= 8) secrets.push(credential);
    const before = await dataHeads();
    const res = await anonymousRequest(PRODUCE_PATH, {
      method: "POST",
      headers: { authorization: header, "content-type": STRUCTURED, "cf-connecting-ip": IP },
      body: JSON.stringify(event()),
    });
    const problem = await expectProblem(res, 401);
    expect(problem.detail).toBe("malformed Authorization header: expected `Bearer <token>`");
    expect(res.headers.get("www-authenticate")).toBe(INVALID_REQUEST_CHALLENGE);
    expect(await dataHeads()).toEqual(before);
    await expectAudit(
      problem.requestId,
      {
        action: "auth.failed",
        outcome: "failure",
        status: 401,
        actor: { id: "unauthenticated", kind: "none" },
        reason: problem.detail,
        ip: IP,
      },
      credential.length >= 8 ? [credential] : [],
    );
  });

  it("a bearer token that is neither the admin key, an API key nor a JWT (no issuer configured): 401 invalid_token", async () => {
    const token = "not-a-known-credential-0123456789abcdef";
    secrets.push(token);
    const res = await requestAs(token, "/v1/topics", { headers: { "cf-connecting-ip": IP } });
    const problem = await expectProblem(res, 401);
    expect(problem.detail).toBe("not an API key, and no OIDC issuer is configured for JWTs");
    expect(res.headers.get("www-authenticate")).toMatch(INVALID_TOKEN_CHALLENGE);
    await expectAudit(problem.requestId, { action: "auth.failed", status: 401, reason: problem.detail, ip: IP }, [token]);
  });

  it.each(["/health", "/openapi.json", "/docs"])("public path %s needs no credentials (and ignores bad ones)", async (path) => {
    for (const headers of [{}, { authorization: "Basic eA==" }] as Record<string, string>[]) {
      const res = await anonymousRequest(path, { headers });
      expect(res.status, path).toBe(200);
      expect(res.headers.get("www-authenticate")).toBeNull();
      await res.arrayBuffer();
      await expectNoAudit(res.headers.get("x-request-id") as string);
    }
  });

  it("/docs/ is public too: no credentials asked for, nothing audited", async () => {
    // The authentication middleware lets /docs/ through; the router redirects it to /docs.
    const res = await anonymousRequest("/docs/", { headers: { "cf-connecting-ip": IP }, redirect: "manual" });
    expect(res.status).toBe(301);
    expect(res.headers.get("location")).toBe("/docs");
    expect(res.headers.get("www-authenticate")).toBeNull();
    await res.arrayBuffer();
    await expectNoAudit(res.headers.get("x-request-id") as string);
  });

  it.each([
    ["GET", "/v1/no-such-route", 404],
    ["GET", "/no-such-route", 404],
    ["GET", "/health/", 404],
    ["GET", "/docs/secret", 404],
    ["DELETE", "/v1/topics/events", 405],
    ["POST", "/v1/keys", 400],
  ])("%s %s without credentials is 401 (with them: %i) — nothing about the route is disclosed", async (method, path, withCredentials) => {
    const before = await dataHeads();
    const keysBefore = await request("/v1/keys").then((r) => r.json());
    // A body the route would refuse anyway, so the credentialed request changes nothing either.
    const init = {
      method,
      headers: { "cf-connecting-ip": IP, "content-type": "application/json" },
      ...(method === "POST" ? { body: "{}" } : {}),
    };
    const res = await anonymousRequest(path, init);
    const problem = await expectProblem(res, 401);
    expect(problem.detail).toBe("this endpoint needs credentials: send Authorization: Bearer <API key or JWT>");
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="eventline"');
    expect(res.headers.get("allow")).toBeNull();
    await expectAudit(problem.requestId, { action: "auth.failed", status: 401, path, method, actor: { id: "unauthenticated" }, ip: IP });
    await expectProblem(await request(path, init), withCredentials);
    expect(await dataHeads()).toEqual(before);
    expect(await request("/v1/keys").then((r) => r.json())).toEqual(keysBefore);
  });
});

describe("JWT bearer tokens (OIDC issuers)", () => {
  it("a valid RS256 token with a grants claim produces (202) as principal jwt:<iss>#<sub>", async () => {
    const token = await sign(claims(), rsa);
    const res = await jwtApp.call(PRODUCE_PATH, produceInit(token));
    const acks = await expectAccepted(res);
    expect(acks).toHaveLength(1);
    const line = requestLine(res.headers.get("x-request-id") as string);
    expect(line).toMatchObject({ principal: `jwt:${ISS_STATIC}#alice`, status: 202, method: "POST" });

    // The same principal, denied on orders: the audit record names it (and its tenant).
    const before = await dataHeads();
    const denied = await jwtApp.call("/v1/topics/orders/events", produceInit(token));
    const problem = await expectProblem(denied, 403);
    expect(problem.detail).toBe(`jwt:${ISS_STATIC}#alice lacks produce on topic orders`);
    expect(await dataHeads()).toEqual(before);
    await expectAudit(
      problem.requestId,
      {
        action: "access.denied",
        outcome: "denied",
        status: 403,
        resource: "topic:orders",
        actor: { id: `jwt:${ISS_STATIC}#alice`, kind: "jwt", tenant: "acme" },
      },
      [token],
    );
  });

  it("an ES256 token of the static issuer, and grants as a space-separated string, are accepted", async () => {
    await expectAccepted(await jwtApp.call(PRODUCE_PATH, produceInit(await sign(claims({ sub: "erin" }), ec, { typ: "at+jwt" }))));
    await expectAccepted(
      await jwtApp.call(PRODUCE_PATH, produceInit(await sign(claims({ eventline_grants: "consume:events produce:events" }), rsa))),
    );
  });

  it("a token of the jwksUri issuer is verified with the fetched JWKS (one fetch of the configured URI)", async () => {
    const fetchesBefore = jwks.count(JWKS_URI);
    const token = await sign(claims({ iss: ISS_REMOTE, sub: "rita" }), remote);
    const res = await jwtApp.call(PRODUCE_PATH, produceInit(token));
    await expectAccepted(res);
    expect(requestLine(res.headers.get("x-request-id") as string)).toMatchObject({ principal: `jwt:${ISS_REMOTE}#rita` });
    await expectAccepted(await jwtApp.call(PRODUCE_PATH, produceInit(await sign(claims({ iss: ISS_REMOTE, sub: "rita" }), remote))));
    expect(jwks.count(JWKS_URI) - fetchesBefore).toBeLessThanOrEqual(1);
    expect(jwks.urls.every((u) => u === JWKS_URI)).toBe(true);
  });

  it("alg none is refused", async () => {
    const token = `${b64json({ alg: "none", typ: "JWT" })}.${b64json(claims({ eventline_grants: ["admin:*"] }))}.`;
    secrets.push(token);
    await expectTokenRefused(jwtApp, token, `algorithm "none" not accepted for issuer ${ISS_STATIC}`);
    const withKid = `${b64json({ alg: "none", typ: "JWT", kid: "rsa-1" })}.${b64json(claims())}.e30`;
    secrets.push(withKid);
    await expectTokenRefused(jwtApp, withKid, `algorithm "none" not accepted for issuer ${ISS_STATIC}`);
  });

  it("HS256 signed with the issuer's RSA public key (key confusion) is refused", async () => {
    await expectTokenRefused(
      jwtApp,
      await hmacToken(claims({ eventline_grants: ["admin:*"] }), rsaPem, "rsa-1"),
      `algorithm "HS256" not accepted for issuer ${ISS_STATIC}`,
    );
    await expectTokenRefused(
      jwtApp,
      await hmacToken(claims(), rsa.publicJwk.n as string, "rsa-1"),
      `algorithm "HS256" not accepted for issuer ${ISS_STATIC}`,
    );
  });

  it("a forged signature under a known kid, and a payload changed after signing, are refused", async () => {
    await expectTokenRefused(jwtApp, await sign(claims(), attacker, { kid: "rsa-1" }), "signature invalid");
    const [header, , signature] = (await sign(claims(), rsa)).split(".");
    const tampered = `${header}.${b64json(claims({ eventline_grants: ["admin:*"] }))}.${signature}`;
    secrets.push(tampered);
    await expectTokenRefused(jwtApp, tampered, "signature invalid");
  });

  it("jku / x5u / jwk headers pointing at the attacker are never followed", async () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [{ jku: `${EVIL}/jwks.json` }, ISS_STATIC, `no key with kid "evil" in the issuer's JWKS`],
      [{ x5u: `${EVIL}/cert.pem` }, ISS_STATIC, `no key with kid "evil" in the issuer's JWKS`],
      [{ jku: `${EVIL}/jwks.json`, kid: "rsa-1" }, ISS_STATIC, "signature invalid"],
      [{ x5u: `${EVIL}/cert.pem`, kid: "rsa-1" }, ISS_STATIC, "signature invalid"],
      [{ jwk: attacker.publicJwk, kid: undefined }, ISS_STATIC, "signature invalid"],
      [{ jku: `${EVIL}/jwks.json` }, ISS_REMOTE, `no key with kid "evil" in the issuer's JWKS`],
      [{ x5u: `${EVIL}/cert.pem`, kid: "remote-1" }, ISS_REMOTE, "signature invalid"],
    ];
    for (const [header, iss, reason] of cases) {
      await expectTokenRefused(jwtApp, await sign(claims({ iss, eventline_grants: ["admin:*"] }), attacker, header), reason);
    }
    expect(jwks.urls.filter((u) => u.includes("evil.example"))).toEqual([]);
    expect(jwks.urls.every((u) => u === JWKS_URI)).toBe(true);
  });

  it("a wrong iss, aud or typ is refused", async () => {
    await expectTokenRefused(
      jwtApp,
      await sign(claims({ iss: "https://other.idp.example/" }), rsa),
      `issuer "https://other.idp.example/" not configured`,
    );
    await expectTokenRefused(
      jwtApp,
      await sign(claims({ iss: "https://static.idp.example" }), rsa),
      `issuer "https://static.idp.example" not configured`,
    );
    await expectTokenRefused(jwtApp, await sign(claims({ iss: undefined }), rsa), "token has no issuer (iss)");
    await expectTokenRefused(jwtApp, await sign(claims({ aud: "someone-else" }), rsa), "audience not accepted");
    await expectTokenRefused(jwtApp, await sign(claims({ aud: undefined }), rsa), `required claim "aud" missing`);
    await expectTokenRefused(jwtApp, await sign(claims(), rsa, { typ: "foo" }), `typ "foo" not accepted`);
    await expectTokenRefused(jwtApp, await sign(claims(), rsa, { typ: "JOSE" }), `typ "JOSE" not accepted`);
    // The static issuer's key does not make a token of the jwksUri issuer.
    await expectTokenRefused(jwtApp, await sign(claims({ iss: ISS_REMOTE }), rsa), `no key with kid "rsa-1" in the issuer's JWKS`);
  });

  it("expiry: beyond the 30 s tolerance refused, within it accepted; nbf in the future refused", async () => {
    const now = nowSeconds();
    await expectTokenRefused(jwtApp, await sign(claims({ iat: now - 600, exp: now - 120 }), rsa), "token expired");
    await expectTokenRefused(jwtApp, await sign(claims({ exp: undefined }), rsa), `required claim "exp" missing`);
    await expectAccepted(await jwtApp.call(PRODUCE_PATH, produceInit(await sign(claims({ iat: now - 300, exp: now - 10 }), rsa))));
    await expectTokenRefused(jwtApp, await sign(claims({ nbf: now + 120 }), rsa), "token not yet valid (nbf)");
    await expectAccepted(await jwtApp.call(PRODUCE_PATH, produceInit(await sign(claims({ nbf: now + 5 }), rsa))));
  });

  it("a token whose grants claim is malformed is refused as a whole (no partial grants)", async () => {
    await expectTokenRefused(
      jwtApp,
      await sign(claims({ eventline_grants: ["produce:events", "produce:orders*"] }), rsa),
      `invalid grants in claim "eventline_grants": grant "produce:orders*": a prefix pattern must end in a delimiter (. : _ - /) before "*"`,
    );
  });

  it("a valid token with no grants: authenticated but not authorized — 403 without a WWW-Authenticate challenge", async () => {
    const token = await sign(claims({ sub: "nobody", eventline_grants: undefined }), rsa);
    const before = await dataHeads();
    const res = await jwtApp.call(PRODUCE_PATH, produceInit(token));
    const problem = await expectProblem(res, 403);
    expect(problem.code).toBe("forbidden");
    expect(problem.detail).toBe(`jwt:${ISS_STATIC}#nobody lacks produce on topic events`);
    expect(res.headers.get("www-authenticate")).toBeNull();
    expect(await dataHeads()).toEqual(before);
    await expectAudit(
      problem.requestId,
      {
        action: "access.denied",
        outcome: "denied",
        status: 403,
        resource: "topic:events",
        actor: { id: `jwt:${ISS_STATIC}#nobody`, kind: "jwt" },
        reason: problem.detail,
        method: "POST",
        path: PRODUCE_PATH,
      },
      [token],
    );
    // Listing needs some grant too.
    const listed = await jwtApp.call("/v1/topics", { headers: { authorization: `Bearer ${token}` } });
    expect((await expectProblem(listed, 403)).detail).toBe(`jwt:${ISS_STATIC}#nobody has no grants`);
  });

  it("a claim value with non-ASCII characters cannot break the challenge header (RFC 6750 charset)", async () => {
    await expectTokenRefused(jwtApp, await sign(claims({ iss: "https://☃.example/" }), rsa), `issuer "https://☃.example/" not configured`);
    await expectTokenRefused(
      jwtApp,
      await sign(claims(), rsa, { typ: 'x"\\\u00e9\u2028' }),
      `typ ${JSON.stringify('x"\\\u00e9\u2028')} not accepted`,
    );
  });

  it("an unknown-kid flood costs at most one JWKS refetch per cooldown (30 concurrent requests, random kids)", async () => {
    const COOLDOWN_MS = 3_000;
    const endpoint = jwksEndpoint();
    const app = testApp(oidcConfig(COOLDOWN_MS / 1000), { fetch: endpoint.fetch });
    const refused: [string, string][] = [];
    const before = await dataHeads();
    await expectAccepted(await app.call(PRODUCE_PATH, produceInit(await sign(claims({ iss: ISS_REMOTE }), remote))));
    expect(endpoint.count(JWKS_URI)).toBe(1);
    const afterFirst = await dataHeads();

    const flood = async () => {
      const kids = Array.from({ length: 30 }, () => `kid-${crypto.randomUUID()}`);
      const tokens = await Promise.all(
        kids.map((kid) => sign(claims({ iss: ISS_REMOTE, eventline_grants: ["admin:*"] }), attacker, { kid })),
      );
      const responses = await Promise.all(tokens.map((t) => app.call(PRODUCE_PATH, produceInit(t))));
      const ids: [string, string][] = [];
      for (const [i, res] of responses.entries()) {
        const problem = await expectProblem(res, 401);
        expect(problem.detail).toBe(`invalid token: no key with kid "${kids[i]}" in the issuer's JWKS`);
        ids.push([problem.requestId, kids[i] as string]);
      }
      return ids;
    };

    // Right after the first fetch: inside the cooldown, nothing is fetched.
    const inside = await flood();
    expect(endpoint.count(JWKS_URI)).toBe(1);
    // Once the cooldown has passed: exactly one refetch, however many unknown kids arrive together.
    await sleep(COOLDOWN_MS + 100);
    const after = await flood();
    expect(endpoint.count(JWKS_URI)).toBe(2);
    // A key the issuer rotates in now is not fetched again inside the cooldown...
    const rotated = await makeKey("RS256", "rotated-1");
    published.keys = [remote.publicJwk, rotated.publicJwk];
    try {
      const early = await app.call(PRODUCE_PATH, produceInit(await sign(claims({ iss: ISS_REMOTE }), rotated)));
      expect((await expectProblem(early, 401)).detail).toBe(`invalid token: no key with kid "rotated-1" in the issuer's JWKS`);
      const again = await flood();
      expect(endpoint.count(JWKS_URI)).toBe(2);
      // ...but is picked up by the first refetch after it.
      await sleep(COOLDOWN_MS + 100);
      await expectAccepted(await app.call(PRODUCE_PATH, produceInit(await sign(claims({ iss: ISS_REMOTE }), rotated))));
      expect(endpoint.count(JWKS_URI)).toBe(3);
      expect(endpoint.urls.every((u) => u === JWKS_URI)).toBe(true);
      refused.push(...inside, ...after, ...again);
    } finally {
      published.keys = [remote.publicJwk];
    }

    // Nothing stored by the refused ones, and each is audited.
    const heads = await dataHeads();
    expect(heads.events?.reduce((a, b) => a + b, 0)).toBe((afterFirst.events?.reduce((a, b) => a + b, 0) ?? 0) + 1);
    expect({ ...heads, events: [] }).toEqual({ ...before, events: [] });
    const failed = new Map((await auditSearch({ action: "auth.failed" })).map((r) => [r.requestId, r]));
    expect(refused).toHaveLength(90);
    for (const [requestId, kid] of refused) {
      expect(failed.get(requestId)).toMatchObject({
        outcome: "failure",
        status: 401,
        actor: { id: "unauthenticated", kind: "none" },
        reason: `invalid token: no key with kid "${kid}" in the issuer's JWKS`,
      });
    }
  });
});

describe("mTLS route groups", () => {
  const FINGERPRINT = "a".repeat(64);
  const OTHER_FINGERPRINT = "b".repeat(64);
  let mtlsApp: TestApp;
  let pinnedApp: TestApp;

  beforeAll(() => {
    mtlsApp = testApp(configWithSecurity({ mtls: { routeGroups: ["ingest"] } }));
    pinnedApp = testApp(configWithSecurity({ mtls: { routeGroups: ["ingest"], certificates: [{ fingerprintSha256: FINGERPRINT }] } }));
  });

  /** `request.cf.tlsClientAuth` as the edge sets it for a presented certificate. */
  const cert = (overrides: Record<string, string> = {}) => ({
    certPresented: "1",
    certVerified: "SUCCESS",
    certRevoked: "0",
    certSubjectDN: "CN=svc",
    certIssuerDN: "CN=ca",
    certSubjectDNRFC2253: "CN=svc",
    certIssuerDNRFC2253: "CN=ca",
    certSerial: "00936EACBE07F201DF",
    certFingerprintSHA1: "c".repeat(40),
    certFingerprintSHA256: FINGERPRINT,
    certNotBefore: "Dec 22 19:39:00 2018 GMT",
    certNotAfter: "Dec 22 19:39:00 2099 GMT",
    ...overrides,
  });
  const noCert = {
    certPresented: "0",
    certVerified: "NONE",
    certRevoked: "0",
    certSubjectDN: "",
    certIssuerDN: "",
    certFingerprintSHA256: "",
  };

  const produceAsAdmin = (app: TestApp, tlsClientAuth?: Record<string, string>) =>
    app.call(PRODUCE_PATH, produceInit(ADMIN_KEY, tlsClientAuth === undefined ? {} : { cf: { tlsClientAuth } }));

  async function expectCertRefused(app: TestApp, tlsClientAuth: Record<string, string> | undefined, reason: string): Promise<void> {
    const before = await dataHeads();
    const res = await produceAsAdmin(app, tlsClientAuth);
    const problem = await expectProblem(res, 403);
    expect(problem.code).toBe("forbidden");
    expect(problem.detail).toBe(reason);
    expect(res.headers.get("www-authenticate")).toBeNull();
    expect(await dataHeads()).toEqual(before);
    await expectAudit(problem.requestId, {
      action: "access.denied",
      outcome: "denied",
      status: 403,
      resource: "topic:events",
      actor: { id: "admin", kind: "admin-key" },
      reason,
      method: "POST",
      path: PRODUCE_PATH,
    });
  }

  it("no client certificate on an ingest route: 403, even for the admin", async () => {
    await expectCertRefused(mtlsApp, undefined, "a client certificate is required for this route (mTLS)");
    await expectCertRefused(mtlsApp, noCert, "a client certificate is required for this route (mTLS)");
  });

  it.each(["FAILED:self signed certificate", "FAILED:certificate has expired", "FAILED:unable to verify the first certificate", "FAILED"])(
    "a presented certificate that failed verification (%s): 403",
    async (certVerified) => {
      await expectCertRefused(mtlsApp, cert({ certVerified }), `the client certificate was not verified (${certVerified})`);
    },
  );

  it("a verified but revoked certificate: 403", async () => {
    await expectCertRefused(mtlsApp, cert({ certRevoked: "1" }), "the client certificate has been revoked");
  });

  it("a verified certificate: 202; reads (group read) and admin routes need none", async () => {
    await expectAccepted(await produceAsAdmin(mtlsApp, cert()));
    for (const path of ["/v1/topics", "/v1/topics/events", "/v1/keys"]) {
      const res = await mtlsApp.call(path, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
      expect(res.status, path).toBe(200);
      await res.arrayBuffer();
    }
  });

  it("a certificate does not replace credentials: a verified certificate without Authorization is 401", async () => {
    const before = await dataHeads();
    const res = await mtlsApp.call(PRODUCE_PATH, {
      method: "POST",
      headers: { "content-type": STRUCTURED, "cf-connecting-ip": IP },
      body: JSON.stringify(event()),
      cf: { tlsClientAuth: cert() },
    });
    const problem = await expectProblem(res, 401);
    expect(await dataHeads()).toEqual(before);
    await expectAudit(problem.requestId, { action: "auth.failed", status: 401, actor: { id: "unauthenticated" }, ip: IP });
  });

  it("with security.mtls.certificates, a verified certificate that is not listed: 403; the listed one: 202", async () => {
    await expectCertRefused(
      pinnedApp,
      cert({ certFingerprintSHA256: OTHER_FINGERPRINT }),
      "the client certificate is not one of the certificates allowed for this route",
    );
    await expectCertRefused(
      pinnedApp,
      cert({ certFingerprintSHA256: FINGERPRINT.toUpperCase() }),
      "the client certificate is not one of the certificates allowed for this route",
    );
    await expectCertRefused(
      pinnedApp,
      cert({ certVerified: "FAILED:self signed certificate" }),
      "the client certificate was not verified (FAILED:self signed certificate)",
    );
    await expectAccepted(await produceAsAdmin(pinnedApp, cert()));
  });
});

describe("rate limits", () => {
  /** Sends `send()` with `concurrency` in flight until a 429 (or `max` requests); every other answer must be `ok`. */
  async function hammer(
    send: () => Promise<Response>,
    ok: number,
    max = 3_000,
    concurrency = 8,
  ): Promise<{ limited: Response; sent: number }> {
    let sent = 0;
    let limited: Response | undefined;
    const worker = async () => {
      while (limited === undefined && sent < max) {
        sent++;
        const res = await send();
        if (res.status === 429) {
          limited ??= res;
          continue;
        }
        expect(res.status).toBe(ok);
        await res.arrayBuffer();
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    expect(limited, `no 429 after ${sent} requests`).toBeDefined();
    return { limited: limited as Response, sent };
  }

  async function createKey(grants: string[]): Promise<{ id: string; key: string }> {
    const res = await request("/v1/keys", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "rate-limit", grants }),
    });
    expect(res.status).toBe(201);
    const created = (await res.json()) as { id: string; key: string };
    secrets.push(created.key);
    return created;
  }

  it("a principal over its budget gets 429 problem+json with Retry-After; another principal is unaffected", {
    timeout: 120_000,
  }, async () => {
    // A grant on no existing topic: GET /v1/topics answers an empty list without touching a partition.
    const hot = await createKey(["consume:rate-limit-nothing"]);
    const before = await dataHeads();
    const { limited, sent } = await hammer(() => requestAs(hot.key, "/v1/topics"), 200);
    expect(sent).toBeGreaterThanOrEqual(1_000);
    const problem = await expectProblem(limited, 429);
    expect(problem.code).toBe("rate_limited");
    expect(problem.detail).toBe(`request budget of key:${hot.id} exhausted; retry after the Retry-After seconds`);
    expect(limited.headers.get("retry-after")).toBe("10");
    expect(limited.headers.get("www-authenticate")).toBeNull();
    // In the same window: the admin and another key are served, the hot key is still refused.
    const window = Math.floor(Date.now() / 10_000);
    const other = await createKey(["consume:rate-limit-nothing"]);
    expect((await request("/v1/topics")).status).toBe(200);
    expect((await requestAs(other.key, "/v1/topics")).status).toBe(200);
    const still = await requestAs(hot.key, "/v1/topics");
    expect(still.status === 429 || Math.floor(Date.now() / 10_000) !== window, "still limited within the window").toBe(true);
    expect(await dataHeads()).toEqual(before);
    // Throttled requests are not audited (that would let a flood fill the audit log); the key's id is not leaked either.
    await expectNoAudit(problem.requestId);
  });

  it("failed authentication spends the client address's budget: then 429 for that address, valid credentials included, until the window passes; others unaffected", {
    timeout: 120_000,
  }, async () => {
    const ip = `198.51.100.${1 + Math.floor(Math.random() * 250)}`;
    const wrong = `evl_${"x".repeat(12)}_${"W".repeat(43)}`;
    secrets.push(wrong);
    const good = await createKey(["consume:rate-limit-nothing"]);
    const before = await dataHeads();
    const { limited } = await hammer(() => requestAs(wrong, "/v1/topics", { headers: { "cf-connecting-ip": ip } }), 401);
    const lockedAt = Date.now();
    const problem = await expectProblem(limited, 429);
    expect(problem.detail).toBe("request budget of this client exhausted; retry after the Retry-After seconds");
    expect(limited.headers.get("retry-after")).toBe("10");
    // Valid credentials from the locked-out address get 429 too (their secret is not even checked,
    // so a right guess looks like a wrong one); another address still gets its 401, or its 200.
    const locked = await requestAs(good.key, "/v1/topics", { headers: { "cf-connecting-ip": ip } });
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    const elsewhere = await requestAs(wrong, "/v1/topics", { headers: { "cf-connecting-ip": "203.0.113.9" } });
    await expectProblem(elsewhere, 401);
    expect((await requestAs(good.key, "/v1/topics", { headers: { "cf-connecting-ip": "203.0.113.9" } })).status).toBe(200);
    expect(await dataHeads()).toEqual(before);
    // The refused requests are not audited one by one: they are counted in the address's window
    // (its AuditTally object), and once the window closes (here: passed to its end, as its alarm
    // would) one auth.throttled record with their count is written (test/security/lockout.test.ts
    // checks the count and request id exactly).
    const tally = tallyOf(THROTTLED_AUDIT_ACTION, "unauthenticated", `client:${ip}`);
    const windows = await waitFor(tally.windows, (w) => (w[0]?.counts.count ?? 0) >= 2, 15_000);
    expect(windows).toHaveLength(1);
    expect(await tally.flush(windows[0]?.until ?? 0)).toBe(1);
    const throttled = (await auditSearch({ action: THROTTLED_AUDIT_ACTION })).filter((r) => r.ip === ip);
    expect(throttled).toHaveLength(1);
    expect(throttled[0]).toMatchObject({ action: THROTTLED_AUDIT_ACTION, status: 429, resource: `client:${ip}` });
    expect(throttled[0]?.details?.count as number).toBeGreaterThanOrEqual(2);
    // Once the lock (10 s) has passed, the address is served again.
    await sleep(Math.max(0, lockedAt + 10_200 - Date.now()));
    expect((await requestAs(good.key, "/v1/topics", { headers: { "cf-connecting-ip": ip } })).status).toBe(200);
  });
});

describe("log injection and credential hygiene", () => {
  it("a request id with a newline cannot even be sent", () => {
    expect(() => new Headers({ "x-request-id": 'a\n{"level":"error","forged":true}' })).toThrow(TypeError);
    expect(() => new Headers({ "x-request-id": 'a\r\n{"level":"error","forged":true}' })).toThrow(TypeError);
  });

  it("forged log lines in the path, the request id and a JWT's sub stay inside one JSON line each", async () => {
    const from = logs.lines().length;
    const forged = '{"level":"error","forged":true}';
    // 1. The path.
    const pathRes = await anonymousRequest(`/v1/topics/%0A${forged}/events`, { method: "POST", headers: { "cf-connecting-ip": IP } });
    const pathProblem = await expectProblem(pathRes, 401);
    // 2. A request id with a quote, a tab and JSON (not a valid id: replaced by a fresh one).
    const idRes = await request("/v1/topics", { headers: { "x-request-id": `evil"\t${forged}` } });
    expect(idRes.status).toBe(200);
    expect(idRes.headers.get("x-request-id")).toMatch(UUID);
    // 3. A JWT whose sub carries a newline and a forged record.
    const sub = `mallory\n${forged}`;
    const token = await sign(claims({ sub }), rsa);
    const okRes = await jwtApp.call(PRODUCE_PATH, produceInit(token));
    await expectAccepted(okRes);
    const denied = await jwtApp.call("/v1/topics/orders/events", produceInit(token));
    const deniedProblem = await expectProblem(denied, 403);
    // 4. An API key, used once.
    const keyRes = await request("/v1/keys", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "hygiene", grants: ["consume:events"] }),
    });
    const { key } = (await keyRes.json()) as { key: string };
    secrets.push(key);
    expect((await requestAs(key, "/v1/topics/events")).status).toBe(200);

    const lines = logs.lines().slice(from);
    expect(lines.length).toBeGreaterThan(4);
    for (const line of lines) {
      expect(line.includes("\n"), line).toBe(false);
      const parsed = JSON.parse(line) as unknown;
      expect(typeof parsed === "object" && parsed !== null && !Array.isArray(parsed), line).toBe(true);
      const record = parsed as Record<string, unknown>;
      expect(record.forged, line).toBeUndefined();
      expect(["debug", "info", "warn"]).toContain(record.level);
      expect(typeof record.msg).toBe("string");
    }
    expectNoSecrets(lines.join("\n"), [token, key]);
    const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    // The forged text is data: inside the path and principal fields, verbatim.
    const pathLine = records.find((r) => r.msg === "request" && r.requestId === pathProblem.requestId);
    expect(pathLine?.path).toBe(`/v1/topics/\n${forged}/events`);
    expect(records.find((r) => r.msg === "request" && r.requestId === okRes.headers.get("x-request-id"))?.principal).toBe(
      `jwt:${ISS_STATIC}#${sub}`,
    );
    expect(records.some((r) => r.requestId !== undefined && String(r.requestId).includes("evil"))).toBe(false);

    await expectAudit(pathProblem.requestId, { action: "auth.failed", path: `/v1/topics/\n${forged}/events`, status: 401 });
    await expectAudit(
      deniedProblem.requestId,
      { action: "access.denied", status: 403, actor: { id: `jwt:${ISS_STATIC}#${sub}`, kind: "jwt" } },
      [token, key],
    );
  });
});

describe("EVENTLINE_AUTH", () => {
  it("is required in the shipped configuration", async () => {
    expect(env.EVENTLINE_AUTH).toBe("required");
    expect((parse(wranglerToml) as { vars: Record<string, string> }).vars.EVENTLINE_AUTH).toBe("required");
    const res = await anonymousRequest("/v1/topics", { headers: { "cf-connecting-ip": IP } });
    const problem = await expectProblem(res, 401);
    await expectAudit(problem.requestId, { action: "auth.failed", status: 401, actor: { id: "unauthenticated" } });
  });

  it("disabled is ignored for a non-loopback host: still 401, and an error is logged", async () => {
    const from = logs.lines().length;
    const app = testApp(shipped);
    const disabled = { EVENTLINE_AUTH: "disabled" } as unknown as Partial<Env>;
    const res = await app.call("/v1/topics", { headers: { "cf-connecting-ip": IP } }, disabled);
    await expectProblem(res, 401);
    const records = logs
      .lines()
      .slice(from)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.find((r) => String(r.msg).includes("EVENTLINE_AUTH=disabled ignored"))).toMatchObject({ level: "error" });
  });

  it("disabled (never the default, loopback hosts only): anonymous callers are let through as admin, with a loud warning", async () => {
    const from = logs.lines().length;
    const app = testApp(shipped);
    const disabled = { EVENTLINE_AUTH: "disabled" } as unknown as Partial<Env>;
    const res = await app.call("http://localhost/v1/topics", {}, disabled);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    // What an anonymous caller does is still audited, as `anonymous`.
    const created = await app.call(
      "http://127.0.0.1:8787/v1/keys",
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "anon", grants: ["consume:events"] }),
      },
      disabled,
    );
    expect(created.status).toBe(201);
    const body = (await created.json()) as { id: string; key: string; createdBy: string };
    secrets.push(body.key);
    expect(body.createdBy).toBe("anonymous");
    await expectAudit(
      created.headers.get("x-request-id") as string,
      { action: "keys.create", outcome: "success", actor: { id: "anonymous", kind: "anonymous" } },
      [body.key],
    );
    const records = logs
      .lines()
      .slice(from)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const warning = records.find((r) => String(r.msg).includes("AUTHENTICATION DISABLED"));
    expect(warning).toMatchObject({ level: "warn", setting: "EVENTLINE_AUTH" });
    // The same app with the shipped setting still refuses anonymous callers.
    const refused = await app.call("/v1/topics", { headers: { "cf-connecting-ip": IP } });
    const problem = await expectProblem(refused, 401);
    await expectAudit(problem.requestId, { action: "auth.failed", status: 401 });
  });
});
