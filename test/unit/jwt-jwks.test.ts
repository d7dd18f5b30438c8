import { beforeAll, describe, expect, it, vi } from "vitest";
import { createJwtVerifier } from "../../shared/security/jwt";
import {
  AUD,
  CACHE_S,
  COOLDOWN_S,
  claims,
  expectRefused,
  type Harness,
  ISS_B,
  JWKS_URI,
  jwtFixture,
  makeKey,
  type TestKey,
  unknownKid,
} from "./jwt-fixtures";

/*
 * createJwtVerifier's JWKS fetching: one fetch of the configured URI, the cache and the refetch
 * cooldown driven by the injected clock, key rotation, and an endpoint that fails or hangs.
 * Issuers and keys: jwt-fixtures.ts.
 */

const { load, oidcConfig, harness, sign } = jwtFixture();

let rsa: TestKey;
let ec: TestKey;
let attacker: TestKey;

beforeAll(async () => {
  ({ rsa, ec, attacker } = await load());
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
