import type { Context } from "hono";
import type { EventlineConfig } from "../../../shared/config";
import { EventlineError } from "../../../shared/errors";
import { writeAudit } from "../audit";
import { countInWindow } from "../audit-windows";
import type { AppEnv } from "../context";
import { type AuthenticationError, LOOPBACK_HOSTS } from "./principal";

/**
 * The failed-authentication lock-out. Every failed authentication spends its source's budget in
 * the RATE_LIMIT binding (shared by the isolates of a Cloudflare location); the failure that
 * finds it spent locks the source for one window in this isolate. While locked, every request
 * from the source gets 429 + Retry-After BEFORE its credential is looked at: a right guess is
 * answered exactly like a wrong one, so guessing cannot go on at the speed of the budget. The
 * refused requests are audited as one `auth.throttled` record per address and window of
 * THROTTLED_AUDIT_WINDOW_SECONDS with their count, across isolates (audit-windows.ts).
 */

/** Seconds of the RATE_LIMIT binding's period (wrangler.toml), and of a lock. */
export const LOCKOUT_SECONDS = 10;

export const THROTTLED_AUDIT_ACTION = "auth.throttled";
/** A minute of refusals per address makes one record: several locks of a client that keeps guessing. */
export const THROTTLED_AUDIT_WINDOW_SECONDS = 60;
const UNAUTHENTICATED = { id: "unauthenticated", kind: "none" } as const;
/** The audit resource of a client address (its AuditTally object is named by it). */
export const clientResource = (source: string) => `client:${source}`;

/**
 * Where a request comes from, for the lock-out and the audit log. On Cloudflare the edge sets
 * `cf-connecting-ip` (replacing whatever the client sent). Locally nothing does: wrangler dev
 * passes a client's own `cf-connecting-ip` (and `cf` object) through, so local requests — those
 * to a loopback host, which never reach a deployed Worker, or any request when
 * EVENTLINE_CLIENT_IP is "local" (.dev.vars) — are one source, `local`.
 */
export function clientSource(c: Context<AppEnv>): string {
  if ((c.env.EVENTLINE_CLIENT_IP as string) === "local" || LOOPBACK_HOSTS.has(new URL(c.req.url).hostname)) return "local";
  return c.req.header("cf-connecting-ip") ?? "unknown";
}

/** Spends one unit of `key`'s budget in the Rate Limiting binding; true when it was already spent. */
export async function rateLimited(c: Context<AppEnv>, key: string): Promise<boolean> {
  const limiter = (c.env as Partial<Env>).RATE_LIMIT;
  if (limiter === undefined) return false;
  const { success } = await limiter.limit({ key });
  return !success;
}

function refused(retryAfterSeconds: number): EventlineError {
  return new EventlineError("rate_limited", "request budget of this client exhausted; retry after the Retry-After seconds", {
    retryAfter: Math.max(1, retryAfterSeconds),
  });
}

/** Counts one request refused unverified into its address's `auth.throttled` window. */
function countRefused(c: Context<AppEnv>, source: string): void {
  countInWindow(c, {
    action: THROTTLED_AUDIT_ACTION,
    outcome: "failure",
    status: 429,
    actor: UNAUTHENTICATED,
    resource: clientResource(source),
    ip: source,
    reason: "failed-authentication budget of this client exhausted: requests refused unverified (details.count)",
    windowSeconds: THROTTLED_AUDIT_WINDOW_SECONDS,
    counts: { count: 1 },
  });
}

export function createLockout(config: EventlineConfig, options: { lockoutSeconds?: number } = {}) {
  const seconds = options.lockoutSeconds ?? LOCKOUT_SECONDS;
  /** Locked sources of this isolate: when their lock ends (epoch ms). */
  const locks = new Map<string, number>();

  function lock(source: string, now: number): void {
    // Locks are rare (a budget of failures each): dropping the ended ones here keeps the map small.
    for (const [other, until] of locks) if (until <= now) locks.delete(other);
    locks.set(source, now + seconds * 1000);
  }

  return {
    /** Throws 429 if the request's source is locked out (counted in the source's audit window). */
    refuseIfLocked(c: Context<AppEnv>): void {
      // Every request passes here: no source (a URL parse) is worked out while nothing is locked.
      if (locks.size === 0) return;
      const source = clientSource(c);
      const until = locks.get(source);
      if (until === undefined) return;
      const now = Date.now();
      if (until <= now) {
        locks.delete(source);
        return;
      }
      countRefused(c, source);
      throw refused(Math.ceil((until - now) / 1000));
    },

    /**
     * A failed authentication: spends the source's budget; if it is spent, locks the source and
     * throws 429, else writes the request's own `auth.failed` record (the caller then throws the 401).
     */
    async failed(c: Context<AppEnv>, err: AuthenticationError): Promise<void> {
      const source = clientSource(c);
      if (await rateLimited(c, `ip:${source}`)) {
        lock(source, Date.now());
        countRefused(c, source);
        throw refused(seconds);
      }
      await writeAudit(
        c.env,
        config,
        c.get("log"),
        {
          action: "auth.failed",
          outcome: "failure",
          resource: c.req.path,
          actor: { id: "unauthenticated", kind: "none", ...(err.keyId === undefined ? {} : { keyId: err.keyId }) },
          requestId: c.get("requestId"),
          status: 401,
          reason: err.detail,
          method: c.req.method,
          path: c.req.path,
          ip: source,
        },
        c.get("traceparent"),
      );
    },
  };
}

export type Lockout = ReturnType<typeof createLockout>;
