import { expect } from "vitest";
import { z } from "zod";
import shipped from "../../eventline.config";
import { defineConfig, type EventlineConfigInput } from "../../shared/config";
import { ADMIN_KEY as ADMIN } from "../helpers";
import { type TestApp, testApp } from "../security/helpers";

/*
 * Shared fixtures of the schema registry tests (test/integration/schemas-*.test.ts): a config
 * with config-declared versions (list form), a per-type compatibility override, a strictTypes
 * topic and the internal audit topic, and helpers to call the registry's routes as a given key.
 */

export const schemaConfig = defineConfig({
  ...(shipped as EventlineConfigInput),
  subscriptions: [],
  processors: [],
  topics: [
    {
      name: "shop",
      partitions: 2,
      retentionHours: 24,
      strictTypes: true,
      schemas: {
        // Versions 1 and 2, declared in config (closed objects: BACKWARD may add optional members).
        "order.placed": [z.strictObject({ id: z.string() }), z.strictObject({ id: z.string(), note: z.string().optional() })],
        "order.paid": z.object({ id: z.string(), amount: z.number() }),
      },
      typeCompatibility: { "order.noted": "NONE", "order.shipped": "FORWARD_TRANSITIVE" },
    },
    { name: "events", partitions: 2, retentionHours: 24 },
    { name: "audit", partitions: 1, retentionHours: 24, internal: true },
  ],
});

let app: TestApp | undefined;
/** The app of `schemaConfig`, built once per test file. */
export const schemaApp = (): TestApp => {
  app ??= testApp(schemaConfig);
  return app;
};

/** A request to the schema app, as the bootstrap admin unless `token` is given. */
export function call(path: string, init: RequestInit = {}, token?: string): Promise<Response> {
  const headers = new Headers(init.headers);
  if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
  else if (!headers.has("authorization")) headers.set("authorization", `Bearer ${ADMIN}`);
  return schemaApp().call(path, { ...init, headers });
}

export const typePath = (topic: string, type: string) => `/v1/topics/${encodeURIComponent(topic)}/types/${encodeURIComponent(type)}`;

export function postSchema(topic: string, type: string, schema: unknown, options: { dryRun?: boolean; token?: string } = {}) {
  const query = options.dryRun === undefined ? "" : `?dryRun=${options.dryRun}`;
  return call(
    `${typePath(topic, type)}/schemas${query}`,
    { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ schema }) },
    options.token,
  );
}

export function checkSchema(topic: string, type: string, schema: unknown, token?: string) {
  return call(
    `${typePath(topic, type)}/compatibility`,
    { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ schema }) },
    token,
  );
}

export interface Registered {
  created: boolean;
  version: number;
  dataschema: string;
  compatibility: string;
  checkedAgainst: number[];
}

export interface Verdict {
  compatible: boolean;
  version: number;
  registered: boolean;
  compatibility: string;
  checkedAgainst: number[];
  incompatibilities: { version: number; path: string; message: string; direction: string }[];
}

export async function expectJson<T>(res: Response, status: number): Promise<T> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  return JSON.parse(text) as T;
}

/** Registers `schema` and expects a new version (201). */
export async function registered(topic: string, type: string, schema: unknown): Promise<Registered> {
  return expectJson<Registered>(await postSchema(topic, type, schema), 201);
}

/** A closed object schema with the given string members, the first `required` of them required. */
export function closed(members: string[], required = 1): Record<string, unknown> {
  return {
    type: "object",
    properties: Object.fromEntries(members.map((m) => [m, { type: "string" }])),
    required: members.slice(0, required),
    additionalProperties: false,
  };
}

/** Runtime rows of one type in D1, ascending. */
export async function storedVersions(db: D1Database, topic: string, type: string): Promise<{ version: number; schema: string }[]> {
  const { results } = await db
    .prepare("SELECT version, schema FROM schema_versions WHERE topic = ? AND type = ? ORDER BY version")
    .bind(topic, type)
    .all<{ version: number; schema: string }>();
  return results;
}
