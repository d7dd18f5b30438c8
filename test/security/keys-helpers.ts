import { expect } from "vitest";
import { request } from "../helpers";

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
