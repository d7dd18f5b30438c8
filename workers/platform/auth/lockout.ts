import type { Context } from "hono";
import type { EventlineConfig } from "../../../shared/config";
import { EventlineError } from "../../../shared/errors";
import { writeAudit } from "../audit";
import type { AppEnv } from "../context";
import { AuditAggregator } from "./aggregate";
import { type AuthenticationError, LOOPBACK_HOSTS } from "./principal";

/**
 * The failed-authentication lock-out. Every failed authentication spends its source's budget in
 * the RATE_LIMIT binding (shared by the isolates of a Cloudflare location); the failure that
 * finds it spent locks the source for one window in this isolate. While locked, every request
 * from the source gets 429 + Retry-After BEFORE its credential is looked at: a right guess is
 * answered exactly like a wrong one, so guessing cannot go on at the speed of the budget. The
 * refused requests of a window are audited as one `auth.throttled` record with their count.
 */

/** Seconds of the RATE_LIMIT binding's period (wrangler.toml), and of a lock. */
export const LOCKOUT_SECONDS = 10;

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

function refused(retryAfterSeconds: number): EventlineError {
  return new EventlineError("rate_limited", "request budget of this client exhausted; retry after the Retry-After seconds", {
    retryAfter: Math.max(1, retryAfterSeconds),
  });
}

export function createLockout(config: EventlineConfig, options: { lockoutSeconds?: number } = {}) {
  const seconds = options.lockoutSeconds ?? LOCKOUT_SECONDS;
  const locks = new AuditAggregator(seconds * 1000, (window, requestId) => ({
    action: "auth.throttled",
    outcome: "failure",
    resource: `client:${window.key}`,
    actor: { id: "unauthenticated", kind: "none" },
    requestId,
    status: 429,
    reason: `failed-authentication budget of this client exhausted: ${window.count} request(s) refused unverified`,
    ip: window.key,
    details: { count: window.count, from: new Date(window.from).toISOString(), until: new Date(window.until).toISOString() },
  }));

  return {
    /** Throws 429 if the request's source is locked out (counted for the window's record). */
    refuseIfLocked(c: Context<AppEnv>): void {
      const source = clientSource(c);
      const lock = locks.current(source);
      if (lock === undefined) return;
      locks.note(c, source, undefined);
      throw refused(Math.ceil((lock.until - Date.now()) / 1000));
    },

    /**
     * A failed authentication: spends the source's budget; if it is spent, locks the source and
     * throws 429, else writes the request's own `auth.failed` record (the caller then throws the 401).
     */
    async failed(c: Context<AppEnv>, err: AuthenticationError): Promise<void> {
      const source = clientSource(c);
      const limiter = (c.env as Partial<Env>).RATE_LIMIT;
      if (limiter !== undefined && !(await limiter.limit({ key: `ip:${source}` })).success) {
        locks.note(c, source, undefined);
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
