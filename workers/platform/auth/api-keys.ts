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
  };
}

export interface NewApiKey {
  name: string;
  grants: string[];
  tenant?: string | undefined;
  expiresAt?: Date | undefined;
  createdBy: string;
}

/** Creates a key; returns its record and the key string (never stored, never shown again). */
export async function createApiKey(db: D1Database, input: NewApiKey): Promise<{ record: ApiKeyRecord; key: string }> {
  const id = randomId();
  const key = `${API_KEY_PREFIX}${id}_${toBase64Url(crypto.getRandomValues(new Uint8Array(32)))}`;
  const row = {
    id,
    name: input.name,
    secretHash: await sha256Hex(key),
    grants: JSON.stringify(input.grants),
    tenant: input.tenant ?? null,
    createdBy: input.createdBy,
    createdAt: new Date(),
    expiresAt: input.expiresAt ?? null,
    revokedAt: null,
    revokedBy: null,
  };
  await drizzle(db).insert(apiKeys).values(row);
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

/** Revokes a key (idempotent: the first revocation's time and actor are kept). */
export async function revokeApiKey(db: D1Database, id: string, by: string): Promise<ApiKeyRecord | undefined> {
  const existing = await getApiKey(db, id);
  if (existing === undefined) return undefined;
  if (existing.revokedAt === null) {
    await drizzle(db).update(apiKeys).set({ revokedAt: new Date(), revokedBy: by }).where(eq(apiKeys.id, id));
  }
  forgetVerified(id);
  return getApiKey(db, id);
}

/** Verified keys, per isolate, for `cacheSeconds` (revocation reaches other isolates within it). */
const verified = new Map<string, { hash: string; record: ApiKeyRecord; until: number }>();

/** Bumped per key on revocation, so a lookup that raced with it cannot cache the old record. */
const generations = new Map<string, number>();

function forgetVerified(id: string): void {
  verified.delete(id);
  generations.set(id, (generations.get(id) ?? 0) + 1);
}

export type KeyCheck = { ok: true; record: ApiKeyRecord } | { ok: false; reason: string; keyId?: string };

/** Checks an API key string: well-formed, known, secret matches, not revoked, not expired. */
export async function verifyApiKey(db: D1Database, token: string, cacheSeconds: number, now = Date.now()): Promise<KeyCheck> {
  const id = apiKeyId(token);
  if (id === undefined) return { ok: false, reason: "malformed API key" };
  const hash = await sha256Hex(token);
  const cached = verified.get(id);
  let record: ApiKeyRecord | undefined;
  if (cached !== undefined && cached.until > now) {
    if (!digestsEqual(cached.hash, hash)) return { ok: false, reason: "API key not recognised", keyId: id };
    record = cached.record;
  } else {
    const generation = generations.get(id) ?? 0;
    const row = await drizzle(db).select().from(apiKeys).where(eq(apiKeys.id, id)).get();
    if (row === undefined || !digestsEqual(row.secretHash, hash)) return { ok: false, reason: "API key not recognised", keyId: id };
    record = toRecord(row);
    if (cacheSeconds > 0 && (generations.get(id) ?? 0) === generation) {
      verified.set(id, { hash: row.secretHash, record, until: now + cacheSeconds * 1000 });
    }
  }
  if (record.revokedAt !== null) return { ok: false, reason: "API key revoked", keyId: id };
  if (record.expiresAt !== null && record.expiresAt.getTime() <= now) return { ok: false, reason: "API key expired", keyId: id };
  return { ok: true, record };
}
