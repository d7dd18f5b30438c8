import { DurableObject } from "cloudflare:workers";
import { createLogger } from "../sdk/logger";
import { type Keyring, KeyringError, parseKeyring, vaultShardOf } from "../shared/security/keyring";
import {
  armAlarm,
  checkRotation,
  createRotationSchema,
  noticeRotation,
  type RotationHost,
  rewrapNow,
  rotationAudit,
  runRotation,
  type ShardRotation,
} from "./key-rotation";

/**
 * The data keys of field encryption (shared/security/fields.ts): one active AES key per subject,
 * stored only wrapped under a KEK from `EVENTLINE_KEKS` (shared/security/keyring.ts). 16 shards,
 * named `shard-<n>` with n = FNV-1a-32(subject) mod 16 (`vaultShardOf`); a key id
 * `<n>.<32 hex>` names its shard, so readers find a key from the id an event carries.
 *
 * Shredding a subject NULLs the wrapped bytes of all its keys: every field ever encrypted for it
 * becomes unreadable, for good, while the events themselves stay untouched in the logs and the
 * archive. The next event of the subject gets a new key. (Durable Object storage keeps
 * point-in-time recovery history for a while: to be sure a shredded key cannot come back from
 * it, rotate the KEK and drop the old version once that window has passed.)
 *
 * The logic lives in the exported functions below, over the object's storage and a Keyring, so
 * tests can drive them inside the object (runInDurableObject) with keyrings of their own; the
 * RPC methods of the class are thin wrappers that use the ring of `env.EVENTLINE_KEKS`.
 */

/** Everything the vault functions work on. */
export interface Vault {
  storage: Pick<DurableObjectStorage, "sql" | "transactionSync">;
  keyring: Keyring;
  /** Unwrapped keys of active (non-shredded) keys only; shredding removes them. */
  cache: KeyCache;
}

export interface DataKey {
  kid: string;
  /** The 32 raw bytes of the data key. */
  key: ArrayBuffer;
}

export interface VaultStatus {
  /** Active (not shredded) keys. */
  keys: number;
  /** Shredded keys (their rows stay, without key material, as a record of the shred). */
  shredded: number;
  /** Active keys per KEK version wrapping them: a rotation is done when only the current one is left. */
  byKekVersion: Record<string, number>;
}

const DATA_KEY_BYTES = 32;
/** Get-or-create retries when a concurrent create or shred changed the subjects' keys meanwhile. */
const MAX_ATTEMPTS = 5;
export const DEFAULT_REWRAP_LIMIT = 500;
const MAX_REWRAP_LIMIT = 10_000;
const log = createLogger({ component: "key-vault" });

type KeyRow = { kid: string; subject: string; kek_version: string; wrapped: ArrayBuffer | null };

/** A bounded map of unwrapped keys (oldest entries leave first). */
export class KeyCache {
  private readonly keys = new Map<string, Uint8Array<ArrayBuffer>>();
  constructor(private readonly max = 10_000) {}
  get(kid: string): Uint8Array<ArrayBuffer> | undefined {
    return this.keys.get(kid);
  }
  set(kid: string, key: Uint8Array<ArrayBuffer>): void {
    this.keys.delete(kid);
    this.keys.set(kid, key);
    if (this.keys.size > this.max) {
      const oldest = this.keys.keys().next();
      if (oldest.done !== true) this.keys.delete(oldest.value);
    }
  }
  delete(kid: string): void {
    this.keys.get(kid)?.fill(0);
    this.keys.delete(kid);
  }
  get size(): number {
    return this.keys.size;
  }
}

export function createVaultSchema(sql: SqlStorage): void {
  sql.exec(`CREATE TABLE IF NOT EXISTS data_keys (
    kid         TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    kek_version TEXT NOT NULL,
    wrapped     BLOB,
    created_at  INTEGER NOT NULL,
    shredded_at INTEGER
  )`);
  // At most one active key per subject, whatever interleaves.
  sql.exec(`CREATE UNIQUE INDEX IF NOT EXISTS data_keys_active ON data_keys (subject) WHERE shredded_at IS NULL`);
  sql.exec(`CREATE INDEX IF NOT EXISTS data_keys_subject ON data_keys (subject)`);
}

/** Additional data of a wrapped key: it only unwraps as the key of this id and subject. */
function wrapAad(kid: string, subject: string): string {
  return `eventline.dek.v1\u0000${kid}\u0000${subject}`;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function copyBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer;
}

function checkStrings(values: unknown, what: string): string[] {
  // Well-formed: SQLite would store a lone surrogate's bytes, which read back as another string.
  if (!Array.isArray(values) || !values.every((v) => typeof v === "string" && v !== "" && v.isWellFormed())) {
    throw new TypeError(`${what} must be an array of non-empty, well-formed strings`);
  }
  return [...new Set(values as string[])];
}

/** Active keys of the subjects (one query, whatever their number). */
function activeKeys(sql: SqlStorage, subjects: readonly string[]): Map<string, KeyRow> {
  const rows = sql
    .exec<KeyRow>(
      `SELECT kid, subject, kek_version, wrapped FROM data_keys
       WHERE shredded_at IS NULL AND subject IN (SELECT value FROM json_each(?))`,
      JSON.stringify(subjects),
    )
    .toArray();
  return new Map(rows.map((row) => [row.subject, row]));
}

async function unwrapRow(vault: Vault, row: KeyRow): Promise<Uint8Array<ArrayBuffer>> {
  const cached = vault.cache.get(row.kid);
  if (cached !== undefined) return cached;
  if (row.wrapped === null) throw new Error(`data key ${row.kid} is shredded`);
  return vault.keyring.unwrap(row.kek_version, new Uint8Array(row.wrapped), wrapAad(row.kid, row.subject));
}

/**
 * Each subject's active data key, created (and wrapped under the current KEK) when it has none.
 * Creation is atomic: the check and the inserts run in one synchronous transaction after all
 * crypto is done, and start over if a concurrent call created or shredded one of the subjects'
 * keys in between, so a subject never has two active keys and a shredded key is never returned.
 */
export async function getOrCreateDataKeys(vault: Vault, subjects: readonly string[]): Promise<Record<string, DataKey>> {
  const wanted = checkStrings(subjects, "subjects");
  const { sql } = vault.storage;
  for (let attempt = 1; ; attempt++) {
    const seen = activeKeys(sql, wanted);
    const fresh = new Map<string, { kid: string; raw: Uint8Array<ArrayBuffer>; kekVersion: string; wrapped: Uint8Array }>();
    const raws = new Map<string, Uint8Array<ArrayBuffer>>();
    await Promise.all([
      ...wanted
        .filter((subject) => !seen.has(subject))
        .map(async (subject) => {
          const raw = crypto.getRandomValues(new Uint8Array(DATA_KEY_BYTES));
          const kid = `${vaultShardOf(subject)}.${hex(crypto.getRandomValues(new Uint8Array(16)))}`;
          fresh.set(subject, { kid, raw, ...(await vault.keyring.wrap(raw, wrapAad(kid, subject))) });
        }),
      ...[...seen.values()].map(async (row) => {
        raws.set(row.kid, await unwrapRow(vault, row));
      }),
    ]);
    // Synchronous from here: nothing else runs in the object until it returns.
    const result = vault.storage.transactionSync(() => {
      const now = Date.now();
      const current = activeKeys(sql, wanted);
      const out: Record<string, { kid: string; raw: Uint8Array<ArrayBuffer> }> = {};
      for (const subject of wanted) {
        const before = seen.get(subject);
        const row = current.get(subject);
        const created = fresh.get(subject);
        if (before !== undefined) {
          const raw = raws.get(before.kid);
          if (row?.kid !== before.kid || raw === undefined) return null;
          out[subject] = { kid: before.kid, raw };
        } else if (row !== undefined || created === undefined) {
          return null;
        } else {
          sql.exec(
            `INSERT INTO data_keys (kid, subject, kek_version, wrapped, created_at) VALUES (?, ?, ?, ?, ?)`,
            created.kid,
            subject,
            created.kekVersion,
            created.wrapped,
            now,
          );
          out[subject] = { kid: created.kid, raw: created.raw };
        }
      }
      return out;
    });
    if (result !== null) {
      const keys: Record<string, DataKey> = {};
      for (const [subject, { kid, raw }] of Object.entries(result)) {
        vault.cache.set(kid, raw);
        keys[subject] = { kid, key: copyBuffer(raw) };
      }
      return keys;
    }
    if (attempt >= MAX_ATTEMPTS) throw new Error("data keys kept changing under concurrent creates or shreds; try again");
  }
}

/** The raw bytes of each key id: null when the id is unknown, its key is shredded or does not unwrap (logged). */
export async function findDataKeys(vault: Vault, kids: readonly string[]): Promise<Record<string, ArrayBuffer | null>> {
  const wanted = checkStrings(kids, "kids");
  const { sql } = vault.storage;
  const query = `SELECT kid, subject, kek_version, wrapped FROM data_keys
    WHERE wrapped IS NOT NULL AND kid IN (SELECT value FROM json_each(?))`;
  const rows = sql.exec<KeyRow>(query, JSON.stringify(wanted)).toArray();
  const raws = new Map<string, Uint8Array<ArrayBuffer>>();
  await Promise.all(
    rows.map(async (row) => {
      try {
        raws.set(row.kid, await unwrapRow(vault, row));
      } catch (err) {
        // One key that does not unwrap (its KEK version is gone, its wrapped bytes or subject changed)
        // makes its own fields undecryptable, as a shred would; it must not fail every read that meets it.
        if (!(err instanceof KeyringError)) throw err;
        log.warn("data key failed to unwrap: its fields read as undecryptable", { kid: row.kid, kekVersion: row.kek_version, error: err });
      }
    }),
  );
  // A shred may have run while keys were unwrapped: only keys still active now are returned or cached.
  const active = new Set(
    sql
      .exec<{ kid: string }>(`SELECT kid FROM (${query})`, JSON.stringify(wanted))
      .toArray()
      .map((r) => r.kid),
  );
  const out: Record<string, ArrayBuffer | null> = {};
  for (const kid of wanted) {
    const raw = raws.get(kid);
    if (raw === undefined || !active.has(kid)) {
      out[kid] = null;
      continue;
    }
    vault.cache.set(kid, raw);
    out[kid] = copyBuffer(raw);
  }
  return out;
}

/** Destroys the key material of every key of the subject (a crypto-shred); `destroyed` counts keys that still had it. */
export function shredSubject(vault: Pick<Vault, "storage" | "cache">, subject: string): { destroyed: number } {
  const [wanted] = checkStrings([subject], "subject");
  const shredded = vault.storage.transactionSync(() =>
    vault.storage.sql
      .exec<{ kid: string }>(
        `UPDATE data_keys SET wrapped = NULL, shredded_at = ? WHERE subject = ? AND shredded_at IS NULL RETURNING kid`,
        Date.now(),
        wanted,
      )
      .toArray(),
  );
  for (const { kid } of shredded) vault.cache.delete(kid);
  return { destroyed: shredded.length };
}

/**
 * Rewraps up to `limit` active keys not wrapped under the current KEK (a KEK rotation; events
 * are untouched, as a key's raw bytes never change). Call until `remaining` is 0, then the old
 * KEK versions can leave EVENTLINE_KEKS. Keys that do not unwrap are skipped (logged) and stay in
 * `remaining`; the automatic rotation (key-rotation.ts) reports them as a stall.
 */
export async function rewrapDataKeys(vault: Vault, limit = DEFAULT_REWRAP_LIMIT): Promise<{ rewrapped: number; remaining: number }> {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_REWRAP_LIMIT) {
    throw new RangeError(`limit must be an integer from 1 to ${MAX_REWRAP_LIMIT}`);
  }
  const { sql } = vault.storage;
  const current = vault.keyring.current;
  const stale = sql
    .exec<KeyRow>(
      `SELECT kid, subject, kek_version, wrapped FROM data_keys
       WHERE wrapped IS NOT NULL AND kek_version <> ? ORDER BY created_at, kid LIMIT ?`,
      current,
      limit,
    )
    .toArray();
  const missing = [...new Set(stale.map((row) => row.kek_version))].filter((v) => !vault.keyring.versions.includes(v));
  if (missing.length > 0) {
    throw new KeyringError(
      `cannot rewrap: keys are wrapped under KEK version(s) ${missing.join(", ")}, which EVENTLINE_KEKS no longer holds`,
    );
  }
  const rewrapped = (
    await Promise.all(
      stale.map(async (row) => {
        try {
          const raw = await unwrapRow(vault, row);
          return [{ row, ...(await vault.keyring.wrap(raw, wrapAad(row.kid, row.subject))) }];
        } catch (err) {
          // A key that does not unwrap is left as it is (its fields are unreadable already) and
          // counts as remaining; it must not hold up the rotation of the others.
          if (!(err instanceof KeyringError)) throw err;
          log.warn("data key failed to unwrap: not rewrapped", { kid: row.kid, kekVersion: row.kek_version, error: err });
          return [];
        }
      }),
    )
  ).flat();
  const done = vault.storage.transactionSync(() => {
    let count = 0;
    for (const { row, kekVersion, wrapped } of rewrapped) {
      // Guarded: a key shredded (or rewrapped) meanwhile is left as it is now.
      count += sql
        .exec(
          `UPDATE data_keys SET kek_version = ?, wrapped = ? WHERE kid = ? AND kek_version = ? AND wrapped IS NOT NULL RETURNING kid`,
          kekVersion,
          wrapped,
          row.kid,
          row.kek_version,
        )
        .toArray().length;
    }
    return count;
  });
  const remaining = sql
    .exec<{ n: number }>(`SELECT COUNT(*) AS n FROM data_keys WHERE wrapped IS NOT NULL AND kek_version <> ?`, current)
    .one().n;
  return { rewrapped: done, remaining };
}

export function vaultStatus(sql: SqlStorage): VaultStatus {
  const status: VaultStatus = { keys: 0, shredded: 0, byKekVersion: {} };
  const rows = sql
    .exec<{ kek_version: string; active: number; n: number }>(
      `SELECT kek_version, wrapped IS NOT NULL AS active, COUNT(*) AS n FROM data_keys GROUP BY kek_version, active`,
    )
    .toArray();
  for (const { kek_version, active, n } of rows) {
    if (active) {
      status.keys += n;
      status.byKekVersion[kek_version] = (status.byKekVersion[kek_version] ?? 0) + n;
    } else {
      status.shredded += n;
    }
  }
  return status;
}

export class KeyVault extends DurableObject<Env> {
  private readonly cache = new KeyCache();
  private ring: { text: string; keyring: Keyring } | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      createVaultSchema(ctx.storage.sql);
      createRotationSchema(ctx.storage.sql);
    });
  }

  /** The vault over this object's storage and the ring of EVENTLINE_KEKS (parsed once per value). */
  private vault(): Vault {
    const text = this.env.EVENTLINE_KEKS;
    const unseen = this.ring === undefined || this.ring.text !== text;
    if (this.ring === undefined || this.ring.text !== text) this.ring = { text, keyring: parseKeyring(text) };
    const vault = { storage: this.ctx.storage, keyring: this.ring.keyring, cache: this.cache };
    // A value not seen before (the first call since a deploy restarted the object, or a new secret):
    // keys still wrapped under older versions get rewrapped by the alarm (key-rotation.ts).
    if (unseen) noticeRotation(this.rotationHost(vault), this.shard);
    return vault;
  }

  private get shard(): string {
    return this.ctx.id.name ?? this.ctx.id.toString();
  }

  /** The KEK rotation's view of this object (key-rotation.ts). */
  private rotationHost(vault = this.vault()): RotationHost {
    return {
      sql: this.ctx.storage.sql,
      keyring: vault.keyring,
      rewrap: (limit) => rewrapDataKeys(vault, limit),
      arm: (at) => armAlarm(this.ctx.storage, at),
      audit: rotationAudit(this.env, this.shard),
      now: Date.now,
    };
  }

  /** Each subject's active data key, created under the current KEK when it has none. */
  async dataKeys(subjects: string[]): Promise<Record<string, DataKey>> {
    return getOrCreateDataKeys(this.vault(), subjects);
  }

  /** Raw keys by id; null when the id is unknown or the key is shredded. */
  async keysById(kids: string[]): Promise<Record<string, ArrayBuffer | null>> {
    return findDataKeys(this.vault(), kids);
  }

  /** Crypto-shreds the subject: its encrypted fields become unreadable; its next event gets a new key. */
  async shred(subject: string): Promise<{ destroyed: number }> {
    // Needs no KEK: an erasure request is honoured even while EVENTLINE_KEKS is misconfigured.
    return shredSubject({ storage: this.ctx.storage, cache: this.cache }, subject);
  }

  /** Rewraps up to `limit` keys under the current KEK; call until `remaining` is 0 (the alarm does it too). */
  async rewrap(limit = DEFAULT_REWRAP_LIMIT): Promise<{ rewrapped: number; remaining: number }> {
    return rewrapNow(this.rotationHost(), limit);
  }

  /** The keys and KEK rotation of this shard, after arming the rotation if keys need it (cron, status, metrics). */
  async rotation(): Promise<{ keys: VaultStatus; rotation: ShardRotation }> {
    const rotation = await checkRotation(this.rotationHost());
    return { keys: vaultStatus(this.ctx.storage.sql), rotation };
  }

  /** One run of the KEK rotation: a bounded chunk of keys rewrapped, the next run armed while keys remain. */
  override async alarm(): Promise<void> {
    await runRotation(this.rotationHost());
  }

  async status(): Promise<VaultStatus> {
    return vaultStatus(this.ctx.storage.sql);
  }
}
