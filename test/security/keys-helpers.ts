import { afterAll, expect } from "vitest";
import { sha256Hex } from "../../shared/json";
import { event, request, requestAs, STRUCTURED } from "../helpers";
import { auditSearch, expectNoSecrets } from "./helpers";

/** What the key routes (`/v1/keys…`) answer for one key, shared by the key test files. */
export interface ApiKeyView {
  id: string;
  prefix: string;
  name: string;
  grants: string[];
  tenant: string | null;
  createdBy: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  revokedBy: string | null;
  rotatedAt: string | null;
  previousSecretExpiresAt: string | null;
}

/** A key as created or rotated: its view and the key string, shown once. */
export interface ApiKeyWithSecret extends ApiKeyView {
  key: string;
}

/** `evl_<id>_<secret>`: the id and the 256-bit secret in base64url. */
export const KEY_SHAPE = /^evl_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
/** The timestamps of key views. */
export const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** GET /v1/keys/{id} as the admin (asserting the 200). */
export async function storedKey(id: string): Promise<ApiKeyView> {
  const res = await request(`/v1/keys/${id}`);
  expect(res.status).toBe(200);
  return (await res.json()) as ApiKeyView;
}

// ---------------------------------------------------------------------------------------------
// The API-key route tests (api-keys-*.test.ts)

/** A key as POST /v1/keys answers it. */
export type CreatedKey = ApiKeyWithSecret;

/**
 * Installs, in the calling test file, the check that no key string it created (nor the hash of
 * one) appears anywhere in the audit log, and returns the file's list of key strings with the
 * key maker that fills it.
 */
export function useKeySecrets(): { secrets: string[]; newKey(grants: string[], extra?: Record<string, unknown>): Promise<CreatedKey> } {
  /** Every key string created in the file (they must never leak). */
  const secrets: string[] = [];

  /** Creates a key as the admin and returns it (asserting the 201). */
  async function newKey(grants: string[], extra: Record<string, unknown> = {}): Promise<CreatedKey> {
    const res = await postKey({ name: `test-${crypto.randomUUID().slice(0, 8)}`, grants, ...extra });
    const text = await res.text();
    expect(res.status, text).toBe(201);
    const created = JSON.parse(text) as CreatedKey;
    secrets.push(created.key);
    return created;
  }

  afterAll(async () => {
    // No key string, nor the hash of one, anywhere in the audit log.
    const log = JSON.stringify(await auditSearch());
    expectNoSecrets(log, secrets);
    for (const key of secrets) expect(log.includes(await sha256Hex(key))).toBe(false);
  });

  return { secrets, newKey };
}

export function postKey(body: unknown, as?: string): Promise<Response> {
  const init = { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  return as === undefined ? request("/v1/keys", init) : requestAs(as, "/v1/keys", init);
}

export async function listKeys(): Promise<{ text: string; keys: ApiKeyView[] }> {
  const res = await request("/v1/keys");
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return { text, keys: (JSON.parse(text) as { keys: ApiKeyView[] }).keys };
}

export async function getKey(id: string): Promise<{ text: string; key: ApiKeyView }> {
  const res = await request(`/v1/keys/${id}`);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return { text, key: JSON.parse(text) as ApiKeyView };
}

export const produce = (topic: string, as: string, body: unknown = event()) =>
  requestAs(as, `/v1/topics/${topic}/events`, { method: "POST", headers: { "content-type": STRUCTURED }, body: JSON.stringify(body) });

/** An order event the orders topic's schema accepts (so only authorization can refuse it). */
export const orderPlaced = () =>
  event({
    type: "orders.placed",
    subject: `order-${crypto.randomUUID()}`,
    data: { orderId: "o-1", customerId: "c-1", currency: "EUR", lines: [{ sku: "sku-1", quantity: 1, unitPrice: 100 }] },
  });

/** The same id with another (well-formed) secret. */
export function withWrongSecret(key: string): string {
  const [, id, secret] = KEY_SHAPE.exec(key) ?? [];
  const other = (secret as string).startsWith("A") ? `B${(secret as string).slice(1)}` : `A${(secret as string).slice(1)}`;
  return `evl_${id}_${other}`;
}
