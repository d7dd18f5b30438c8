import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { schemaUri } from "../../sdk/schema-uri";
import { invalidateSchemaCache } from "../../workers/platform/schemas/registry";
import { BASE, readAll, request, type StoredEvent } from "../helpers";

/**
 * Runtime schema versions for the dataschema tests, written straight into D1 `schema_versions`
 * (the table the registry's read side serves; the registration route is another change) and made
 * visible at once by dropping this isolate's registry cache, as a registration through this
 * isolate does.
 */
export async function registerVersion(topic: string, type: string, version: number, schema: Record<string, unknown>): Promise<void> {
  const text = JSON.stringify(schema);
  await env.DB.prepare(
    "INSERT INTO schema_versions (topic, type, version, schema, fingerprint, compatibility, created_by, created_at) VALUES (?, ?, ?, ?, ?, 'NONE', 'test', ?)",
  )
    .bind(topic, type, version, text, `${version}:${text}`, Date.now())
    .run();
  invalidateSchemaCache();
}

/** The URI the platform stamps for a version (tests reach it at BASE). */
export const uriOf = (topic: string, type: string, version: number) => schemaUri(BASE, topic, type, version);

/** Where a type's versions are listed, as error messages name it. */
export const listOf = (topic: string, type: string) =>
  `${BASE}/v1/topics/${encodeURIComponent(topic)}/types/${encodeURIComponent(type)}/schemas`;

/** A type name no other test uses (the test database lives for the whole file). */
export const freshType = (prefix: string) => `${prefix}.${crypto.randomUUID().slice(0, 8)}`;

/** The stored events with these ids, read back through GET …/partitions/{p}/events, in `ids` order. */
export async function storedById(topic: string, partitions: number, ids: string[]): Promise<StoredEvent[]> {
  const all = new Map<string, StoredEvent>();
  for (let p = 0; p < partitions; p++) for (const e of await readAll(topic, p)) all.set(e.id, e);
  return ids.map((id) => {
    const found = all.get(id);
    expect(found, `event ${id} is stored`).toBeDefined();
    return found as StoredEvent;
  });
}

/** Events stored per partition of a topic (its heads), to show a refusal stored nothing. */
export async function heads(topic: string): Promise<number[]> {
  const body = (await (await request(`/v1/topics/${topic}`)).json()) as { partitionStats: { head: number }[] };
  return body.partitionStats.map((p) => p.head);
}
