import type { Context, MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { type EventlineConfig, findTopic, type RouteGroup } from "../../../shared/config";
import { EventlineError } from "../../../shared/errors";
import { type Action, denyingGrant, formatGrant, implies, isAllowed, isGlobalAdmin } from "../../../shared/security/grants";
import { actorOf, writeAudit } from "../audit";
import type { AppEnv } from "../context";
import { isPublicPath } from "../public-paths";
import { findSubscriptionView } from "../subscription-registry";
import { createLockout, rateLimited } from "./lockout";
import { type Authenticate, AuthenticationError, createAuthenticator, type Principal } from "./principal";

/**
 * Every route declares what it needs with `access({ group, action, topic })`: the route group
 * (for mTLS), the action (`produce`, `consume`, `replay`, `admin`, or `global` for functions
 * that are not about one topic), and how to find the topic it touches. The app-wide
 * `authentication` middleware proves who is calling first; a successful response from a route
 * that never declared its access is turned into a 500 (fail closed), so a forgotten declaration
 * cannot pass the tests.
 */

/** Paths anyone may read (workers/platform/public-paths.ts). */
const isPublic = isPublicPath;

export interface AccessSpec {
  group: RouteGroup;
  /** `global`: needs `admin:*` (keys, audit, erasure, KEK rotation). `list`: any grant; the handler filters. */
  action: Action | "global" | "list";
  /**
   * The topic the request touches; `undefined` (unknown resource) lets the handler answer 404. A
   * resource named by something else than its topic resolves to a NamedResource (see denyNamed).
   */
  topic?: (c: Context<AppEnv>) => TopicOf | Promise<TopicOf>;
  /** Audit this route's outcome under this action name (admin and security functions). */
  audit?: string;
  /** The audited resource; default the NamedResource's name, `topic:<topic>` or the path. */
  resource?: (c: Context<AppEnv>) => string;
}

/**
 * A resource named by something other than its topic (a subscription, a replay job), with the
 * topic it is on: `undefined` when no such resource exists.
 */
export interface NamedResource {
  /** How answers name it, e.g. `subscription:orders-view`. */
  name: string;
  topic: string | undefined;
}

type TopicOf = string | NamedResource | undefined;

const RATE_LIMIT_PERIOD_SECONDS = 10;

function tooManyRequests(who: string): EventlineError {
  return new EventlineError("rate_limited", `request budget of ${who} exhausted; retry after the Retry-After seconds`, {
    retryAfter: RATE_LIMIT_PERIOD_SECONDS,
  });
}

/**
 * Authenticates every non-public request, applies the per-principal rate limit, and fails closed.
 * A client locked out for failed authentications (lockout.ts) is refused before its credential
 * is looked at.
 */
export function authentication(
  config: EventlineConfig,
  options: { fetch?: typeof fetch; lockoutSeconds?: number } = {},
): MiddlewareHandler<AppEnv> {
  const authenticate: Authenticate = createAuthenticator(config, options);
  const lockout = createLockout(config, options);
  return async (c, next) => {
    if (isPublic(c.req.path)) return next();
    const log = c.get("log");
    lockout.refuseIfLocked(c);
    let principal: Principal;
    try {
      principal = await authenticate(c, log);
    } catch (err) {
      if (!(err instanceof AuthenticationError)) throw err;
      await lockout.failed(c, err);
      throw err;
    }
    c.set("principal", principal);
    c.set("log", log.with({ principal: principal.id }));
    if (await rateLimited(c, principal.id)) throw tooManyRequests(principal.id);
    await next();
    if (c.get("authorized") !== true && c.res.status < 400) {
      c.get("log").error("route without an access declaration answered; response withheld", { path: c.req.path });
      throw new EventlineError("internal", "this route declares no access policy; the response was withheld");
    }
  };
}

function certificateProblem(c: Context<AppEnv>, config: EventlineConfig): string | undefined {
  const auth = (c.req.raw as Request & { cf?: { tlsClientAuth?: Record<string, string> } }).cf?.tlsClientAuth;
  if (auth === undefined || auth.certPresented !== "1") return "a client certificate is required for this route (mTLS)";
  if (auth.certVerified !== "SUCCESS") return `the client certificate was not verified (${auth.certVerified ?? "unknown"})`;
  // Revocation is reported apart from verification: a revoked certificate still verifies.
  if (auth.certRevoked === "1") return "the client certificate has been revoked";
  const allowed = config.security.mtls.certificates;
  if (allowed.length === 0) return undefined;
  const ok = allowed.some(
    (a) =>
      (a.subjectDN === undefined || a.subjectDN === auth.certSubjectDN) &&
      (a.issuerDN === undefined || a.issuerDN === auth.certIssuerDN) &&
      (a.fingerprintSha256 === undefined || a.fingerprintSha256 === auth.certFingerprintSHA256),
  );
  return ok ? undefined : "the client certificate is not one of the certificates allowed for this route";
}

function describe(action: AccessSpec["action"], topic: string | undefined): string {
  if (action === "global") return "admin on every topic (admin:*)";
  if (action === "list") return "any grant";
  return `${action} on topic ${topic}`;
}

/** The route's access declaration: mTLS for its group, then the grant check, then (optionally) its audit record. */
export function access(spec: AccessSpec): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const config = c.get("config");
    const principal = c.get("principal");
    const target = spec.topic === undefined ? undefined : await spec.topic(c);
    const named = typeof target === "object" ? target : undefined;
    const topic = typeof target === "object" ? target.topic : target;
    const resource = spec.resource?.(c) ?? named?.name ?? (topic === undefined ? c.req.path : `topic:${topic}`);
    const audit = async (outcome: "success" | "failure" | "denied", status: number, reason?: string) =>
      writeAudit(
        c.env,
        config,
        c.get("log"),
        {
          action: outcome === "denied" ? "access.denied" : (spec.audit as string),
          outcome,
          resource,
          actor: actorOf(principal),
          requestId: c.get("requestId"),
          status,
          method: c.req.method,
          path: c.req.path,
          ...(reason === undefined ? {} : { reason }),
          ...(outcome === "denied" && spec.audit !== undefined ? { details: { attempted: spec.audit } } : {}),
          ...(outcome !== "denied" && c.get("auditDetails") !== undefined ? { details: c.get("auditDetails") } : {}),
        },
        c.get("traceparent"),
      );

    if (config.security.mtls.routeGroups.includes(spec.group)) {
      const problem = certificateProblem(c, config);
      if (problem !== undefined) {
        await audit("denied", 403, problem);
        throw new EventlineError("forbidden", problem);
      }
    }
    const denial =
      named === undefined || spec.action === "global" || spec.action === "list"
        ? deny(config, principal, spec.action, topic)
        : denyNamed(config, principal, spec.action, named);
    if (denial !== undefined) {
      await audit("denied", 403, typeof denial === "string" ? denial : denial.reason);
      throw new EventlineError("forbidden", typeof denial === "string" ? denial : denial.detail);
    }
    c.set("authorized", true);
    if (spec.audit === undefined) return next();
    try {
      await next();
    } catch (err) {
      const status = err instanceof EventlineError ? err.status : err instanceof HTTPException && err.status < 500 ? 400 : 500;
      await audit("failure", status, failureReason(err));
      throw err;
    }
    // Hono renders an error thrown further down (by the handler or a validator) with the app's
    // onError before `next` returns, leaving it in `c.error`: name it as the failure's reason.
    const failed = c.error;
    const reason = failed === undefined ? undefined : failureReason(failed);
    await audit(c.res.status < 400 ? "success" : "failure", c.res.status, c.res.status < 400 ? undefined : reason);
  };
}

/** An audited failure's reason: the problem's detail; Hono's body errors (not JSON) as onError renders them. */
function failureReason(err: unknown): string {
  if (err instanceof EventlineError) return err.detail;
  if (err instanceof HTTPException && err.status < 500) return err.message || "malformed request body";
  return "unexpected error";
}

/** Why `principal` may not do `action` on `topic`, or undefined when it may. */
export function deny(
  config: EventlineConfig,
  principal: Principal,
  action: AccessSpec["action"],
  topic: string | undefined,
): string | undefined {
  const grants = principal.grants;
  const missing = `${principal.id} lacks ${describe(action, topic)}`;
  if (action === "global") return isGlobalAdmin(grants) ? undefined : missing;
  if (action === "list") return grants.some((g) => g.effect === "allow") ? undefined : `${principal.id} has no grants`;
  if (topic === undefined) {
    // The resource named no topic we could find (the handler answers 404 or 400): still, only a
    // principal that holds this action somewhere gets that far.
    return grants.some((g) => g.effect === "allow" && implies(g.action, action)) ? undefined : missing;
  }
  if (findTopic(config, topic)?.internal === true) {
    // Internal topics (the audit log): written only by the platform, read only by global admins.
    if (action === "produce") return `topic ${topic} is written only by the platform`;
    return isGlobalAdmin(grants) ? undefined : `${principal.id} lacks admin on every topic (admin:*), which topic ${topic} needs`;
  }
  if (action === "produce") {
    // A processor's output topic is written by the processor alone (a forged result id would block it).
    const writer = config.processors.find((p) => p.output.topic === topic);
    if (writer !== undefined) return `topic ${topic} is written only by processor ${writer.name}`;
  }
  if (isAllowed(grants, action, topic)) return undefined;
  const denied = denyingGrant(grants, action, topic);
  return denied === undefined ? missing : `${missing}: its grant ${formatGrant(denied)} denies it`;
}

/**
 * Why `principal` may not do `action` on a named resource, or undefined when it may. Whether the
 * name exists is told only to a principal that may do `action` on every topic (it could use the
 * resource wherever it were): it gets the handler's 404 for a missing one. Any other principal
 * gets a 403 with the same detail whether the resource is missing or on a topic it may not use,
 * as a topic outside one's grants is a 403 whether it exists or not. The audit `reason` (read by
 * global admins only) says which.
 */
function denyNamed(
  config: EventlineConfig,
  principal: Principal,
  action: Action,
  named: NamedResource,
): { reason: string; detail: string } | undefined {
  const reason =
    named.topic !== undefined
      ? deny(config, principal, action, named.topic)
      : config.topics.every((t) => deny(config, principal, action, t.name) === undefined)
        ? undefined
        : `${named.name} does not exist; ${principal.id} lacks ${action} on some topics, so it is not told`;
  if (reason === undefined) return undefined;
  return { reason, detail: `${named.name} does not exist or is on a topic where ${principal.id} lacks ${action}` };
}

/** May `principal` do `action` on `topic`? The rule of the routes about one resource, for listings of such resources. */
export const may = (config: EventlineConfig, principal: Principal, action: Action, topic: string) =>
  deny(config, principal, action, topic) === undefined;

/** Can the caller see `topic` at all (listing)? Any of produce/consume/replay/admin on it. */
export function canSee(principal: Principal, topic: string, config: EventlineConfig): boolean {
  if (findTopic(config, topic)?.internal === true) return isGlobalAdmin(principal.grants);
  return (["consume", "produce", "replay", "admin"] as const).some((a) => isAllowed(principal.grants, a, topic));
}

/** `topic` resolver: the route's `{topic}` path parameter. */
export const topicParam = (c: Context<AppEnv>) => c.req.param("topic");

/** `topic` resolver: the `{name}` subscription (configured or webhook) and its topic, undefined if unknown. */
export const subscriptionTopic = async (c: Context<AppEnv>): Promise<NamedResource> => {
  const name = c.req.param("name") ?? "";
  return { name: `subscription:${name}`, topic: (await findSubscriptionView(c.env.DB, name))?.topic };
};

export const subscriptionResource = (c: Context<AppEnv>) => `subscription:${c.req.param("name")}`;

/** `topic` resolver: the `topic` member of a JSON body (the body's own validation runs after). */
export const bodyTopic = async (c: Context<AppEnv>) => {
  const body = (await c.req.json().catch(() => undefined)) as { topic?: unknown } | undefined;
  return typeof body?.topic === "string" ? body.topic : undefined;
};

/** `topic` resolver: the topic of the `{id}` replay job, from the job itself (the D1 listing is only a copy). */
export const replayTopic = async (c: Context<AppEnv>): Promise<NamedResource | undefined> => {
  const id = c.req.param("id") ?? "";
  // Only well-formed ids reach a ReplayJob (the route's validator answers the rest with 400).
  if (!/^rpl_[0-9a-f]{32}$/.test(id)) return undefined;
  return { name: `replay:${id}`, topic: (await c.env.REPLAY_JOB.getByName(id).status())?.topic };
};

/** `topic` resolver for routes about one fixed topic (the orders commands and read models). */
export const fixedTopic = (name: string) => () => name;

/** The grants of a principal, for display. */
export const grantStrings = (principal: Principal) => principal.grants.map(formatGrant);
