import { desc, eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { apiKeys } from "../../../shared/db/schema";
import { sha256Hex } from "../../../shared/json";
import { toBase64Url } from "../../../shared/security/fields";

/**
 * API keys: `evl_<id>_<secret>`, where `id` (12 chars of a-z0-9) is public — it is how a key is
 * listed, shown in audit records and revoked — and `secret` is 32 random bytes (base64url). Only
 * the SHA-256 of the whole key is stored; the key itself is shown once, when it is created.
 */

export const API_KEY_PREFIX = "evl_";
const KEY_SHAPE = /^evl_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
const ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

export interface ApiKeyRecord {
  id: string;
  name: string;
  grants: string[];
  tenant: string | null;
  createdBy: string;
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  revokedBy: string | null;
  rotatedAt: Date | null;
  /** Until when the secret replaced by the last rotation is still accepted (null: none is). */
  previousSecretExpiresAt: Date | null;
}

function randomId(): string {
  // 36^12 ≈ 2^62; rejection sampling keeps the characters uniform.
  let id = "";
  while (id.length < 12) {
    for (const b of crypto.getRandomValues(new Uint8Array(16))) {
      if (b < 252 && id.length < 12) id += ID_ALPHABET[b % 36];
    }
  }
  return id;
}

/** The key id of a well-formed API key string, else undefined (nothing about the secret is looked at). */
export function apiKeyId(token: string): string | undefined {
  return KEY_SHAPE.exec(token)?.[1];
}

export function looksLikeApiKey(token: string): boolean {
  return token.startsWith(API_KEY_PREFIX);
}

/** Constant-time equality of two hex digests of the same length. */
export function digestsEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  const enc = new TextEncoder();
  return crypto.subtle.timingSafeEqual(enc.encode(a), enc.encode(b));
}

function toRecord(row: typeof apiKeys.$inferSelect): ApiKeyRecord {
  return {
    id: row.id,
    name: row.name,
    grants: JSON.parse(row.grants) as string[],
    tenant: row.tenant,
    createdBy: row.createdBy,
    createdAt: row.createdAt,
    expiresAt: row.expiresAt,
    revokedAt: row.revokedAt,
    revokedBy: row.revokedBy,
    rotatedAt: row.rotatedAt,
    previousSecretExpiresAt: row.previousSecretHash === null ? null : row.previousSecretUntil,
  };
}

/** A fresh key string for `id`: the id is public, the 256-bit secret is not. */
function newKeyString(id: string): string {
  return `${API_KEY_PREFIX}${id}_${toBase64Url(crypto.getRandomValues(new Uint8Array(32)))}`;
}

/** The principal id of an API key, as `created_by` of the keys it mints names it. */
export const keyPrincipal = (id: string) => `key:${id}`;

export interface NewApiKey {
  name: string;
  grants: string[];
  tenant?: string | undefined;
  expiresAt?: Date | undefined;
  createdBy: string;
}

/** The key that was to mint another was revoked or expired before the new key was stored. */
export class CreatorInactiveError extends Error {
  override readonly name = "CreatorInactiveError";
}

/**
 * Creates a key; returns its record and the key string (never stored, never shown again).
 *
 * A key minted by a key (`createdBy` `key:<id>`) is inserted only if, at that moment, its creator
 * is neither revoked nor expired and expires no earlier than it (one statement, so atomic with
 * a concurrent revocation): a creator still cached as valid in some isolate after its revocation
 * cannot mint a key that the revocation's cascade would miss. Else CreatorInactiveError.
 */
export async function createApiKey(db: D1Database, input: NewApiKey, now = Date.now()): Promise<{ record: ApiKeyRecord; key: string }> {
  const id = randomId();
  const key = newKeyString(id);
  const row = {
    id,
    name: input.name,
    secretHash: await sha256Hex(key),
    grants: JSON.stringify(input.grants),
    tenant: input.tenant ?? null,
    createdBy: input.createdBy,
    createdAt: new Date(now),
    expiresAt: input.expiresAt ?? null,
    revokedAt: null,
    revokedBy: null,
    rotatedAt: null,
    previousSecretHash: null,
    previousSecretUntil: null,
  };
  const creator = /^key:([a-z0-9]{12})$/.exec(input.createdBy)?.[1];
  if (creator === undefined) {
    await drizzle(db).insert(apiKeys).values(row);
  } else {
    const expires = row.expiresAt?.getTime() ?? null;
    const inserted = await db
      .prepare(
        `INSERT INTO api_keys (id, name, secret_hash, grants, tenant, created_by, created_at, expires_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
         WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = ?9 AND revoked_at IS NULL
           AND (expires_at IS NULL OR (expires_at > ?7 AND ?8 IS NOT NULL AND ?8 <= expires_at)))`,
      )
      .bind(id, row.name, row.secretHash, row.grants, row.tenant, row.createdBy, now, expires, creator)
      .run();
    if (inserted.meta.changes !== 1)
      throw new CreatorInactiveError(`API key ${creator} is revoked or expired, or expires before the new key`);
  }
  return { record: toRecord(row), key };
}

export async function listApiKeys(db: D1Database): Promise<ApiKeyRecord[]> {
  const rows = await drizzle(db).select().from(apiKeys).orderBy(desc(apiKeys.createdAt)).limit(1000);
  return rows.map(toRecord);
}

export async function getApiKey(db: D1Database, id: string): Promise<ApiKeyRecord | undefined> {
  const row = await drizzle(db).select().from(apiKeys).where(eq(apiKeys.id, id)).get();
  return row === undefined ? undefined : toRecord(row);
}

/**
 * Revokes a key and every key it minted, transitively (idempotent: a key already revoked keeps
 * its first revocation's time and actor). One statement walks the `created_by` chain and revokes
 * what is still live, so a key minted concurrently is either caught here or refused by
 * createApiKey. Returns the key and the ids this call revoked besides it (oldest first).
 */
export async function revokeApiKey(
  db: D1Database,
  id: string,
  by: string,
  now = Date.now(),
): Promise<{ record: ApiKeyRecord; cascade: string[] } | undefined> {
  if ((await getApiKey(db, id)) === undefined) return undefined;
  const { results } = await db
    .prepare(
      `WITH RECURSIVE tree(id) AS (
         SELECT ?1 UNION SELECT k.id FROM api_keys k JOIN tree t ON k.created_by = 'key:' || t.id
       )
       UPDATE api_keys SET revoked_at = ?2, revoked_by = ?3
       WHERE id IN (SELECT id FROM tree) AND revoked_at IS NULL
       RETURNING id, created_at`,
    )
    .bind(id, now, by)
    .all<{ id: string; created_at: number }>();
  const cascade = results
    .filter((r) => r.id !== id)
    .sort((a, b) => a.created_at - b.created_at || a.id.localeCompare(b.id))
    .map((r) => r.id);
  for (const revoked of [id, ...cascade]) forgetVerified(revoked);
  const record = await getApiKey(db, id);
  return record === undefined ? undefined : { record, cascade };
}

/** Longest grace period for a rotated-out secret (7 days), and the default (24 h). */
export const MAX_ROTATION_GRACE_SECONDS = 7 * 86_400;
export const DEFAULT_ROTATION_GRACE_SECONDS = 86_400;

export type RotateResult = { ok: true; record: ApiKeyRecord; key: string } | { ok: false; reason: "not_found" | "revoked" | "expired" };

/**
 * Gives key `id` a new secret (same id, name, grants, tenant, expiry, lineage). The secret it had
 * stays valid for `graceSeconds` (0: stops at once); a secret rotated out before that one stops
 * now, since only one previous secret is kept. A revoked or expired key is not rotated.
 */
export async function rotateApiKey(db: D1Database, id: string, graceSeconds: number, now = Date.now()): Promise<RotateResult> {
  const key = newKeyString(id);
  const graceUntil = graceSeconds > 0 ? now + graceSeconds * 1000 : null;
  // SQLite evaluates every SET expression on the row as it was: previous_secret_hash gets the old secret_hash.
  const row = await db
    .prepare(
      `UPDATE api_keys SET secret_hash = ?1, rotated_at = ?2,
         previous_secret_hash = CASE WHEN ?3 IS NULL THEN NULL ELSE secret_hash END, previous_secret_until = ?3
       WHERE id = ?4 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)
       RETURNING id`,
    )
    .bind(await sha256Hex(key), now, graceUntil, id)
    .first<{ id: string }>();
  forgetVerified(id);
  const record = await getApiKey(db, id);
  if (record === undefined) return { ok: false, reason: "not_found" };
  if (row === null) return { ok: false, reason: record.revokedAt !== null ? "revoked" : "expired" };
  return { ok: true, record, key };
}

interface Verified {
  hash: string;
  /** The secret before the last rotation, while it is still accepted (else null). */
  previousHash: string | null;
  record: ApiKeyRecord;
  until: number;
}

/** Verified keys, per isolate, for `cacheSeconds` (revocation reaches other isolates within it). */
const verified = new Map<string, Verified>();

/** Bumped per key on revocation and rotation, so a lookup that raced with it cannot cache the old record. */
const generations = new Map<string, number>();

function forgetVerified(id: string): void {
  verified.delete(id);
  generations.set(id, (generations.get(id) ?? 0) + 1);
}

export type KeyCheck =
  | {
      ok: true;
      record: ApiKeyRecord;
      /** The secret presented is the one a rotation replaced, accepted until `record.previousSecretExpiresAt`. */
      previousSecret: boolean;
    }
  | { ok: false; reason: string; keyId?: string };

/** Which of the entry's secrets `hash` is (both compared in constant time), or undefined. */
function matchSecret(entry: Pick<Verified, "hash" | "previousHash">, hash: string): "current" | "previous" | undefined {
  const current = digestsEqual(entry.hash, hash);
  const previous = entry.previousHash !== null && digestsEqual(entry.previousHash, hash);
  return current ? "current" : previous ? "previous" : undefined;
}

/**
 * Checks an API key string: well-formed, known, secret matches (the current one, or the one the
 * last rotation replaced while its grace period runs), not revoked, not expired.
 */
export async function verifyApiKey(db: D1Database, token: string, cacheSeconds: number, now = Date.now()): Promise<KeyCheck> {
  const id = apiKeyId(token);
  if (id === undefined) return { ok: false, reason: "malformed API key" };
  const hash = await sha256Hex(token);
  const cached = verified.get(id);
  let entry: Verified | undefined;
  let match: "current" | "previous" | undefined;
  if (cached !== undefined && cached.until > now) {
    match = matchSecret(cached, hash);
    // No match: the key may have been rotated in another isolate since it was cached, so D1 decides.
    if (match !== undefined) entry = cached;
  }
  if (entry === undefined) {
    const generation = generations.get(id) ?? 0;
    const row = await drizzle(db).select().from(apiKeys).where(eq(apiKeys.id, id)).get();
    if (row === undefined) return { ok: false, reason: "API key not recognised", keyId: id };
    entry = { hash: row.secretHash, previousHash: row.previousSecretHash, record: toRecord(row), until: now + cacheSeconds * 1000 };
    match = matchSecret(entry, hash);
    if (match === undefined) return { ok: false, reason: "API key not recognised", keyId: id };
    if (cacheSeconds > 0 && (generations.get(id) ?? 0) === generation) verified.set(id, entry);
  }
  const { record } = entry;
  if (record.revokedAt !== null) return { ok: false, reason: "API key revoked", keyId: id };
  if (record.expiresAt !== null && record.expiresAt.getTime() <= now) return { ok: false, reason: "API key expired", keyId: id };
  if (match === "previous" && (record.previousSecretExpiresAt === null || record.previousSecretExpiresAt.getTime() <= now)) {
    return { ok: false, reason: "API key secret replaced by a rotation; its grace period is over", keyId: id };
  }
  return { ok: true, record, previousSecret: match === "previous" };
}
