// @ts-check
/** `keys create|list|show|revoke|rotate`, `audit`, `erase <subject>`, `encryption status|rewrap`. */
import { seg, UsageError } from "./api.mjs";
import { command, durationOption, intOption, str } from "./cli.mjs";
import { ask, interactive, num, printJson, progressBar, table, truncate } from "./ui.mjs";

/**
 * @typedef {{ id: string, prefix: string, name: string, grants: string[], tenant: string | null, createdBy: string,
 *   createdAt: string, expiresAt: string | null, revokedAt: string | null, revokedBy: string | null,
 *   rotatedAt?: string | null, previousSecretExpiresAt?: string | null }} ApiKey
 * @typedef {{ sequence: number, time: string, action: string, outcome: string, resource: string,
 *   actor: { id: string }, requestId: string, status?: number, reason?: string }} AuditRecord
 */

/** @param {ApiKey} k */
const keyState = (k) => (k.revokedAt ? "revoked" : k.expiresAt && Date.parse(k.expiresAt) <= Date.now() ? "expired" : "active");

export const keysCreate = command({
  name: "keys create",
  args: ["<name>"],
  summary: "Create an API key with its grants; the key is printed once",
  details:
    "Grants are `[!]action:topic-pattern` (actions produce, consume, replay, admin, decrypt; patterns a topic, a prefix ending in . _ - / : or *).\nExample: eventline keys create checkout --grant produce:orders --grant consume:orders",
  options: {
    grant: { type: "string", arg: "GRANT", desc: "a grant; repeat for several (at least one)", multiple: true },
    tenant: { type: "string", arg: "TENANT", desc: "tenant recorded as the key's owner" },
    "expires-in-days": { type: "string", arg: "N", desc: "expire after N days (default: never)" },
  },
  async run({ api, json, values, args: [name = ""] }) {
    const grants = /** @type {string[] | undefined} */ (/** @type {unknown} */ (values.grant)) ?? [];
    if (grants.length === 0) throw new UsageError("give at least one --grant, e.g. --grant produce:events");
    const expiresInDays = intOption(values["expires-in-days"], "--expires-in-days", { min: 1, max: 3650 });
    const tenant = str(values.tenant);
    /** @type {ApiKey & { key: string }} */
    const created = await api("POST", "/v1/keys", {
      body: { name, grants, ...(tenant === undefined ? {} : { tenant }), ...(expiresInDays === undefined ? {} : { expiresInDays }) },
    });
    if (json) return printJson(created);
    console.log(`Created API key ${created.id} (${created.name}) with ${created.grants.join(", ")}`);
    console.log(`\n  ${created.key}\n`);
    console.log("Store it now: it is not shown again (only its hash is kept). Send it as Authorization: Bearer <key>.");
    return 0;
  },
});

export const keysList = command({
  name: "keys list",
  summary: "API keys: id, name, grants, tenant, state, expiry, creation and creator (never their secrets)",
  async run({ api, json }) {
    /** @type {{ keys: ApiKey[] }} */
    const body = await api("GET", "/v1/keys");
    if (json) return printJson(body);
    if (body.keys.length === 0) {
      console.log("no API keys (the bootstrap admin key, EVENTLINE_ADMIN_KEY, is not listed)");
      return 0;
    }
    const rows = body.keys.map((k) => [
      k.id,
      k.name,
      truncate(k.grants.join(" "), 50),
      k.tenant ?? "-",
      keyState(k),
      k.expiresAt ?? "never",
      k.createdAt,
      k.createdBy,
    ]);
    console.log(table(["ID", "NAME", "GRANTS", "TENANT", "STATE", "EXPIRES", "CREATED", "BY"], rows));
    return 0;
  },
});

export const keysShow = command({
  name: "keys show",
  args: ["<id>"],
  summary: "One API key",
  async run({ api, json, args: [id = ""] }) {
    /** @type {ApiKey} */
    const k = await api("GET", `/v1/keys/${seg(id)}`);
    if (json) return printJson(k);
    const rows = [
      ["id", k.id],
      ["prefix", k.prefix],
      ["name", k.name],
      ["grants", k.grants.join(", ")],
      ["tenant", k.tenant ?? "-"],
      ["state", keyState(k)],
      ["created", `${k.createdAt} by ${k.createdBy}`],
      ["expires", k.expiresAt ?? "never"],
      ["revoked", k.revokedAt ? `${k.revokedAt} by ${k.revokedBy}` : "-"],
      ["rotated", k.rotatedAt ?? "-"],
      ...(k.previousSecretExpiresAt ? [["previous", `secret still works until ${k.previousSecretExpiresAt}`]] : []),
    ];
    console.log(rows.map(([a, b]) => `${String(a).padEnd(8)}  ${b}`).join("\n"));
    return 0;
  },
});

export const keysRevoke = command({
  name: "keys revoke",
  args: ["<id>"],
  summary: "Revoke an API key and the keys it minted (they stop working at once here, within 10 s everywhere)",
  async run({ api, json, args: [id = ""] }) {
    /** @type {ApiKey & { cascade?: string[] }} */
    const k = await api("DELETE", `/v1/keys/${seg(id)}`);
    if (json) return printJson(k);
    console.log(`API key ${k.id} (${k.name}) revoked at ${k.revokedAt} by ${k.revokedBy}`);
    const cascade = k.cascade ?? [];
    if (cascade.length > 0) console.log(`also revoked ${cascade.length} key(s) it minted: ${cascade.join(", ")}`);
    return 0;
  },
});

/** Longest grace period of a rotated-out secret (the API's limit): 7 days. */
const MAX_GRACE_SECONDS = 7 * 86_400;

export const keysRotate = command({
  name: "keys rotate",
  args: ["<id>"],
  summary: "Give an API key a new secret (same id and grants); the new key is printed once",
  details:
    "The previous secret keeps working for the grace period (default 24h), so clients can switch without a failed request; uses of it are audited (keys.previous_secret_used). --grace 0 stops it at once.\nExample: eventline keys rotate k3x9q0w2m4ab --grace 1h",
  options: {
    grace: {
      type: "string",
      arg: "DURATION",
      desc: "how long the previous secret keeps working: 0 to 7d, e.g. 0, 90s, 30m, 24h (default)",
    },
  },
  async run({ api, json, values, args: [id = ""] }) {
    const graceSeconds = durationOption(values.grace, "--grace", { max: MAX_GRACE_SECONDS });
    /** @type {ApiKey & { key: string }} */
    const k = await api("POST", `/v1/keys/${seg(id)}/rotate`, { body: graceSeconds === undefined ? {} : { graceSeconds } });
    if (json) return printJson(k);
    console.log(`Rotated API key ${k.id} (${k.name}): its new secret is`);
    console.log(`\n  ${k.key}\n`);
    console.log(
      k.previousSecretExpiresAt
        ? `The previous secret keeps working until ${k.previousSecretExpiresAt}; switch your clients before then.`
        : "The previous secret has stopped working.",
    );
    console.log("Store the new key now: it is not shown again (only its hash is kept).");
    return 0;
  },
});

export const audit = command({
  name: "audit",
  summary: "Search the audit log (oldest first)",
  details: "Filters combine. --action takes an exact action (keys.create) or a prefix ending in a dot (keys.).",
  options: {
    from: { type: "string", arg: "TIME", desc: "records at or after this RFC 3339 time" },
    to: { type: "string", arg: "TIME", desc: "records before this time" },
    actor: { type: "string", arg: "ID", desc: "e.g. admin, key:<id>, jwt:<issuer>#<subject>" },
    action: { type: "string", arg: "ACTION", desc: "e.g. access.denied, auth.failed, keys." },
    outcome: { type: "string", arg: "OUTCOME", desc: "success, failure or denied" },
    limit: { type: "string", arg: "N", desc: "records to print, 1-1000 (default 100)" },
  },
  async run({ api, json, values }) {
    const limit = intOption(values.limit, "--limit", { min: 1, max: 1000 }) ?? 100;
    const query = new URLSearchParams();
    for (const name of ["from", "to", "actor", "action", "outcome"]) {
      const v = str(values[name]);
      if (v !== undefined) query.set(name, v);
    }
    /** @type {AuditRecord[]} */
    const records = [];
    let href = `/v1/audit?${query}&limit=${limit}`;
    // A page may stop at the scan budget with fewer matches: follow `next` until enough are found.
    for (;;) {
      /** @type {{ records: AuditRecord[], next: { href: string } | null }} */
      const page = await api("GET", href);
      records.push(...page.records);
      if (page.next === null || records.length >= limit) break;
      href = page.next.href;
    }
    const shown = records.slice(0, limit);
    if (json) return printJson({ records: shown });
    if (shown.length === 0) {
      console.log("no matching audit records");
      return 0;
    }
    const rows = shown.map((r) => [
      r.time,
      r.action,
      r.outcome,
      r.actor.id,
      truncate(r.resource, 40),
      r.status ?? "-",
      truncate(r.reason ?? "", 50),
    ]);
    console.log(table(["TIME", "ACTION", "OUTCOME", "ACTOR", "RESOURCE", "STATUS", "REASON"], rows));
    return 0;
  },
});

export const erase = command({
  name: "erase",
  args: ["<subject>"],
  summary: "Erase a subject's personal data: destroy its data key (crypto-shredding; irreversible)",
  details:
    "Its encrypted fields become unreadable in the logs, the R2 archive, queues and replays; the log stays intact. Asks for confirmation on a terminal unless --yes.",
  options: { yes: { type: "boolean", desc: "do not ask for confirmation" } },
  async run({ api, json, values, args: [subject = ""] }) {
    if (!values.yes) {
      if (!interactive()) throw new UsageError("erasing is irreversible: pass --yes to confirm when not on a terminal");
      const answer = await ask(`Destroy the data key of subject ${JSON.stringify(subject)}? This cannot be undone. [y/N] `);
      if (!/^y(es)?$/i.test(answer.trim())) {
        console.log("not erased");
        return 0;
      }
    }
    /** @type {{ subject: string, destroyed: number, erasedAt: string }} */
    const result = await api("DELETE", `/v1/subjects/${seg(subject)}/keys`);
    if (json) return printJson(result);
    console.log(
      result.destroyed > 0
        ? `erased ${result.subject}: ${num(result.destroyed)} data key(s) destroyed at ${result.erasedAt}`
        : `nothing to erase for ${result.subject}: it has no data key (already erased, or never had sensitive data)`,
    );
    return 0;
  },
});

/**
 * @typedef {{ state: "rewrapping" | "complete" | "stalled", remaining: number, rewrapped: number, progress: number,
 *   removable: string[], shards: Record<string, number>, startedAt: string | null, completedAt: string | null,
 *   errors: { shard: string, error: string }[] }} KekRotation
 * @typedef {{ kek: { current: string, versions: string[] }, dataKeys: { keys: number, shredded: number,
 *   byKekVersion: Record<string, number> }, rotationComplete: boolean, rotation?: KekRotation }} EncryptionStatus
 */

/** `encryption status` as lines: keys per KEK version, the rotation's progress, and what may leave EVENTLINE_KEKS. @param {EncryptionStatus} s */
export function encryptionStatusLines(s) {
  const lines = [`KEK versions: ${s.kek.versions.join(", ")} (current ${s.kek.current})`];
  lines.push(`data keys: ${num(s.dataKeys.keys)} active, ${num(s.dataKeys.shredded)} shredded`);
  for (const [v, n] of Object.entries(s.dataKeys.byKekVersion)) lines.push(`  wrapped by ${v}: ${num(n)}`);
  const r = s.rotation;
  if (r === undefined) {
    // A server from before automatic rotation.
    lines.push(
      s.rotationComplete
        ? "rotation complete: every key is wrapped by the current KEK"
        : "rotation pending: run `eventline encryption rewrap`",
    );
    return lines;
  }
  const current = s.kek.current;
  const needed = s.kek.versions.filter((v) => v !== current && (s.dataKeys.byKekVersion[v] ?? 0) > 0);
  if (r.state === "complete") {
    lines.push(
      `rotation complete: every data key is wrapped by the current KEK (${current})${r.completedAt ? `, since ${r.completedAt}` : ""}`,
    );
  } else {
    const done = `${num(r.rewrapped)} of ${num(r.rewrapped + r.remaining)} data keys rewrapped (${Math.floor(r.progress * 100)}%), ${num(r.remaining)} remaining`;
    lines.push(
      r.state === "stalled"
        ? `rotation to ${current} stalled: ${done}`
        : // startedAt is null until a shard's first run (within seconds of the deploy being noticed).
          `rotation to ${current} in progress (automatic): ${done}, ${r.startedAt ? `started ${r.startedAt}` : "not started yet (the first run follows within seconds)"}`,
    );
  }
  for (const e of r.errors) lines.push(`  ${e.shard}: ${e.error}`);
  if (r.removable.length > 0) {
    lines.push(
      `${r.removable.join(", ")} can now be removed from EVENTLINE_KEKS: no data key is wrapped by ${r.removable.length === 1 ? "it" : "them"}`,
    );
  }
  if (needed.length > 0) {
    lines.push(
      `keep ${needed.join(", ")} in EVENTLINE_KEKS until the rotation is complete (rerun to follow it; \`eventline encryption rewrap\` finishes it at once)`,
    );
  }
  return lines;
}

export const encryptionStatus = command({
  name: "encryption status",
  summary: "KEK versions, data keys per KEK version and the automatic KEK rotation (when can an old KEK go?)",
  details:
    "After a new KEK version is deployed first in EVENTLINE_KEKS, the key vault rewraps every data key under it by itself; this shows how far it is and which old versions can be removed.",
  async run({ api, json }) {
    /** @type {EncryptionStatus} */
    const s = await api("GET", "/v1/encryption");
    if (json) return printJson(s);
    for (const line of encryptionStatusLines(s)) console.log(line);
    return 0;
  },
});

export const encryptionRewrap = command({
  name: "encryption rewrap",
  summary: "Re-wrap every data key under the current KEK now (the key vault also does it by itself after a KEK is added)",
  details: "Runs steps of --batch keys until none remain, showing progress. Events are not re-encrypted.",
  options: { batch: { type: "string", arg: "N", desc: "keys per step, 1-10000 (default 2000)" } },
  async run({ api, json, values }) {
    const batch = intOption(values.batch, "--batch", { min: 1, max: 10_000 }) ?? 2000;
    let total = 0;
    const bar = json ? undefined : progressBar();
    for (;;) {
      /** @type {{ rewrapped: number, remaining: number, current: string }} */
      const step = await api("POST", "/v1/encryption/rewrap", { body: { limit: batch } });
      total += step.rewrapped;
      const all = total + step.remaining;
      bar?.draw(total, all, `${num(total)}/${num(all)} data keys re-wrapped under ${step.current}`, step.remaining === 0);
      if (step.remaining === 0) {
        bar?.end();
        if (json) return printJson({ rewrapped: total, remaining: 0, current: step.current });
        console.log(`${num(total)} data key(s) re-wrapped under ${step.current}; the old KEK versions can now be removed`);
        return 0;
      }
      if (step.rewrapped === 0) throw new UsageError("no progress: a data key could not be re-wrapped (see the server log)");
    }
  },
});
