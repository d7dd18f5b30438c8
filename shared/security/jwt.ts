import {
  type CryptoKey,
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  type JWTPayload,
  type JWTVerifyOptions,
  jwtVerify,
} from "jose";
import type { IssuerConfig, SecurityConfig } from "../config";
import { parseGrants } from "./grants";

/**
 * OIDC / JWT bearer token verification.
 *
 * The token's unverified `iss` picks the configured issuer (an unknown issuer is refused before
 * anything is fetched); the header's `alg` and `typ` are checked against that issuer before any
 * key is looked up; the key comes only from the issuer's configured JWKS (a static set, or one
 * fetched from `jwksUri`) — `jku`, `x5u`, `jwk` and `x5c` headers are never consulted.
 */

export interface VerifiedToken {
  /** `iss` */
  issuer: string;
  /** `sub` (required) */
  subject: string;
  /** The issuer's tenant claim, when it is a non-empty string. */
  tenant?: string;
  /** The issuer's grants claim (array, or one space-separated string); absent → []. Every entry parses. */
  grants: string[];
  /** `exp`, epoch seconds. */
  expiresAt: number;
}

/**
 * Why a token was refused. `reason` is safe to log and to show the client: it never contains the
 * token, nor claim values other than iss/kid/alg/typ (quoted and truncated) — except that a token
 * refused for malformed grants names those grant strings, which the issuer signed.
 */
export class TokenError extends Error {
  override readonly name = "TokenError";
  readonly reason: string;

  constructor(reason: string) {
    super(reason);
    this.reason = reason;
  }
}

export interface JwtVerifierOptions {
  /** Fetches the JWKS of `jwksUri` issuers (default: the global fetch). */
  fetch?: typeof fetch;
  /** Epoch milliseconds, for tests: the clock for token times and for the JWKS cache and cooldown. */
  now?: () => number;
}

export interface JwtVerifier {
  /** Resolves with the token's principal, or rejects with a TokenError. */
  verify(token: string): Promise<VerifiedToken>;
}

type OidcConfig = SecurityConfig["oidc"];
type KeyLookup = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>;

/** Longer tokens are refused before they are parsed. */
const MAX_TOKEN_LENGTH = 16_384;
/** A JWKS fetch that takes longer fails (and a request waiting on another's fetch stops waiting). */
const JWKS_FETCH_TIMEOUT_MS = 5_000;
/** Longer JWKS responses (in characters) are refused. */
const MAX_JWKS_LENGTH = 256 * 1024;

/**
 * Builds a verifier for the configured issuers. Keep it for the isolate's life: it holds one key
 * set per issuer, and a `jwksUri` issuer's set caches its keys and rate-limits refetches.
 */
export function createJwtVerifier(oidc: OidcConfig, options: JwtVerifierOptions = {}): JwtVerifier {
  const now = options.now ?? Date.now;
  // Never call a stored `fetch` as a method: workerd refuses it with "Illegal invocation".
  const doFetch: typeof fetch = options.fetch ?? ((input, init) => fetch(input, init));
  const issuers = new Map<string, { config: IssuerConfig; keys: KeyLookup }>();
  for (const config of oidc.issuers) {
    if (issuers.has(config.issuer)) throw new Error(`OIDC issuer ${config.issuer} is configured twice`);
    issuers.set(config.issuer, { config, keys: keyLookup(config, oidc, doFetch, now) });
  }

  return {
    async verify(token) {
      if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) throw new TokenError("malformed token");
      let header: JWSHeaderParameters;
      let unverified: JWTPayload;
      try {
        header = decodeProtectedHeader(token) as JWSHeaderParameters;
        unverified = decodeJwt(token);
      } catch {
        throw new TokenError("malformed token");
      }
      if (typeof unverified.iss !== "string") throw new TokenError("token has no issuer (iss)");
      const entry = issuers.get(unverified.iss);
      if (!entry) throw new TokenError(`issuer ${quote(unverified.iss)} not configured`);
      const { config } = entry;
      checkHeader(header, config);

      const verifyOptions: JWTVerifyOptions = {
        issuer: config.issuer,
        audience: config.audiences,
        algorithms: config.algorithms,
        clockTolerance: config.clockToleranceSeconds,
        requiredClaims: ["exp", "iss", "aud", "sub"],
        currentDate: new Date(now()),
      };
      let payload: JWTPayload;
      try {
        ({ payload } = await verifyWithKeys(token, entry.keys, verifyOptions));
      } catch (err) {
        throw toTokenError(err, header);
      }
      return principalOf(payload, config);
    },
  };
}

/** `alg` and `typ` must be ones the issuer accepts; checked before any key lookup. */
function checkHeader(header: JWSHeaderParameters, config: IssuerConfig): void {
  const { alg, typ } = header;
  if (typeof alg !== "string") throw new TokenError("alg header missing");
  // `none` and HS* can never pass: the config's algorithm enum has neither.
  if (!(config.algorithms as readonly string[]).includes(alg)) {
    throw new TokenError(`algorithm ${quote(alg)} not accepted for issuer ${config.issuer}`);
  }
  if (typeof typ !== "string") throw new TokenError("typ header missing");
  if (!config.types.some((accepted) => normalizeTyp(accepted) === normalizeTyp(typ))) {
    throw new TokenError(`typ ${quote(typ)} not accepted`);
  }
}

/** Media types compare case-insensitively, and `typ` may omit the `application/` prefix (RFC 7515 §4.1.9). */
function normalizeTyp(typ: string): string {
  return typ.toLowerCase().replace(/^application\//, "");
}

/**
 * `jwtVerify`, plus the case jose leaves to its caller: a token without `kid` when several keys
 * of the JWKS fit its `alg` is tried against each of them.
 */
async function verifyWithKeys(token: string, keys: KeyLookup, options: JWTVerifyOptions) {
  try {
    return await jwtVerify(token, keys, options);
  } catch (err) {
    if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw err;
    for await (const key of err) {
      try {
        return await jwtVerify(token, key, options);
      } catch (inner) {
        if (!(inner instanceof errors.JWSSignatureVerificationFailed)) throw inner;
      }
    }
    throw new errors.JWSSignatureVerificationFailed();
  }
}

/** The verified claims → VerifiedToken; `sub` and the grants claim are checked here (jose does not type-check `sub`). */
function principalOf(payload: JWTPayload, config: IssuerConfig): VerifiedToken {
  const { sub, exp } = payload;
  if (typeof sub !== "string" || sub === "") throw new TokenError("subject (sub) must be a non-empty string");

  const claim = payload[config.grantsClaim];
  let grants: string[];
  if (claim === undefined) grants = [];
  else if (typeof claim === "string") grants = claim.split(/\s+/).filter((g) => g !== "");
  else if (Array.isArray(claim) && claim.every((g) => typeof g === "string")) grants = claim;
  else throw new TokenError(`grants claim ${quote(config.grantsClaim)} must be an array of strings or a space-separated string`);
  // A misconfigured IdP should fail loudly rather than hand out partial grants.
  const { errors: grantErrors } = parseGrants(grants);
  if (grantErrors.length > 0) {
    throw new TokenError(`invalid grants in claim ${quote(config.grantsClaim)}: ${grantErrors.map(sanitize).join("; ")}`);
  }

  const tenant = payload[config.tenantClaim];
  return {
    issuer: config.issuer,
    subject: sub,
    ...(typeof tenant === "string" && tenant !== "" ? { tenant } : {}),
    grants,
    // Present and numeric: jose enforced both (requiredClaims, NumericDate check).
    expiresAt: exp as number,
  };
}

/** Maps what jose (or the key lookup) threw to a TokenError with a short, safe reason. */
function toTokenError(err: unknown, header: JWSHeaderParameters): TokenError {
  if (err instanceof TokenError) return err;
  if (err instanceof errors.JWTExpired) return new TokenError("token expired");
  if (err instanceof errors.JWTClaimValidationFailed) {
    const claim = err.claim;
    if (err.reason === "missing") return new TokenError(`required claim ${quote(claim)} missing`);
    switch (claim) {
      case "nbf":
        return new TokenError(err.reason === "invalid" ? "nbf claim must be a number" : "token not yet valid (nbf)");
      case "aud":
        return new TokenError("audience not accepted");
      case "iss":
        return new TokenError("issuer not accepted");
      default:
        // e.g. a non-numeric exp or iat
        return new TokenError(`claim ${quote(claim)} invalid`);
    }
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return new TokenError("signature invalid");
  if (err instanceof errors.JWKSNoMatchingKey) {
    return new TokenError(
      typeof header.kid === "string"
        ? `no key with kid ${quote(header.kid)} in the issuer's JWKS`
        : `no key for algorithm ${quote(header.alg)} in the issuer's JWKS`,
    );
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return new TokenError(`algorithm ${quote(header.alg)} not accepted`);
  if (err instanceof errors.JOSENotSupported) return new TokenError("token uses an unsupported key or header parameter");
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return new TokenError("malformed token");
  if (err instanceof errors.JWKSInvalid || err instanceof errors.JWKInvalid)
    return new TokenError("the issuer's JWKS holds an unusable key");
  // Anything else (e.g. WebCrypto refusing a key): name the error class only.
  return new TokenError(`token could not be verified (${err instanceof Error ? err.name : "unknown error"})`);
}

/** The key lookup of one issuer: its static JWKS, or its `jwksUri` behind a cache with a refetch cooldown. */
function keyLookup(config: IssuerConfig, oidc: OidcConfig, doFetch: typeof fetch, now: () => number): KeyLookup {
  if (config.jwks) {
    try {
      return createLocalJWKSet(config.jwks as JSONWebKeySet);
    } catch (err) {
      throw new Error(`OIDC issuer ${config.issuer}: invalid jwks (${err instanceof Error ? err.message : String(err)})`);
    }
  }
  if (!config.jwksUri) throw new Error(`OIDC issuer ${config.issuer}: give jwksUri or jwks`);
  const remote = new RemoteJwks(config.issuer, config.jwksUri, doFetch, now, {
    maxAgeMs: oidc.jwksCacheSeconds * 1000,
    cooldownMs: oidc.jwksCooldownSeconds * 1000,
  });
  return (header, token) => remote.getKey(header, token);
}

type LocalKeySet = ReturnType<typeof createLocalJWKSet>;

/**
 * A `jwksUri` key set. Not jose's createRemoteJWKSet: on Workers jose deliberately does not share
 * an in-flight fetch between requests, so a burst of tokens (at cold start, or with unknown kids
 * once the cooldown has passed) would fetch once per token. Here:
 *
 * - A fetch may start only if none is in flight and the cooldown has passed since the previous
 *   fetch *started* (the first fetch is always allowed). The start time is recorded before the
 *   fetch is issued, so concurrent requests cannot slip through together.
 * - A fetch is wanted when there are no keys yet, when the keys are older than jwksCacheSeconds,
 *   or when a token's kid is unknown. Inside the cooldown, the current keys (even if expired)
 *   are used and an unknown kid is refused without fetching: at most one refetch per cooldown,
 *   however many unknown kids arrive.
 * - A request that wants a fetch while one is in flight waits for it (at most the fetch timeout,
 *   with its own timer: the fetch belongs to another request, which may be cancelled, and a
 *   cross-request promise then never settles).
 * - A failed fetch keeps the previous keys; with none, tokens are refused until a fetch succeeds.
 */
class RemoteJwks {
  #keys: LocalKeySet | undefined;
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #lastStart = Number.NEGATIVE_INFINITY;
  /** Why the last fetch produced no keys (shown when there are none). */
  #lastError = "not fetched";
  #inflight: { done: Promise<void>; startedAt: number } | undefined;

  constructor(
    private readonly issuer: string,
    private readonly url: string,
    private readonly doFetch: typeof fetch,
    private readonly now: () => number,
    private readonly limits: { maxAgeMs: number; cooldownMs: number },
  ) {}

  async getKey(header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> {
    if (!this.#keys || this.now() >= this.#fetchedAt + this.limits.maxAgeMs) await this.#refresh();
    const keys = this.#keys;
    if (!keys) throw new TokenError(`could not fetch the JWKS of issuer ${this.issuer} (${this.#lastError})`);
    try {
      return await keys(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      // Unknown kid (or alg): the issuer may have rotated its keys. Refetch if the cooldown allows.
      await this.#refresh();
      if (this.#keys === keys || !this.#keys) throw err;
      return this.#keys(header, token);
    }
  }

  /** Starts a fetch if allowed, or joins the one in flight; never rejects. */
  async #refresh(): Promise<void> {
    const now = this.now();
    const inflight = this.#inflight;
    if (inflight && now < inflight.startedAt + JWKS_FETCH_TIMEOUT_MS) {
      await withDeadline(inflight.done, inflight.startedAt + JWKS_FETCH_TIMEOUT_MS - now);
      return;
    }
    if (now < this.#lastStart + this.limits.cooldownMs) return;
    this.#lastStart = now;
    this.#lastError = "no answer yet";
    const done = this.#fetch().finally(() => {
      if (this.#inflight?.done === done) this.#inflight = undefined;
    });
    this.#inflight = { done, startedAt: now };
    await done;
  }

  async #fetch(): Promise<void> {
    try {
      const response = await this.doFetch(this.url, {
        method: "GET",
        redirect: "manual",
        headers: { accept: "application/jwk-set+json, application/json" },
        signal: AbortSignal.timeout(JWKS_FETCH_TIMEOUT_MS),
      });
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new Error(`HTTP ${response.status}`);
      }
      const text = await response.text();
      if (text.length > MAX_JWKS_LENGTH) throw new Error("response too large");
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw new Error("response is not JSON");
      }
      this.#keys = createLocalJWKSet(json as JSONWebKeySet); // throws JWKSInvalid unless it is a JWK set
      this.#fetchedAt = this.now();
      this.#lastError = "";
    } catch (err) {
      const message = err instanceof errors.JWKSInvalid ? "not a JWK set" : err instanceof Error ? err.message : String(err);
      this.#lastError = message.slice(0, 120);
    }
  }
}

/** Waits for `promise` (which never rejects) or `ms`, whichever comes first. */
async function withDeadline(promise: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, ms))))]);
  } finally {
    clearTimeout(timer);
  }
}

/** A header or claim value for a reason: JSON-quoted (so control characters are escaped) and truncated. */
function quote(value: unknown): string {
  const text = typeof value === "string" ? value : String(value);
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

/** Grant error messages quote the grant text verbatim: escape control characters and cap the length. */
function sanitize(message: string): string {
  const escaped = message.replace(/[\p{Cc}\u2028\u2029]/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  return escaped.length > 200 ? `${escaped.slice(0, 200)}…` : escaped;
}
