import { base64url } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import {
  b64json,
  COOLDOWN_S,
  claims,
  EVIL,
  expectRefused,
  type Harness,
  handMade,
  ISS_A,
  ISS_B,
  JWKS_URI,
  jwtFixture,
  makeKey,
  nowSeconds,
  type TestKey,
} from "./jwt-fixtures";

/*
 * createJwtVerifier, token by token: the tokens it accepts (and the principal it makes of them)
 * and every token it refuses (algorithms, key confusion, forged or foreign keys, claims, time),
 * with a reason that never echoes the token. Issuers and keys: jwt-fixtures.ts.
 */

const { load, harness, sign, hmacToken } = jwtFixture();

let rsa: TestKey;
let rsa384: TestKey;
let ec: TestKey;
let attacker: TestKey;
let rsaSpkiPem: string;

beforeAll(async () => {
  ({ rsa, rsa384, ec, attacker, rsaSpkiPem } = await load());
});

describe("createJwtVerifier: accepted tokens", () => {
  it("verifies an RS256 token from a jwksUri issuer (one fetch, of the configured URI)", async () => {
    const h = harness();
    const payload = claims(h);
    const verified = await h.verifier.verify(await sign(payload));
    expect(verified).toEqual({
      issuer: ISS_A,
      subject: "user-1",
      tenant: "acme",
      grants: ["produce:orders", "consume:acme."],
      expiresAt: payload.exp,
    });
    await h.verifier.verify(await sign(claims(h, { sub: "user-2" })));
    expect(h.fetched).toEqual([JWKS_URI]);
  });

  it("verifies an ES256 token from a static-JWKS issuer, with default claim names, without fetching", async () => {
    const h = harness();
    const payload = claims(h, { iss: ISS_B, org: undefined, grants: undefined, tenant: "globex", eventline_grants: ["admin:*"] });
    const verified = await h.verifier.verify(await sign(payload, ec, { typ: "at+jwt" }));
    expect(verified).toEqual({ issuer: ISS_B, subject: "user-1", tenant: "globex", grants: ["admin:*"], expiresAt: payload.exp });
    expect(h.fetched).toEqual([]);
  });

  it("keeps the two issuers' keys apart", async () => {
    const h = harness();
    await expect(h.verifier.verify(await sign(claims(h)))).resolves.toMatchObject({ issuer: ISS_A });
    await expect(h.verifier.verify(await sign(claims(h, { iss: ISS_B }), ec))).resolves.toMatchObject({ issuer: ISS_B });
    // A's key does not verify B's tokens (B accepts RS256, but its JWKS has no rsa-1)...
    await expectRefused(h, await sign(claims(h, { iss: ISS_B }), rsa), /^no key with kid "rsa-1" in the issuer's JWKS$/);
    // ...and B's key does not verify A's (ES256 is not among A's algorithms; with the alg allowed, no ec-1 key either).
    await expectRefused(h, await sign(claims(h), ec), /^algorithm "ES256" not accepted for issuer https:\/\/idp-a\.example\/$/);
    expect(h.fetched).toEqual([JWKS_URI]);
  });

  it.each(["JWT", "jwt", "at+jwt", "AT+JWT", "application/at+jwt", "Application/JWT"])("accepts typ %s", async (typ) => {
    const h = harness();
    await expect(h.verifier.verify(await sign(claims(h), rsa, { typ }))).resolves.toMatchObject({ subject: "user-1" });
  });

  it("reads grants from an array, a space-separated string, or nothing", async () => {
    const h = harness();
    const grantsOf = async (grants: unknown) => (await h.verifier.verify(await sign(claims(h, { grants })))).grants;
    expect(await grantsOf(["produce:orders", "!produce:acme.audit"])).toEqual(["produce:orders", "!produce:acme.audit"]);
    expect(await grantsOf("  produce:orders\tconsume:acme.*  replay:acme. ")).toEqual(["produce:orders", "consume:acme.*", "replay:acme."]);
    expect(await grantsOf("")).toEqual([]);
    expect(await grantsOf([])).toEqual([]);
    expect(await grantsOf(undefined)).toEqual([]);
  });

  it("leaves tenant unset unless the claim is a non-empty string", async () => {
    const h = harness();
    for (const org of [undefined, "", 42, ["acme"]]) {
      const verified = await h.verifier.verify(await sign(claims(h, { org })));
      expect(verified.tenant).toBeUndefined();
      expect(verified).not.toHaveProperty("tenant");
    }
  });

  it("accepts a token that expired 10 s ago (tolerance 30 s) and one whose nbf is 10 s ahead", async () => {
    const h = harness();
    const now = nowSeconds(h);
    await expect(h.verifier.verify(await sign(claims(h, { iat: now - 310, exp: now - 10 })))).resolves.toMatchObject({
      expiresAt: now - 10,
    });
    await expect(h.verifier.verify(await sign(claims(h, { nbf: now + 10 })))).resolves.toMatchObject({ subject: "user-1" });
  });

  it("accepts any one of several audiences", async () => {
    const h = harness();
    await expect(h.verifier.verify(await sign(claims(h, { aud: ["someone-else", "other"] })))).resolves.toMatchObject({
      subject: "user-1",
    });
  });

  it("tries every candidate key when the token has no kid", async () => {
    const other = await makeKey("RS256", "rsa-2");
    const h = harness();
    // Neither published key carries a kid, so both fit an RS256 token without one.
    h.published.keys = [
      { ...other.publicJwk, kid: undefined },
      { ...rsa.publicJwk, kid: undefined },
    ];
    await expect(h.verifier.verify(await sign(claims(h), rsa, { kid: undefined }))).resolves.toMatchObject({ subject: "user-1" });
    await expect(h.verifier.verify(await sign(claims(h), other, { kid: undefined }))).resolves.toMatchObject({ subject: "user-1" });
    await expectRefused(h, await sign(claims(h), attacker, { kid: undefined }), /^signature invalid$/);
  });
});

describe("createJwtVerifier: refused tokens", () => {
  type Build = (h: Harness) => Promise<string> | string;
  const cases: [string, Build, RegExp][] = [
    [
      "alg none, unsigned",
      (h) => handMade({ alg: "none", typ: "JWT" }, claims(h)),
      /^algorithm "none" not accepted for issuer https:\/\/idp-a\.example\/$/,
    ],
    [
      "alg none with a kid of the JWKS",
      (h) => handMade({ alg: "none", typ: "JWT", kid: "rsa-1" }, claims(h), "e30"),
      /^algorithm "none" not accepted/,
    ],
    ["alg None (case variant)", (h) => handMade({ alg: "None", typ: "JWT" }, claims(h)), /^algorithm "None" not accepted/],
    ["no alg", (h) => handMade({ typ: "JWT" }, claims(h), "e30"), /^alg header missing$/],
    [
      "HS256 keyed with the RSA public key's SPKI PEM",
      (h) => hmacToken(claims(h), new TextEncoder().encode(rsaSpkiPem)),
      /^algorithm "HS256" not accepted for issuer/,
    ],
    [
      "HS256 keyed with the JWK's n (text)",
      (h) => hmacToken(claims(h), new TextEncoder().encode(rsa.publicJwk.n)),
      /^algorithm "HS256" not accepted/,
    ],
    [
      "HS256 keyed with the JWK's n (bytes)",
      (h) => hmacToken(claims(h), base64url.decode(rsa.publicJwk.n as string)),
      /^algorithm "HS256" not accepted/,
    ],
    [
      "HS256 against the static issuer",
      (h) => hmacToken(claims(h, { iss: ISS_B }), new TextEncoder().encode(ec.publicJwk.x), "ec-1"),
      /^algorithm "HS256" not accepted for issuer https:\/\/idp-b/,
    ],
    [
      "RS384 when only RS256 is allowed (key in the JWKS)",
      (h) => sign(claims(h), rsa384),
      /^algorithm "RS384" not accepted for issuer https:\/\/idp-a\.example\/$/,
    ],
    ["an unknown key under a known kid", (h) => sign(claims(h), attacker, { kid: "rsa-1" }), /^signature invalid$/],
    ["an unknown key under an unknown kid", (h) => sign(claims(h), attacker), /^no key with kid "evil" in the issuer's JWKS$/],
    [
      "a payload changed after signing",
      async (h) => {
        const [header, , signature] = (await sign(claims(h))).split(".");
        return `${header}.${b64json(claims(h, { grants: ["admin:*"] }))}.${signature}`;
      },
      /^signature invalid$/,
    ],
    ["jku at evil.example, attacker key and kid", (h) => sign(claims(h), attacker, { jku: EVIL }), /^no key with kid "evil"/],
    [
      "jku at evil.example, attacker key under a known kid",
      (h) => sign(claims(h), attacker, { jku: EVIL, kid: "rsa-1" }),
      /^signature invalid$/,
    ],
    ["x5u at evil.example, attacker key and kid", (h) => sign(claims(h), attacker, { x5u: EVIL }), /^no key with kid "evil"/],
    [
      "x5u at evil.example, attacker key under a known kid",
      (h) => sign(claims(h), attacker, { x5u: EVIL, kid: "rsa-1" }),
      /^signature invalid$/,
    ],
    [
      "the attacker's key embedded as jwk",
      (h) => sign(claims(h), attacker, { jwk: attacker.publicJwk, kid: undefined }),
      /^signature invalid$/,
    ],
    [
      "an x5c chain",
      (h) => sign(claims(h), attacker, { x5c: ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"], kid: "rsa-1" }),
      /^signature invalid$/,
    ],
    [
      "an unknown issuer",
      (h) => sign(claims(h, { iss: "https://idp-z.example/" })),
      /^issuer "https:\/\/idp-z\.example\/" not configured$/,
    ],
    [
      "an issuer differing by a trailing slash",
      (h) => sign(claims(h, { iss: "https://idp-a.example" })),
      /^issuer "https:\/\/idp-a\.example" not configured$/,
    ],
    ["no iss", (h) => sign(claims(h, { iss: undefined })), /^token has no issuer \(iss\)$/],
    ["a wrong aud", (h) => sign(claims(h, { aud: "someone-else" })), /^audience not accepted$/],
    ["a wrong aud list", (h) => sign(claims(h, { aud: ["a", "b"] })), /^audience not accepted$/],
    ["no aud", (h) => sign(claims(h, { aud: undefined })), /^required claim "aud" missing$/],
    ["a wrong typ", (h) => sign(claims(h), rsa, { typ: "foo" }), /^typ "foo" not accepted$/],
    ["typ application/jose", (h) => sign(claims(h), rsa, { typ: "application/jose" }), /^typ "application\/jose" not accepted$/],
    ["no typ", (h) => sign(claims(h), rsa, { typ: undefined }), /^typ header missing$/],
    ["expired 60 s ago (tolerance 30 s)", (h) => sign(claims(h, { iat: nowSeconds(h) - 360, exp: nowSeconds(h) - 60 })), /^token expired$/],
    ["nbf 60 s in the future", (h) => sign(claims(h, { nbf: nowSeconds(h) + 60 })), /^token not yet valid \(nbf\)$/],
    ["no exp", (h) => sign(claims(h, { exp: undefined })), /^required claim "exp" missing$/],
    ["a non-numeric exp", (h) => sign(claims(h, { exp: "tomorrow" })), /^claim "exp" invalid$/],
    ["no sub", (h) => sign(claims(h, { sub: undefined })), /^required claim "sub" missing$/],
    ["an empty sub", (h) => sign(claims(h, { sub: "" })), /^subject \(sub\) must be a non-empty string$/],
    ["a numeric sub", (h) => sign(claims(h, { sub: 42 })), /^subject \(sub\) must be a non-empty string$/],
    [
      "a bad grant string",
      (h) => sign(claims(h, { grants: ["produce:orders", "produce:orders*", "steal:x"] })),
      /^invalid grants in claim "grants": grant "produce:orders\*": a prefix pattern .*; grant "steal:x": unknown action/,
    ],
    [
      "a bad grant in a space-separated string",
      (h) => sign(claims(h, { grants: "produce:orders PRODUCE:x" })),
      /^invalid grants in claim "grants": grant "PRODUCE:x"/,
    ],
    [
      "grants as a number",
      (h) => sign(claims(h, { grants: 7 })),
      /^grants claim "grants" must be an array of strings or a space-separated string$/,
    ],
    [
      "grants as an array with a non-string",
      (h) => sign(claims(h, { grants: ["produce:orders", 1] })),
      /^grants claim "grants" must be an array/,
    ],
    ["grants as an object", (h) => sign(claims(h, { grants: { produce: "orders" } })), /^grants claim "grants" must be an array/],
    [
      "an unknown critical header",
      (h) => handMade({ alg: "RS256", typ: "JWT", kid: "rsa-1", crit: ["exp-x"], "exp-x": 1 }, claims(h), "c2ln"),
      /^token uses an unsupported key or header parameter$/,
    ],
    ["garbage", () => "not a token", /^malformed token$/],
    ["the empty string", () => "", /^malformed token$/],
    ["three garbage segments", () => "a.b.c", /^malformed token$/],
    [
      "a non-JSON payload",
      () => `${b64json({ alg: "RS256", typ: "JWT", kid: "rsa-1" })}.${base64url.encode("hello")}.${base64url.encode("sig")}`,
      /^malformed token$/,
    ],
    ["a JWE-shaped token", () => `${b64json({ alg: "RSA-OAEP", enc: "A256GCM" })}.a.b.c.d`, /^malformed token$/],
    ["an oversized token", async (h) => sign(claims(h, { pad: "x".repeat(20_000) })), /^malformed token$/],
    ["a bad signature encoding", async (h) => `${(await sign(claims(h))).slice(0, -4)}!!!!`, /^malformed token$/],
  ];

  it.each(cases)("refuses %s", async (_name, build, reason) => {
    const h = harness();
    const token = await build(h);
    await expectRefused(h, token, reason);
    // Nothing is ever fetched but issuer A's configured JWKS.
    expect(h.fetched.every((url) => url === JWKS_URI)).toBe(true);
  });

  it("fetches nothing for an unknown issuer, an undecodable token, or a refused header", async () => {
    const h = harness();
    await expectRefused(h, await sign(claims(h, { iss: "https://idp-z.example/" })), /not configured/);
    await expectRefused(h, "x.y", /^malformed token$/);
    await expectRefused(h, await hmacToken(claims(h), new TextEncoder().encode(rsaSpkiPem)), /HS256/);
    await expectRefused(h, handMade({ alg: "none", typ: "JWT" }, claims(h)), /none/);
    await expectRefused(h, await sign(claims(h), rsa, { typ: "foo" }), /typ/);
    await expectRefused(h, await sign(claims(h), rsa384), /RS384/);
    expect(h.fetched).toEqual([]);
  });

  it("verifies a correctly signed token that carries jku / x5u, without ever fetching them", async () => {
    const h = harness();
    await expect(h.verifier.verify(await sign(claims(h), rsa, { jku: EVIL }))).resolves.toMatchObject({ subject: "user-1" });
    await expect(h.verifier.verify(await sign(claims(h), rsa, { x5u: EVIL }))).resolves.toMatchObject({ subject: "user-1" });
    await expect(h.verifier.verify(await sign(claims(h, { iss: ISS_B }), ec, { jku: EVIL, x5u: EVIL }))).resolves.toMatchObject({
      issuer: ISS_B,
    });
    // Even an unknown kid plus jku, after the cooldown, refetches the configured JWKS only.
    h.advance(COOLDOWN_S + 1);
    await expectRefused(h, await sign(claims(h), attacker, { jku: EVIL }), /^no key with kid "evil"/);
    expect(h.fetched).toEqual([JWKS_URI, JWKS_URI]);
    expect(h.fetched.join()).not.toContain("evil.example");
  });

  it("escapes and truncates header values in reasons", async () => {
    const h = harness();
    const err = await expectRefused(h, await sign(claims(h), rsa, { typ: `x\n${"y".repeat(200)}` }), /^typ "x\\ny+…" not accepted$/);
    expect(err.reason).not.toContain("\n");
    expect(err.reason.length).toBeLessThan(120);
  });
});
