import type { JWK } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { expectAccepted, expectProblem } from "../helpers";
import {
  b64json,
  claims,
  EVIL,
  INVALID_TOKEN_CHALLENGE,
  IP,
  ISS_REMOTE,
  ISS_STATIC,
  JWKS_URI,
  makeKey,
  nowSeconds,
  type OidcFixture,
  oidcFixture,
  PRODUCE_PATH,
  produceInit,
  type TestKey,
  tokenMinter,
  useCredentialHygiene,
} from "./auth-fixtures";
import {
  auditSearch,
  type countingFetch,
  dataHeads,
  expectAuthFailedAudit,
  expectDeniedAudit,
  expectNoSecrets,
  sleep,
  type TestApp,
  testApp,
} from "./helpers";

/*
 * JWT bearer tokens from two OIDC issuers (a static JWKS and a jwksUri served by a counting fake
 * fetch): accepted tokens and their principal, every refused token (alg none, key confusion,
 * forged signatures, foreign key URLs, wrong iss/aud/typ, expiry, malformed grants) with its
 * 401, challenge, audit record and no state change, and the bounded JWKS refetch under an
 * unknown-kid flood. No token may appear in a log line or audit record (useCredentialHygiene).
 */

const { secrets, logs } = useCredentialHygiene();
const { sign, hmacToken } = tokenMinter(secrets);

let oidc: OidcFixture;
let rsa: TestKey;
let ec: TestKey;
let remote: TestKey;
let attacker: TestKey;
let rsaPem: string;
let published: { keys: JWK[] };
let jwks: ReturnType<typeof countingFetch>;
let jwtApp: TestApp;

beforeAll(async () => {
  oidc = await oidcFixture();
  ({ rsa, ec, remote, attacker, rsaPem, published, jwks, jwtApp } = oidc);
});

const oidcConfig = (cooldownSeconds: number) => oidc.oidcConfig(cooldownSeconds);
const jwksEndpoint = () => oidc.jwksEndpoint();

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
  await expectAuthFailedAudit(
    problem.requestId,
    {
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
    await expectDeniedAudit(
      problem.requestId,
      {
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
    await expectDeniedAudit(
      problem.requestId,
      {
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
