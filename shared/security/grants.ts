/**
 * Authorization grants: `(action, topic pattern)` pairs, allow or deny, written as strings so
 * they fit in a JWT claim or an API key record:
 *
 *   produce:orders          literal topic "orders"
 *   consume:acme.           every topic starting with "acme." (a prefix must end in a delimiter)
 *   replay:acme.*           the same prefix, spelled with a trailing "*"
 *   admin:*                 every topic (and the global admin functions: keys, audit, subjects)
 *   !produce:acme.audit     deny: overrides any allow
 *
 * A prefix must end in one of the delimiters `.`, `_`, `-`, `/`, `:` so `orders.` can never
 * match `orders-evil`; an undelimited `orders*` is rejected when the grant is parsed.
 * `admin` implies `produce`, `consume` and `replay` on the topics it covers, and a deny of any of
 * those also denies `admin` there; a deny of `consume` also denies `replay` (see `deniedBy`);
 * `decrypt` (plaintext of sensitive fields) is never implied and must be granted explicitly.
 */

export const ACTIONS = ["produce", "consume", "replay", "admin", "decrypt"] as const;
export type Action = (typeof ACTIONS)[number];

const DELIMITERS = ".:_-/";
const TOPIC_CHARS = /^[a-z0-9._:/-]+$/;

export interface Grant {
  action: Action;
  /** `*` (every topic), a literal topic, or a delimiter-terminated prefix ending in the delimiter. */
  pattern: string;
  effect: "allow" | "deny";
}

export class GrantSyntaxError extends Error {
  override readonly name = "GrantSyntaxError";
}

/** Parses `[!]action:pattern`; throws GrantSyntaxError naming what is wrong. */
export function parseGrant(text: string): Grant {
  const effect = text.startsWith("!") ? "deny" : "allow";
  const body = effect === "deny" ? text.slice(1) : text;
  const colon = body.indexOf(":");
  if (colon <= 0) throw new GrantSyntaxError(`grant "${text}" must look like action:topic-pattern (e.g. produce:orders)`);
  const action = body.slice(0, colon);
  let pattern = body.slice(colon + 1);
  if (!(ACTIONS as readonly string[]).includes(action)) {
    throw new GrantSyntaxError(`grant "${text}": unknown action "${action}" (one of ${ACTIONS.join(", ")})`);
  }
  if (pattern === "*") return { action: action as Action, pattern, effect };
  if (pattern.endsWith("*")) {
    pattern = pattern.slice(0, -1);
    if (pattern === "" || !DELIMITERS.includes(pattern.at(-1) as string)) {
      throw new GrantSyntaxError(
        `grant "${text}": a prefix pattern must end in a delimiter (${DELIMITERS.split("").join(" ")}) before "*"`,
      );
    }
  }
  if (pattern === "" || !TOPIC_CHARS.test(pattern)) {
    throw new GrantSyntaxError(`grant "${text}": the topic pattern may use a-z, 0-9 and . _ - / : only`);
  }
  return { action: action as Action, pattern, effect };
}

export function formatGrant(grant: Grant): string {
  return `${grant.effect === "deny" ? "!" : ""}${grant.action}:${grant.pattern}`;
}

/** Parses a list of grants, collecting every error. */
export function parseGrants(texts: readonly string[]): { grants: Grant[]; errors: string[] } {
  const grants: Grant[] = [];
  const errors: string[] = [];
  for (const text of texts) {
    try {
      grants.push(parseGrant(text));
    } catch (err) {
      errors.push(err instanceof Error ? err.message : String(err));
    }
  }
  return { grants, errors };
}

/** Does `pattern` cover `topic`? `*` covers every topic; a pattern ending in a delimiter is a prefix. */
export function patternMatches(pattern: string, topic: string): boolean {
  if (pattern === "*") return true;
  if (DELIMITERS.includes(pattern.at(-1) as string)) return topic.startsWith(pattern) && topic.length > pattern.length;
  return pattern === topic;
}

/**
 * Does every topic `inner` matches also match `outer`? Compares two patterns rather than a pattern
 * and a topic, so a new key's grants can be checked against its creator's.
 */
export function patternCovers(outer: string, inner: string): boolean {
  return outer === "*" || outer === inner || (inner !== "*" && patternMatches(outer, inner));
}

/** Does some topic match both patterns? Two prefixes overlap only when one starts with the other. */
export function patternsOverlap(a: string, b: string): boolean {
  return patternCovers(a, b) || patternCovers(b, a);
}

/** The topic actions an `admin` grant implies (never `decrypt`). */
const IMPLIED_BY_ADMIN: ReadonlySet<Action> = new Set(["produce", "consume", "replay"]);

/**
 * Does holding `held` on a topic give `wanted` there? The one place the rule lives: every action
 * gives itself, `admin` also gives the topic actions, and nothing gives `decrypt` but `decrypt`.
 */
export function implies(held: Action, wanted: Action): boolean {
  return held === wanted || (held === "admin" && IMPLIED_BY_ADMIN.has(wanted));
}

/**
 * Does a deny of `denied` take `wanted` away? The one place the rule lives (access checks and the
 * creator's denies a new key must carry both use it). A deny takes away what it names and every
 * action that implies it: a deny of `produce`, `consume` or `replay` also denies `admin`, whose
 * functions (DLQ contents, webhook subscriptions, rebuilds) would otherwise read or move the events
 * the deny keeps from the principal. A deny of `consume` also denies `replay`: a replay sends the
 * topic's events to a subscription, i.e. reads them by proxy.
 */
export function deniedBy(wanted: Action, denied: Action): boolean {
  return implies(wanted, denied) || (denied === "consume" && wanted === "replay");
}

function covers(grant: Grant, action: Action, topic: string): boolean {
  if (!patternMatches(grant.pattern, topic)) return false;
  return grant.effect === "allow" ? implies(grant.action, action) : deniedBy(action, grant.action);
}

/** The deny grant that refuses (action, topic), if one does: what a 403 names, so a key's holder sees why. */
export function denyingGrant(grants: readonly Grant[], action: Action, topic: string): Grant | undefined {
  return grants.find((grant) => grant.effect === "deny" && covers(grant, action, topic));
}

/** Allowed iff some allow grant covers (action, topic) and no deny grant does. */
export function isAllowed(grants: readonly Grant[], action: Action, topic: string): boolean {
  let allowed = false;
  for (const grant of grants) {
    if (!covers(grant, action, topic)) continue;
    if (grant.effect === "deny") return false;
    allowed = true;
  }
  return allowed;
}

/**
 * Global functions (API keys, audit, erasing a subject, key rotation) are not about one topic:
 * they need `admin` on every topic, i.e. an `admin:*` grant not cut down by any deny of `admin`
 * or of an action admin implies.
 */
export function isGlobalAdmin(grants: readonly Grant[]): boolean {
  return (
    grants.some((g) => g.effect === "allow" && g.action === "admin" && g.pattern === "*") &&
    !grants.some((g) => g.effect === "deny" && deniedBy("admin", g.action))
  );
}
