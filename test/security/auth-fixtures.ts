import { exportSPKI, type JWK, type JWTPayload } from "jose";
import { afterAll, afterEach, beforeAll } from "vitest";
import { event, STRUCTURED } from "../helpers";
import { b64json, hmacSign, makeKey as makeJwtKey, signToken, type TestKey } from "../unit/jwt-fixtures";
import {
  auditSearch,
  captureLogs,
  configWithSecurity,
  countingFetch,
  expectNoSecrets,
  type LogCapture,
  type TestApp,
  type TestRequestInit,
  testApp,
} from "./helpers";

/*
 * Shared fixtures of the authentication tests (test/security/authentication-*.test.ts): the
 * credential-hygiene hooks every one of those files installs, token minting, and the OIDC test
 * app (one static-JWKS issuer, one jwksUri issuer served by a counting fake fetch). Each helper
 * that holds state is a factory, so every test file gets its own (storage is isolated per file).
 */

export const IP = "192.0.2.44";
export const ISS_STATIC = "https://static.idp.example/";
export const ISS_REMOTE = "https://remote.idp.example/";
export const JWKS_URI = "https://remote.idp.example/.well-known/jwks.json";
export const EVIL = "https://evil.example";
export const AUD = "eventline";
export const PRODUCE_PATH = "/v1/topics/events/events";
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** RFC 6750 §3: a challenge's error_description is printable ASCII without `"` and `\`. */
export const INVALID_TOKEN_CHALLENGE =
  /^Bearer realm="eventline", error="invalid_token", error_description="[\x20\x21\x23-\x5b\x5d-\x7e]*"$/;
export const INVALID_REQUEST_CHALLENGE = 'Bearer realm="eventline", error="invalid_request", error_description="expected Bearer <token>"';

/**
 * Installs, in the calling test file, the checks that no credential a test used appears in a
 * log line (after each test) or in an audit record (after the file). Returns the list the tests
 * add their credentials to, and the file's log capture (live from its beforeAll on).
 */
export function useCredentialHygiene(): { secrets: string[]; logs: LogCapture } {
  const secrets: string[] = [];
  let capture: LogCapture | undefined;
  const current = (): LogCapture => {
    if (capture === undefined) throw new Error("logs are captured from the file's beforeAll on");
    return capture;
  };
  const logs: LogCapture = {
    lines: () => current().lines(),
    records: () => current().records(),
    restore: () => current().restore(),
  };

  beforeAll(() => {
    capture = captureLogs();
  });

  afterEach(() => {
    expectNoSecrets(logs.lines().join("\n"), secrets);
  });

  afterAll(async () => {
    logs.restore();
    expectNoSecrets(JSON.stringify(await auditSearch()), secrets);
  });

  return { secrets, logs };
}

export { b64json, type TestKey };

/** A key whose public JWK also names its alg and use, as an IdP's JWKS does. */
export const makeKey = (alg: string, kid: string): Promise<TestKey> => makeJwtKey(alg, kid, { alg, use: "sig" });

export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Claims of a valid token of the static issuer, now. An override of `undefined` removes the claim. */
export function claims(overrides: Record<string, unknown> = {}): JWTPayload {
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

/** Token signers that add every token they make to `secrets` (the file's hygiene list). */
export function tokenMinter(secrets: string[]) {
  async function sign(payload: JWTPayload, key: TestKey, header: Record<string, unknown> = {}): Promise<string> {
    const token = await signToken(payload, key, header);
    secrets.push(token);
    return token;
  }

  /** An HS256 token keyed with `secret` (the key-confusion attack uses the RSA public key's PEM). */
  async function hmacToken(payload: JWTPayload, secret: string, kid: string): Promise<string> {
    const token = await hmacSign(payload, new TextEncoder().encode(secret), kid);
    secrets.push(token);
    return token;
  }

  return { sign, hmacToken };
}

/** A request init producing one event with `token` (and the test's client address). */
export function produceInit(token: string, extra: TestRequestInit = {}): TestRequestInit {
  return {
    method: "POST",
    ...extra,
    headers: { authorization: `Bearer ${token}`, "content-type": STRUCTURED, "cf-connecting-ip": IP, ...(extra.headers as object) },
    body: JSON.stringify(event()),
  };
}

/** The OIDC test app and its keys: one static-JWKS issuer (RS256 + ES256 keys) and one jwksUri issuer. */
export interface OidcFixture {
  rsa: TestKey;
  ec: TestKey;
  remote: TestKey;
  attacker: TestKey;
  rsaPem: string;
  /** The jwksUri issuer's published JWKS (a test may rotate keys into it, and must put it back). */
  published: { keys: JWK[] };
  jwks: ReturnType<typeof countingFetch>;
  jwtApp: TestApp;
  oidcConfig(cooldownSeconds: number): ReturnType<typeof configWithSecurity>;
  /** A fresh counting fetch serving `published` at JWKS_URI. */
  jwksEndpoint(): ReturnType<typeof countingFetch>;
}

/** Builds the OIDC fixture (call it from a beforeAll: it generates keys). */
export async function oidcFixture(): Promise<OidcFixture> {
  const rsa = await makeKey("RS256", "rsa-1");
  const ec = await makeKey("ES256", "ec-1");
  const remote = await makeKey("RS256", "remote-1");
  const attacker = await makeKey("RS256", "evil");
  const rsaPem = await exportSPKI(rsa.publicKey);
  const published = { keys: [remote.publicJwk] };

  const oidcConfig = (cooldownSeconds: number) =>
    configWithSecurity({
      oidc: {
        issuers: [
          { issuer: ISS_STATIC, audiences: [AUD], jwks: { keys: [rsa.publicJwk, ec.publicJwk] as Record<string, unknown>[] } },
          { issuer: ISS_REMOTE, audiences: [AUD], jwksUri: JWKS_URI },
        ],
        jwksCacheSeconds: 600,
        jwksCooldownSeconds: cooldownSeconds,
      },
    });
  const jwksEndpoint = () => countingFetch({ [JWKS_URI]: () => Response.json(structuredClone(published)) });

  const jwks = jwksEndpoint();
  const jwtApp = testApp(oidcConfig(30), { fetch: jwks.fetch });
  return { rsa, ec, remote, attacker, rsaPem, published, jwks, jwtApp, oidcConfig, jwksEndpoint };
}
