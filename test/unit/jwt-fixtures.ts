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
import { expect } from "vitest";
import { defineConfig, type EventlineConfigInput, type SecurityConfig } from "../../shared/config";
import { createJwtVerifier, type JwtVerifier, TokenError } from "../../shared/security/jwt";

/*
 * Shared fixtures of the JWT verifier's unit tests (test/unit/jwt-*.test.ts); the key, signing
 * and encoding helpers also serve the authentication tests (test/security/auth-fixtures.ts). Issuer A publishes
 * its keys at a jwksUri (served by a counting fake fetch); issuer B has a static JWKS. Time comes
 * from an injected clock, which also drives the JWKS cache and cooldown. The keys are made per
 * test file: jwtFixture() holds them, and its load() (from the file's beforeAll) generates them.
 */
export const ISS_A = "https://idp-a.example/";
export const ISS_B = "https://idp-b.example/";
export const JWKS_URI = "https://idp-a.example/.well-known/jwks.json";
export const EVIL = "https://evil.example/jwks";
export const AUD = "eventline";
export const COOLDOWN_S = 30;
export const CACHE_S = 600;

export interface TestKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

/** A fresh key pair; its public JWK carries `kid` and any `jwkExtra` members (e.g. alg, use). */
export async function makeKey(alg: string, kid: string, jwkExtra: JWK = {}): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicKey, publicJwk: { ...(await exportJWK(publicKey)), kid, ...jwkExtra } };
}

/** A JWT signed with `key`; a header member set to `undefined` is left out. */
export async function signToken(payload: JWTPayload, key: TestKey, header: Record<string, unknown> = {}): Promise<string> {
  const protectedHeader = { alg: key.alg, typ: "JWT", kid: key.kid, ...header };
  return new SignJWT(payload)
    .setProtectedHeader(Object.fromEntries(Object.entries(protectedHeader).filter(([, v]) => v !== undefined)) as JWTHeaderParameters)
    .sign(key.privateKey);
}

/** HS256 over header.payload with an arbitrary secret (the key-confusion attack). */
export async function hmacSign(payload: JWTPayload, secret: Uint8Array, kid: string): Promise<string> {
  const signingInput = `${b64json({ alg: "HS256", typ: "JWT", kid })}.${b64json(payload)}`;
  const key = await crypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(signingInput)));
  return `${signingInput}.${base64url.encode(mac)}`;
}

/** The test keys of one file. */
export interface JwtKeys {
  /** Issuer A, kid rsa-1. */
  rsa: TestKey;
  /** Issuer A's JWKS also holds an RS384 key (RS384 is not among A's algorithms). */
  rsa384: TestKey;
  /** Issuer B, kid ec-1. */
  ec: TestKey;
  /** Nobody's key. */
  attacker: TestKey;
  /** rsa's public key as the PEM an HS256 key-confusion attack would use. */
  rsaSpkiPem: string;
}

export const baseConfig = {
  topics: [{ name: "t", partitions: 1, retentionHours: 1 }],
  limits: { maxBodyBytes: 1_048_576, maxEventBytes: 65_536, maxBatchEvents: 500 },
  partitionLog: { maxInFlightAppends: 8, retryAfterSeconds: 1 },
  read: { defaultLimit: 100, maxLimit: 1000 },
} satisfies Partial<EventlineConfigInput>;

export type OidcInput = NonNullable<NonNullable<EventlineConfigInput["security"]>["oidc"]>;

export interface Harness {
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

export const nowSeconds = (h: Harness) => Math.floor(h.clock.ms / 1000);

/** Claims of a valid token from issuer A at the harness's time. */
export function claims(h: Harness, overrides: Record<string, unknown> = {}): JWTPayload {
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

export const b64json = (value: unknown) => base64url.encode(JSON.stringify(value));

/** A token built by hand: header.payload.signature. */
export function handMade(header: Record<string, unknown>, payload: JWTPayload, signature = ""): string {
  return `${b64json(header)}.${b64json(payload)}.${signature}`;
}

/** Asserts a refusal: a TokenError whose reason matches and never contains the token. */
export async function expectRefused(h: Harness, token: string, reason: RegExp): Promise<TokenError> {
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

export const unknownKid = () => `kid-${crypto.randomUUID()}`;

/**
 * The key-dependent helpers of one test file, over keys it generates in load() (call that from
 * the file's beforeAll before any helper runs).
 */
export function jwtFixture() {
  let loaded: JwtKeys | undefined;
  const keys = (): JwtKeys => {
    if (loaded === undefined) throw new Error("jwtFixture().load() runs in beforeAll, before any test");
    return loaded;
  };

  async function load(): Promise<JwtKeys> {
    const rsa = await makeKey("RS256", "rsa-1");
    const rsa384 = await makeKey("RS384", "rsa384-1");
    const ec = await makeKey("ES256", "ec-1");
    const attacker = await makeKey("RS256", "evil");
    const rsaSpkiPem = await exportSPKI(rsa.publicKey);
    loaded = { rsa, rsa384, ec, attacker, rsaSpkiPem };
    return loaded;
  }

  /** The OIDC config as the Worker sees it: validated (and defaulted) by defineConfig. */
  function oidcConfig(issuers?: OidcInput["issuers"]): SecurityConfig["oidc"] {
    return defineConfig({
      ...baseConfig,
      security: {
        oidc: {
          issuers: issuers ?? [
            {
              issuer: ISS_A,
              audiences: [AUD, "other"],
              jwksUri: JWKS_URI,
              algorithms: ["RS256"],
              grantsClaim: "grants",
              tenantClaim: "org",
            },
            {
              issuer: ISS_B,
              audiences: [AUD],
              jwks: { keys: [keys().ec.publicJwk as Record<string, unknown>] },
              algorithms: ["ES256", "RS256"],
            },
          ],
          jwksCacheSeconds: CACHE_S,
          jwksCooldownSeconds: COOLDOWN_S,
        },
      },
    }).security.oidc;
  }

  function harness(issuers?: OidcInput["issuers"]): Harness {
    const fetched: string[] = [];
    const published = { keys: [keys().rsa.publicJwk, keys().rsa384.publicJwk] };
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

  const sign = (payload: JWTPayload, key: TestKey = keys().rsa, header: Record<string, unknown> = {}) => signToken(payload, key, header);

  /** HS256 over header.payload with an arbitrary secret (the key-confusion attack). */
  const hmacToken = (payload: JWTPayload, secret: Uint8Array, kid = keys().rsa.kid) => hmacSign(payload, secret, kid);

  return { load, oidcConfig, harness, sign, hmacToken };
}
