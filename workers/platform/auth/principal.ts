import type { Context } from "hono";
import type { Logger } from "../../../sdk/logger";
import type { EventlineConfig } from "../../../shared/config";
import { EventlineError } from "../../../shared/errors";
import { sha256Hex } from "../../../shared/json";
import { parseGrants } from "../../../shared/security/grants";
import { createJwtVerifier, TokenError } from "../../../shared/security/jwt";
import { countInWindow } from "../audit-windows";
import type { AppEnv } from "../context";
import { type ApiKeyRecord, digestsEqual, looksLikeApiKey, verifyApiKey } from "./api-keys";
import type { Principal } from "./identity";

/** Who is calling, as proven by a credential. Identity and tenant come only from here. */
export type { Principal } from "./identity";

/** A refused credential: the 401 to send, and what the audit record says (never the credential). */
export class AuthenticationError extends EventlineError {
  constructor(
    detail: string,
    readonly challenge: string,
    readonly keyId?: string,
  ) {
    super("unauthorized", detail, { headers: { "www-authenticate": challenge } });
  }
}

const REALM = 'Bearer realm="eventline"';
/**
 * RFC 6750 §3: error_description is printable ASCII without `"` and `\`. The description may
 * quote token values (iss, kid, typ), so anything else is replaced: a header value must not carry
 * raw non-ASCII bytes.
 */
const challenge = (error: "invalid_request" | "invalid_token", description: string) =>
  `${REALM}, error="${error}", error_description="${description
    .replaceAll('"', "'")
    .replaceAll("\\", "")
    .replace(/[^\x20-\x7e]/g, "?")}"`;

export function authDisabled(env: Env): boolean {
  return (env.EVENTLINE_AUTH as string) === "disabled";
}

let warnedDisabled = false;
/** Hosts of requests that can only come from this machine: no request to a deployed Worker has one. */
export const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(["localhost", "127.0.0.1", "[::1]"]);

export const PREVIOUS_SECRET_AUDIT_ACTION = "keys.previous_secret_used";
/** Seconds over which uses of a rotated-out API key secret are counted into one audit record. */
export const PREVIOUS_SECRET_AUDIT_SECONDS = 300;

/**
 * A client still sending a key's previous secret (during its grace period after a rotation) is
 * audited once per key and window with a count, not per request (audit-windows.ts).
 */
function countPreviousSecretUse(c: Context<AppEnv>, record: ApiKeyRecord): void {
  const id = `key:${record.id}`;
  const expires = record.previousSecretExpiresAt?.toISOString() ?? null;
  countInWindow(c, {
    action: PREVIOUS_SECRET_AUDIT_ACTION,
    actor: { id, kind: "api-key", ...(record.tenant === null ? {} : { tenant: record.tenant }) },
    resource: id,
    reason: `a client still uses the secret ${id} had before its rotation; it stops working at ${expires}`,
    windowSeconds: PREVIOUS_SECRET_AUDIT_SECONDS,
    counts: { count: 1 },
    details: { keyId: record.id, previousSecretExpiresAt: expires },
  });
}

/**
 * Builds the authenticator for one app (the JWT verifier, with its JWKS caches, lives as long as
 * the isolate). `authenticate` returns the principal or throws AuthenticationError.
 */
export function createAuthenticator(config: EventlineConfig, options: { fetch?: typeof fetch } = {}) {
  const jwt = config.security.oidc.issuers.length > 0 ? createJwtVerifier(config.security.oidc, options) : undefined;
  const adminGrants = parseGrants(config.security.adminGrants).grants;
  let adminHash: { key: string; hash: Promise<string> } | undefined;

  async function isAdminKey(env: Env, token: string): Promise<boolean> {
    const key = env.EVENTLINE_ADMIN_KEY;
    if (typeof key !== "string" || key.length < 32) return false;
    if (adminHash?.key !== key) adminHash = { key, hash: sha256Hex(key) };
    return digestsEqual(await adminHash.hash, await sha256Hex(token));
  }

  return async function authenticate(c: Context<AppEnv>, log: Logger): Promise<Principal> {
    if (authDisabled(c.env)) {
      // Honoured only for requests to a loopback host (local development): a deployment that
      // carries the setting by mistake still authenticates, and says so.
      if (!LOOPBACK_HOSTS.has(new URL(c.req.url).hostname)) {
        log.error("EVENTLINE_AUTH=disabled ignored: the request is not to a loopback host; authentication stays on", {
          setting: "EVENTLINE_AUTH",
        });
      } else {
        if (!warnedDisabled) {
          warnedDisabled = true;
          log.warn("AUTHENTICATION DISABLED: EVENTLINE_AUTH=disabled gives every caller full admin rights; never deploy this", {
            setting: "EVENTLINE_AUTH",
          });
        }
        return { id: "anonymous", kind: "anonymous", grants: adminGrants };
      }
    }
    const header = c.req.header("authorization");
    if (header === undefined || header.trim() === "") {
      throw new AuthenticationError("this endpoint needs credentials: send Authorization: Bearer <API key or JWT>", REALM);
    }
    const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
    if (match === null) {
      throw new AuthenticationError(
        "malformed Authorization header: expected `Bearer <token>`",
        challenge("invalid_request", "expected Bearer <token>"),
      );
    }
    const token = match[1] as string;
    if (await isAdminKey(c.env, token)) return { id: "admin", kind: "admin-key", grants: adminGrants };
    if (looksLikeApiKey(token)) {
      const check = await verifyApiKey(c.env.DB, token, config.security.apiKeys.cacheSeconds);
      if (!check.ok) throw new AuthenticationError(check.reason, challenge("invalid_token", check.reason), check.keyId);
      if (check.previousSecret) countPreviousSecretUse(c, check.record);
      const { grants } = parseGrants(check.record.grants);
      return {
        id: `key:${check.record.id}`,
        kind: "api-key",
        grants,
        ...(check.record.tenant === null ? {} : { tenant: check.record.tenant }),
        ...(check.record.expiresAt === null ? {} : { expiresAt: check.record.expiresAt }),
      };
    }
    if (jwt === undefined) {
      throw new AuthenticationError(
        "not an API key, and no OIDC issuer is configured for JWTs",
        challenge("invalid_token", "no OIDC issuer configured"),
      );
    }
    try {
      const verified = await jwt.verify(token);
      return {
        id: `jwt:${verified.issuer}#${verified.subject}`,
        kind: "jwt",
        grants: parseGrants(verified.grants).grants,
        ...(verified.tenant === undefined ? {} : { tenant: verified.tenant }),
      };
    } catch (err) {
      if (err instanceof TokenError) throw new AuthenticationError(`invalid token: ${err.reason}`, challenge("invalid_token", err.reason));
      throw err;
    }
  };
}

export type Authenticate = ReturnType<typeof createAuthenticator>;
