import config from "../eventline.config";
import { createLogger } from "../sdk/logger";
import { newTraceparent } from "../sdk/trace";
import { type Keyring, KeyringError } from "../shared/security/keyring";
import { type AuditRecord, writeAudit } from "../workers/platform/audit";

/**
 * Automatic KEK rotation of one KeyVault shard (ADR 0030). When EVENTLINE_KEKS gets a new first
 * version, the shard's active data keys still wrapped under older versions are rewrapped under it
 * by the object's alarm, a bounded chunk per run, until none remain. The progress is the data
 * itself (each key row names its KEK version), so a run cut short — an eviction, a deploy, a
 * crash — resumes where it was with nothing to recover; the `kek_rotation` row only keeps the
 * counts and the reason a rotation stopped, for status, metrics and the audit log.
 *
 * The shard looks whenever it sees an EVENTLINE_KEKS value for the first time (any call after a
 * deploy, as a deploy restarts the object), whenever it is asked for its rotation state
 * (`KeyVault.rotation`: the platform's cron trigger, `GET /v1/encryption`, `/v1/metrics`), and
 * after every manual rewrap step. The cron reaches shards that nothing else calls.
 *
 * Audited as the system actor `system:kek-rotation`: one `keys.rewrap` record per shard when its
 * rotation completes (with counts), one failure record when it stops (not per run, not per key).
 */

/** Keys rewrapped per alarm run: one run stays short, and reads and creates get in between runs. */
export const ROTATION_CHUNK = 200;
/** Pause between two runs of one rotation (about 200 keys per second per shard, 16 shards in parallel). */
export const ROTATION_PAUSE_MS = 1_000;
/**
 * Who the audit log names for the rotation's records: work the platform does by itself, with no
 * request or credential behind it, is actor kind `system` with id `system:<task>`.
 */
export const ROTATION_ACTOR: AuditRecord["actor"] = { id: "system:kek-rotation", kind: "system" };

/** `complete`: every active key is wrapped by the current KEK; `stalled`: stopped on `error` until the cause is fixed. */
export type RotationState = "rewrapping" | "complete" | "stalled";

export interface ShardRotation {
  /** The KEK version new keys are wrapped under (the first entry of EVENTLINE_KEKS). */
  current: string;
  state: RotationState;
  /** Active keys not yet wrapped by `current`. */
  remaining: number;
  /** Keys rewrapped to `current` so far (by the alarm and by manual rewrap steps). */
  rewrapped: number;
  /** Alarm runs of this rotation. */
  runs: number;
  /** When this shard began rewrapping to `current` (ms since the epoch); null when it had nothing to do. */
  startedAt: number | null;
  completedAt: number | null;
  /** Why a stalled rotation stopped. */
  error: string | null;
}

/** What the rotation functions work on: the vault's storage and ring, and the object's alarm and audit log. */
export interface RotationHost {
  sql: SqlStorage;
  keyring: Keyring;
  /** Rewraps up to `limit` keys under the current KEK (rewrapDataKeys over the same vault). */
  rewrap(limit: number): Promise<{ rewrapped: number; remaining: number }>;
  /** Arms the object's alarm for `at`, unless it is due earlier already. */
  arm(at: number): Promise<void>;
  audit(record: Pick<AuditRecord, "outcome" | "reason" | "details">): Promise<void>;
  now(): number;
}

type RotationRow = {
  target: string;
  started_at: number;
  rewrapped: number;
  runs: number;
  from_versions: string;
  completed_at: number | null;
  error: string | null;
};

export function createRotationSchema(sql: SqlStorage): void {
  // One row: the latest rotation (the audit log keeps the history).
  sql.exec(`CREATE TABLE IF NOT EXISTS kek_rotation (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    target        TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    rewrapped     INTEGER NOT NULL,
    runs          INTEGER NOT NULL,
    from_versions TEXT NOT NULL,
    completed_at  INTEGER,
    error         TEXT,
    -- 'kek': keys under a version the ring lacks (cleared once it is back); 'unwrap': keys that do not unwrap (retried)
    stalled_on    TEXT
  )`);
}

/** Active keys not wrapped by `current`, per KEK version. */
function staleByVersion(sql: SqlStorage, current: string): Record<string, number> {
  const rows = sql
    .exec<{ kek_version: string; n: number }>(
      `SELECT kek_version, COUNT(*) AS n FROM data_keys WHERE wrapped IS NOT NULL AND kek_version <> ? GROUP BY kek_version`,
      current,
    )
    .toArray();
  return Object.fromEntries(rows.map((r) => [r.kek_version, r.n]));
}

const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);

function readRow(sql: SqlStorage): RotationRow | null {
  return (
    sql
      .exec<RotationRow>(`SELECT target, started_at, rewrapped, runs, from_versions, completed_at, error FROM kek_rotation`)
      .toArray()[0] ?? null
  );
}

/** The row of the rotation to `current`, begun now when the last one was to another version or is complete. */
function openRow(host: RotationHost, stale: Record<string, number>): RotationRow {
  const row = readRow(host.sql);
  if (row !== null && row.target === host.keyring.current && row.completed_at === null) return row;
  const fresh: RotationRow = {
    target: host.keyring.current,
    started_at: host.now(),
    rewrapped: 0,
    runs: 0,
    from_versions: JSON.stringify(stale),
    completed_at: null,
    error: null,
  };
  host.sql.exec(
    `INSERT OR REPLACE INTO kek_rotation (id, target, started_at, rewrapped, runs, from_versions, completed_at, error)
     VALUES (1, ?, ?, 0, 0, ?, NULL, NULL)`,
    fresh.target,
    fresh.started_at,
    fresh.from_versions,
  );
  return fresh;
}

function recordProgress(host: RotationHost, rewrapped: number, runs: number): void {
  host.sql.exec(
    `UPDATE kek_rotation SET rewrapped = rewrapped + ?, runs = runs + ?,
       error = CASE WHEN ? > 0 THEN NULL ELSE error END, stalled_on = CASE WHEN ? > 0 THEN NULL ELSE stalled_on END`,
    rewrapped,
    runs,
    rewrapped,
    rewrapped,
  );
}

function details(row: RotationRow, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    current: row.target,
    rewrapped: row.rewrapped,
    runs: row.runs,
    from: JSON.parse(row.from_versions) as unknown,
    startedAt: new Date(row.started_at).toISOString(),
    ...extra,
  };
}

/** Marks an open rotation to the current KEK complete (nothing remains) and audits it once. */
async function complete(host: RotationHost): Promise<void> {
  const row = readRow(host.sql);
  if (row === null || row.target !== host.keyring.current || row.completed_at !== null) return;
  const at = host.now();
  host.sql.exec(`UPDATE kek_rotation SET completed_at = ?, error = NULL, stalled_on = NULL`, at);
  await host.audit({ outcome: "success", details: details(row, { remaining: 0, completedAt: new Date(at).toISOString() }) });
}

/** Stops the rotation on `error`: recorded, and audited once per distinct reason (the cron re-checks it every time). */
async function stall(host: RotationHost, stale: Record<string, number>, error: string, on: "kek" | "unwrap"): Promise<void> {
  const row = openRow(host, stale);
  if (row.error === error) return;
  host.sql.exec(`UPDATE kek_rotation SET error = ?, stalled_on = ?`, error, on);
  await host.audit({ outcome: "failure", reason: error, details: details({ ...row, error }, { remaining: total(stale) }) });
}

/** Stale keys under versions the ring no longer holds: nothing can rewrap them until those versions are back. */
function missingVersions(host: RotationHost, stale: Record<string, number>): string | null {
  const missing = Object.keys(stale).filter((v) => !host.keyring.versions.includes(v));
  if (missing.length === 0) return null;
  return (
    `${missing.map((v) => `${stale[v]} data key(s) are wrapped under KEK version ${v}`).join(", ")}, which EVENTLINE_KEKS no longer holds: ` +
    "put it back (after the current version) and the rotation resumes"
  );
}

/** This shard's rotation as status and metrics show it. */
export function rotationView(sql: SqlStorage, current: string): ShardRotation {
  const remaining = total(staleByVersion(sql, current));
  const row = readRow(sql);
  const mine = row !== null && row.target === current ? row : null;
  const state: RotationState = remaining === 0 ? "complete" : (mine?.error ?? null) !== null ? "stalled" : "rewrapping";
  return {
    current,
    state,
    remaining,
    rewrapped: mine?.rewrapped ?? 0,
    runs: mine?.runs ?? 0,
    startedAt: mine?.started_at ?? null,
    completedAt: remaining === 0 ? (mine?.completed_at ?? null) : null,
    error: state === "stalled" ? (mine?.error ?? null) : null,
  };
}

/**
 * Looks whether keys need rewrapping under the current KEK and arms the alarm if so (or records
 * why it cannot); completes a rotation that a manual rewrap finished. Cheap when there is nothing
 * to do: one count over the shard's keys.
 */
export async function checkRotation(host: RotationHost): Promise<ShardRotation> {
  const stale = staleByVersion(host.sql, host.keyring.current);
  if (total(stale) === 0) {
    await complete(host);
  } else {
    const missing = missingVersions(host, stale);
    if (missing === null) {
      // The missing versions are back: no longer stalled. (A stall on keys that do not unwrap stays
      // until a run gets past them, so it is not audited again at every check.)
      host.sql.exec(
        `UPDATE kek_rotation SET error = NULL, stalled_on = NULL WHERE target = ? AND stalled_on = 'kek'`,
        host.keyring.current,
      );
      // The first run after the same pause as between runs: the call that noticed is answered first.
      await host.arm(host.now() + ROTATION_PAUSE_MS);
    } else await stall(host, stale, missing, "kek");
  }
  return rotationView(host.sql, host.keyring.current);
}

/**
 * One alarm run: rewraps up to ROTATION_CHUNK keys, then arms the next run after ROTATION_PAUSE_MS
 * while keys remain. Stops (stalled, audited) when keys are wrapped under a version the ring
 * lacks or a chunk makes no progress (keys that fail to unwrap); the next check retries.
 */
export async function runRotation(host: RotationHost): Promise<ShardRotation> {
  const stale = staleByVersion(host.sql, host.keyring.current);
  if (total(stale) === 0) {
    await complete(host);
    return rotationView(host.sql, host.keyring.current);
  }
  const missing = missingVersions(host, stale);
  if (missing !== null) {
    await stall(host, stale, missing, "kek");
    return rotationView(host.sql, host.keyring.current);
  }
  openRow(host, stale);
  let step: { rewrapped: number; remaining: number };
  try {
    step = await host.rewrap(ROTATION_CHUNK);
  } catch (err) {
    if (!(err instanceof KeyringError)) throw err;
    recordProgress(host, 0, 1);
    await stall(host, stale, err.message, "unwrap");
    return rotationView(host.sql, host.keyring.current);
  }
  recordProgress(host, step.rewrapped, 1);
  if (step.remaining === 0) await complete(host);
  else if (step.rewrapped === 0) {
    await stall(
      host,
      staleByVersion(host.sql, host.keyring.current),
      `${step.remaining} data key(s) could not be rewrapped: they do not unwrap (the log names them: "data key failed to unwrap"); ` +
        "their fields are unreadable already: erase their subjects to let the rotation complete",
      "unwrap",
    );
  } else await host.arm(host.now() + ROTATION_PAUSE_MS);
  return rotationView(host.sql, host.keyring.current);
}

/** A manual rewrap step (`POST /v1/encryption/rewrap`): counted in the rotation, and completing it when nothing remains. */
export async function rewrapNow(host: RotationHost, limit: number): Promise<{ rewrapped: number; remaining: number }> {
  const stale = staleByVersion(host.sql, host.keyring.current);
  const step = await host.rewrap(limit);
  if (step.rewrapped > 0) {
    openRow(host, stale);
    recordProgress(host, step.rewrapped, 0);
  }
  if (step.remaining === 0) await complete(host);
  return step;
}

/** Sets the object's alarm for `at` unless one is due earlier. */
export async function armAlarm(storage: Pick<DurableObjectStorage, "getAlarm" | "setAlarm">, at: number): Promise<void> {
  const due = await storage.getAlarm();
  if (due === null || due > at) await storage.setAlarm(at);
}

/** The audit sink of a shard's rotation records: the platform's audit topic, as the system actor. */
export function rotationAudit(env: Env, shard: string): RotationHost["audit"] {
  const log = createLogger({ component: "key-vault", shard });
  return (record) =>
    writeAudit(
      env,
      config,
      log,
      {
        action: "keys.rewrap",
        resource: "kek",
        actor: ROTATION_ACTOR,
        requestId: crypto.randomUUID(),
        ...record,
        details: { shard, automatic: true, ...record.details },
      },
      newTraceparent(),
    );
}

/** checkRotation in the background (a call that meets a new EVENTLINE_KEKS): a failure is logged, the cron tries again. */
export function noticeRotation(host: RotationHost, shard: string): void {
  checkRotation(host).catch((err: unknown) => {
    createLogger({ component: "key-vault", shard }).error("KEK rotation check failed; the next check retries", { error: err });
  });
}
