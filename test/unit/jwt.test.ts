import {
  base64url,
  type CryptoKey,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type JWTHeaderParameters,
  type JWTPayload,
  SignJWT,
} from "jose";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { defineConfig, type EventlineConfigInput, type SecurityConfig } from "../../shared/config";
import { createJwtVerifier, type JwtVerifier, TokenError } from "../../shared/security/jwt";

/*
 * Issuer A publishes its keys at a jwksUri (served by a counting fake fetch); issuer B has a
 * static JWKS. Time comes from an injected clock, which also drives the JWKS cache and cooldown.
 */
const ISS_A = "https://idp-a.example/";
const ISS_B = "https://idp-b.example/";
const JWKS_URI = "https://idp-a.example/.well-known/jwks.json";
const EVIL = "https://evil.example/jwks";
const AUD = "eventline";
const COOLDOWN_S = 30;
const CACHE_S = 600;

interface TestKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

async function makeKey(alg: string, kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicKey, publicJwk: { ...(await exportJWK(publicKey)), kid } };
}

let rsa: TestKey; // issuer A, kid rsa-1
let rsa384: TestKey; // issuer A's JWKS also holds an RS384 key (RS384 is not among A's algorithms)
let ec: TestKey; // issuer B, kid ec-1
let attacker: TestKey; // nobody's key
let rsaSpkiPem: string; // rsa's public key as the PEM an HS256 key-confusion attack would use

beforeAll(async () => {
  rsa = await makeKey("RS256", "rsa-1");
  rsa384 = await makeKey("RS384", "rsa384-1");
  ec = await makeKey("ES256", "ec-1");
  attacker = await makeKey("RS256", "evil");
  rsaSpkiPem = await exportSPKI(rsa.publicKey);
});

const baseConfig = {
  topics: [{ name: "t", partitions: 1, retentionHours: 1 }],
  limits: { maxBodyBytes: 1_048_576, maxEventBytes: 65_536, maxBatchEvents: 500 },
  partitionLog: { maxInFlightAppends: 8, retryAfterSeconds: 1 },
  read: { defaultLimit: 100, maxLimit: 1000 },
} satisfies Partial<EventlineConfigInput>;

type OidcInput = NonNullable<NonNullable<EventlineConfigInput["security"]>["oidc"]>;

/** The OIDC config as the Worker sees it: validated (and defaulted) by defineConfig. */
function oidcConfig(issuers?: OidcInput["issuers"]): SecurityConfig["oidc"] {
  return defineConfig({
    ...baseConfig,
    security: {
      oidc: {
        issuers: issuers ?? [
          { issuer: ISS_A, audiences: [AUD, "other"], jwksUri: JWKS_URI, algorithms: ["RS256"], grantsClaim: "grants", tenantClaim: "org" },
          { issuer: ISS_B, audiences: [AUD], jwks: { keys: [ec.publicJwk as Record<string, unknown>] }, algorithms: ["ES256", "RS256"] },
        ],
        jwksCacheSeconds: CACHE_S,
        jwksCooldownSeconds: COOLDOWN_S,
      },
    },
  }).security.oidc;
}

interface Harness {
  verifier: JwtVerifier;
  /** Every URL the verifier fetched, in order. */
  fetched: string[];
  /** Issuer A's published keys (replace to rotate). */
  published: { keys: JWK[] };
  /** Status the fake JWKS endpoint answers with; `hang`: it never answers. */
  endpoint: { status: number; hang: boolean };
  clock: { ms: number };
  advance(seconds: number): void;
}

function harness(issuers?: OidcInput["issuers"]): Harness {
  const fetched: string[] = [];
  const published = { keys: [rsa.publicJwk, rsa384.publicJwk] };
  const endpoint = { status: 200, hang: false };
  const clock = { ms: Date.UTC(2030, 0, 1) };
  const fakeFetch = (async (input: RequestInfo | URL) => {
    const url = input instanceof Request ? input.url : String(input);
    fetched.push(url);
    if (endpoint.hang) return new Promise<Response>(() => {});
    // Answer asynchronously, so concurrent verifications overlap with the fetch.
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (url !== JWKS_URI) return new Response("not found", { status: 404 });
    return endpoint.status === 200 ? Response.json(structuredClone(published)) : new Response("down", { status: endpoint.status });
  }) as typeof fetch;
  const verifier = createJwtVerifier(oidcConfig(issuers), { fetch: fakeFetch, now: () => clock.ms });
  return {
    verifier,
    fetched,
    published,
    endpoint,
    clock,
    advance(seconds) {
      clock.ms += seconds * 1000;
    },
  };
}

const nowSeconds = (h: Harness) => Math.floor(h.clock.ms / 1000);

/** Claims of a valid token from issuer A at the harness's time. */
function claims(h: Harness, overrides: Record<string, unknown> = {}): JWTPayload {
  const now = nowSeconds(h);
  const all: Record<string, unknown> = {
    iss: ISS_A,
    aud: AUD,
    sub: "user-1",
    iat: now,
    exp: now + 300,
    org: "acme",
    grants: ["produce:orders", "consume:acme."],
    ...overrides,
  };
  // An override of `undefined` removes the claim.
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined));
}

async function sign(payload: JWTPayload, key: TestKey = rsa, header: Record<string, unknown> = {}): Promise<string> {
  const protectedHeader = { alg: key.alg, typ: "JWT", kid: key.kid, ...header };
  return new SignJWT(payload)
    .setProtectedHeader(Object.fromEntries(Object.entries(protectedHeader).filter(([, v]) => v !== undefined)) as JWTHeaderParameters)
    .sign(key.privateKey);
}

const b64json = (value: unknown) => base64url.encode(JSON.stringify(value));

/** A token built by hand: header.payload.signature. */
function handMade(header: Record<string, unknown>, payload: JWTPayload, signature = ""): string {
  return `${b64json(header)}.${b64json(payload)}.${signature}`;
}

/** HS256 over header.payload with an arbitrary secret (the key-confusion attack). */
async function hmacToken(payload: JWTPayload, secret: Uint8Array, kid = rsa.kid): Promise<string> {
  const signingInput = `${b64json({ alg: "HS256", typ: "JWT", kid })}.${b64json(payload)}`;
  const key = await crypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(signingInput)));
  return `${signingInput}.${base64url.encode(mac)}`;
}

/** Asserts a refusal: a TokenError whose reason matches and never contains the token. */
async function expectRefused(h: Harness, token: string, reason: RegExp): Promise<TokenError> {
  const err = await h.verifier.verify(token).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `token should be refused (${reason})`).toBeInstanceOf(TokenError);
  const tokenError = err as TokenError;
  expect(tokenError.reason).toMatch(reason);
  expect(tokenError.message).toBe(tokenError.reason);
  if (token !== "") {
    expect(tokenError.reason).not.toContain(token);
    // Nor any of its segments (a signature or payload echoed back would leak just as well).
    for (const part of token.split(".")) if (part.length > 16) expect(tokenError.reason).not.toContain(part);
  }
  return tokenError;
}

const unknownKid = () => `kid-${crypto.randomUUID()}`;

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

describe("createJwtVerifier: JWKS fetching", () => {
  const flood = (h: Harness, count: number) =>
    Promise.all(
      Array.from({ length: count }, async () => {
        const kid = unknownKid();
        await expectRefused(h, await sign(claims(h), attacker, { kid }), new RegExp(`^no key with kid "${kid}" in the issuer's JWKS$`));
      }),
    );

  it("a flood of unknown kids fetches once on first use, refetches once per cooldown", async () => {
    const h = harness();
    // Cold verifier, 50 concurrent tokens with random unknown kids: the first starts the initial
    // fetch, the rest wait for it; the unknown kids then find the cooldown running → no refetch.
    await flood(h, 50);
    expect(h.fetched).toHaveLength(1);
    // More of them, later in the same cooldown window, sequentially: still nothing fetched.
    h.advance(COOLDOWN_S - 1);
    for (let i = 0; i < 50; i++) await flood(h, 1);
    expect(h.fetched).toHaveLength(1);
    // Cooldown over: 50 concurrent unknown kids cause exactly one refetch...
    h.advance(2);
    await flood(h, 50);
    expect(h.fetched).toHaveLength(2);
    // ...and 50 more in that new window none.
    h.advance(COOLDOWN_S - 1);
    await flood(h, 50);
    expect(h.fetched).toHaveLength(2);
    // Next window: exactly one more.
    h.advance(1);
    await flood(h, 50);
    expect(h.fetched).toHaveLength(3);
    // Valid tokens kept working throughout, from the cache.
    await expect(h.verifier.verify(await sign(claims(h)))).resolves.toMatchObject({ subject: "user-1" });
    expect(h.fetched).toEqual([JWKS_URI, JWKS_URI, JWKS_URI]);
  });

  it("concurrent valid tokens on a cold verifier share one fetch", async () => {
    const h = harness();
    const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => sign(claims(h, { sub: `user-${i}` }))));
    const verified = await Promise.all(tokens.map((t) => h.verifier.verify(t)));
    expect(verified.map((v) => v.subject)).toEqual(tokens.map((_, i) => `user-${i}`));
    expect(h.fetched).toHaveLength(1);
  });

  it("picks up a rotated key on its first unknown kid once the cooldown allows", async () => {
    const h = harness();
    await h.verifier.verify(await sign(claims(h)));
    const next = await makeKey("RS256", "rsa-next");
    h.published.keys = [rsa.publicJwk, next.publicJwk];
    // Within the cooldown of the initial fetch the new kid is refused without a refetch...
    h.advance(5);
    await expectRefused(h, await sign(claims(h), next), /^no key with kid "rsa-next"/);
    expect(h.fetched).toHaveLength(1);
    // ...after it, the first token with the new kid refetches and verifies.
    h.advance(COOLDOWN_S);
    await expect(h.verifier.verify(await sign(claims(h), next))).resolves.toMatchObject({ subject: "user-1" });
    await expect(h.verifier.verify(await sign(claims(h), next))).resolves.toMatchObject({ subject: "user-1" });
    expect(h.fetched).toHaveLength(2);
  });

  it("refreshes the keys once they are jwksCacheSeconds old, and drops removed keys", async () => {
    const h = harness();
    await h.verifier.verify(await sign(claims(h)));
    h.advance(CACHE_S - 1);
    await h.verifier.verify(await sign(claims(h)));
    expect(h.fetched).toHaveLength(1);
    const next = await makeKey("RS256", "rsa-next");
    h.published.keys = [next.publicJwk];
    h.advance(1);
    await expect(h.verifier.verify(await sign(claims(h), next))).resolves.toMatchObject({ subject: "user-1" });
    expect(h.fetched).toHaveLength(2);
    // rsa-1 is gone from the refreshed set; the cooldown (started by the refresh) forbids another fetch.
    await expectRefused(h, await sign(claims(h)), /^no key with kid "rsa-1"/);
    expect(h.fetched).toHaveLength(2);
  });

  it("a failing JWKS endpoint refuses tokens, is retried once per cooldown, and recovers", async () => {
    const h = harness();
    h.endpoint.status = 503;
    await expectRefused(h, await sign(claims(h)), /^could not fetch the JWKS of issuer https:\/\/idp-a\.example\/ \(HTTP 503\)$/);
    await expectRefused(h, await sign(claims(h)), /^could not fetch the JWKS/);
    expect(h.fetched).toHaveLength(1);
    h.endpoint.status = 200;
    h.advance(COOLDOWN_S);
    await expect(h.verifier.verify(await sign(claims(h)))).resolves.toMatchObject({ subject: "user-1" });
    expect(h.fetched).toHaveLength(2);
  });

  it("does not let a fetch that never answers hold up other requests", async () => {
    // On Workers the fetch belongs to the request that started it; if that request is cancelled,
    // the fetch's promise never settles. Other requests wait for it only until its timeout (5 s).
    const h = harness();
    h.endpoint.hang = true;
    void h.verifier.verify(await sign(claims(h))).catch(() => {});
    await vi.waitFor(() => expect(h.fetched).toHaveLength(1));
    h.advance(4.99);
    await expectRefused(h, await sign(claims(h)), /^could not fetch the JWKS of issuer https:\/\/idp-a\.example\/ \(no answer yet\)$/);
    // Once the cooldown has passed, a new fetch replaces the dead one.
    h.endpoint.hang = false;
    h.advance(COOLDOWN_S);
    await expect(h.verifier.verify(await sign(claims(h)))).resolves.toMatchObject({ subject: "user-1" });
    expect(h.fetched).toHaveLength(2);
  });

  it("keeps the previous keys when a refresh fails", async () => {
    const h = harness();
    await h.verifier.verify(await sign(claims(h)));
    h.endpoint.status = 500;
    h.advance(CACHE_S);
    await expect(h.verifier.verify(await sign(claims(h)))).resolves.toMatchObject({ subject: "user-1" });
    await expect(h.verifier.verify(await sign(claims(h)))).resolves.toMatchObject({ subject: "user-1" });
    expect(h.fetched).toHaveLength(2);
  });

  it("refuses a JWKS response that is not a key set", async () => {
    const h = harness();
    (h.published as { keys: unknown }).keys = "nope";
    await expectRefused(h, await sign(claims(h)), /^could not fetch the JWKS of issuer https:\/\/idp-a\.example\/ \(not a JWK set\)$/);
  });

  it("refuses a configuration naming one issuer twice: the config check first, the verifier too", () => {
    const issuer = { issuer: ISS_B, audiences: [AUD], jwks: { keys: [ec.publicJwk as Record<string, unknown>] } };
    expect(() => oidcConfig([issuer, issuer])).toThrow(/an issuer is listed twice/);
    const valid = oidcConfig([issuer]);
    expect(() => createJwtVerifier({ ...valid, issuers: [valid.issuers[0], valid.issuers[0]] as typeof valid.issuers })).toThrow(
      /configured twice/,
    );
  });
});
