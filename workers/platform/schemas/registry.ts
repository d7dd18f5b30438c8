import type { z } from "zod";
import { schemaPath } from "../../../sdk/schema-uri";
import type { EventlineConfig, TopicConfig } from "../../../shared/config";
import { type JsonSchema, zodToJsonSchema } from "../../../shared/schemas/from-zod";
import type { CompatibilityMode } from "../../../shared/schemas/modes";

/**
 * The schema registry's read side (docs/schemas.md, ADR 0049): each (topic, type)'s data schema
 * versions — those eventline.config.ts declares (1..n, zod, converted to JSON Schema) followed by
 * those registered at runtime (D1 `schema_versions`, n+1…).
 *
 * Runtime versions are cached per isolate for at most SCHEMA_CACHE_MS: a version registered
 * through another isolate (another edge location) is seen by this one within that bound. The
 * isolate that registers a version drops its cache at once, so its own next request sees it.
 */

/** The bound on how stale an isolate's view of runtime-registered versions may be. */
export const SCHEMA_CACHE_MS = 10_000;

export interface SchemaVersionView {
  topic: string;
  type: string;
  version: number;
  /** The JSON Schema (draft 2020-12) of `data`. */
  schema: JsonSchema;
  /** The path the version is served at (the `dataschema` URI without its origin). */
  path: string;
  /** Declared in eventline.config.ts, or registered at runtime. */
  source: "config" | "registry";
  /** The zod schema of a config-declared version: what ingest checks (it holds refinements JSON Schema cannot express). */
  zod?: z.ZodType;
  /** Runtime versions: when, by whom, and under which mode they were registered. */
  createdAt?: string;
  createdBy?: string | null;
  compatibility?: CompatibilityMode;
}

export interface TypeSchemas {
  topic: string;
  type: string;
  compatibility: CompatibilityMode;
  /** Ascending by version; never empty. */
  versions: SchemaVersionView[];
}

/** The mode a new version of `type` is checked under: the type's override, else the topic's. */
export function compatibilityOf(topic: TopicConfig, type: string): CompatibilityMode {
  return Object.hasOwn(topic.typeCompatibility, type) ? (topic.typeCompatibility[type] as CompatibilityMode) : topic.compatibility;
}

const converted = new WeakMap<z.ZodType, JsonSchema>();
function jsonSchemaOf(schema: z.ZodType): JsonSchema {
  let json = converted.get(schema);
  if (json === undefined) {
    json = zodToJsonSchema(schema);
    converted.set(schema, json);
  }
  return json;
}

function configVersions(topic: TopicConfig, type: string): SchemaVersionView[] {
  const declared = Object.hasOwn(topic.schemaVersions, type) ? (topic.schemaVersions[type] as z.ZodType[]) : [];
  return declared.map((zod, i) => ({
    topic: topic.name,
    type,
    version: i + 1,
    schema: jsonSchemaOf(zod),
    path: schemaPath(topic.name, type, i + 1),
    source: "config" as const,
    zod,
  }));
}

interface RuntimeRow {
  topic: string;
  type: string;
  version: number;
  schema: string;
  compatibility: string;
  created_by: string | null;
  created_at: number;
}

/** Runtime versions by `topic\0type`, ascending. */
type RuntimeIndex = Map<string, SchemaVersionView[]>;

const keyOf = (topic: string, type: string) => `${topic}\u0000${type}`;

let cache: { index: RuntimeIndex; loadedAt: number } | undefined;
let loading: { promise: Promise<RuntimeIndex>; generation: number } | undefined;
/** Bumped by every invalidation: reads started before it are neither shared nor cached after it. */
let generation = 0;

/** Forgets this isolate's cached runtime versions (after a registration here). */
export function invalidateSchemaCache(): void {
  cache = undefined;
  generation += 1;
}

const viewOf = (row: RuntimeRow): SchemaVersionView => ({
  topic: row.topic,
  type: row.type,
  version: row.version,
  schema: JSON.parse(row.schema) as JsonSchema,
  path: schemaPath(row.topic, row.type, row.version),
  source: "registry",
  createdAt: new Date(row.created_at).toISOString(),
  createdBy: row.created_by,
  compatibility: row.compatibility as CompatibilityMode,
});

const COLUMNS = "topic, type, version, schema, compatibility, created_by, created_at";

async function loadRuntime(db: D1Database): Promise<RuntimeIndex> {
  const { results } = await db.prepare(`SELECT ${COLUMNS} FROM schema_versions ORDER BY topic, type, version`).all<RuntimeRow>();
  const index: RuntimeIndex = new Map();
  for (const row of results) {
    const key = keyOf(row.topic, row.type);
    const list = index.get(key) ?? [];
    list.push(viewOf(row));
    index.set(key, list);
  }
  return index;
}

/**
 * Runtime versions: from the isolate's cache when younger than SCHEMA_CACHE_MS, else from D1
 * (concurrent callers share one read). `fresh` always reads D1 (and refreshes the cache). When D1
 * fails and a cached copy exists, the stale copy is served rather than failing ingest. A copy's
 * age counts from when its read started, and a read that started before an invalidation is not
 * cached (it may predate the registration that invalidated).
 */
async function runtimeIndex(db: D1Database, { fresh = false, now = Date.now() }: ReadOptions): Promise<RuntimeIndex> {
  if (!fresh && cache !== undefined && now - cache.loadedAt < SCHEMA_CACHE_MS) return cache.index;
  const started = Date.now();
  const startedIn = generation;
  const keep = (index: RuntimeIndex) => {
    if (startedIn === generation && (cache === undefined || cache.loadedAt <= started)) cache = { index, loadedAt: started };
    return index;
  };
  if (fresh) return keep(await loadRuntime(db));
  if (loading !== undefined && loading.generation === generation) return loading.promise;
  const promise = loadRuntime(db)
    .then(keep)
    .catch((err: unknown) => {
      if (cache !== undefined) return cache.index;
      throw err;
    })
    .finally(() => {
      if (loading?.promise === promise) loading = undefined;
    });
  loading = { promise, generation };
  return promise;
}

function merge(topic: TopicConfig, type: string, runtime: SchemaVersionView[] | undefined): TypeSchemas | undefined {
  const declared = configVersions(topic, type);
  // Runtime versions are numbered after the declared ones; one the config has since grown over is
  // shadowed by the declaration (docs/schemas.md: once versions are registered at runtime, add new ones there).
  const registered = (runtime ?? []).filter((v) => v.version > declared.length);
  const versions = [...declared, ...registered];
  if (versions.length === 0) return undefined;
  return { topic: topic.name, type, compatibility: compatibilityOf(topic, type), versions };
}

/**
 * How a read may use the cache: `fresh` reads D1 whatever the cache holds; `now` is the clock the
 * cache's age is measured with (tests move it past SCHEMA_CACHE_MS).
 */
export interface ReadOptions {
  fresh?: boolean;
  now?: number;
}

/** One type's versions, or undefined when it has none (an untyped type). */
export async function typeSchemas(
  db: D1Database,
  topic: TopicConfig,
  type: string,
  options: ReadOptions = {},
): Promise<TypeSchemas | undefined> {
  const index = await runtimeIndex(db, options);
  return merge(topic, type, index.get(keyOf(topic.name, type)));
}

/** Every type with at least one version, per topic (config order, then runtime-only types by name). */
export async function schemaCatalog(db: D1Database, config: EventlineConfig, options: ReadOptions = {}): Promise<TypeSchemas[]> {
  const index = await runtimeIndex(db, options);
  const out: TypeSchemas[] = [];
  for (const topic of config.topics) {
    const types = new Set(Object.keys(topic.schemaVersions));
    const runtimeTypes = [...index.values()].flatMap((list) => (list[0]?.topic === topic.name ? [list[0].type] : [])).sort();
    for (const type of runtimeTypes) types.add(type);
    for (const type of types) {
      const merged = merge(topic, type, index.get(keyOf(topic.name, type)));
      if (merged !== undefined) out.push(merged);
    }
  }
  return out;
}

/** One type's versions as D1 holds them now, with what registration needs to add the next one. */
export interface TypeSnapshot {
  /** Config versions, then the runtime versions numbered after them; undefined when there are none. */
  schemas: TypeSchemas | undefined;
  /** How many versions the config declares. */
  declared: number;
  /** The highest runtime version stored (0 when none), shadowed ones included: the next is numbered after it and `declared`. */
  latestStored: number;
  /** Fingerprints of the runtime rows by version, shadowed ones included. */
  fingerprints: Map<number, string>;
}

/**
 * Reads one type's runtime rows from D1 in a single query (no cache), so the versions a new one
 * is checked against and the `latestStored` its insert is conditioned on come from the same read.
 */
export async function typeSnapshot(db: D1Database, topic: TopicConfig, type: string): Promise<TypeSnapshot> {
  const { results } = await db
    .prepare(`SELECT ${COLUMNS}, fingerprint FROM schema_versions WHERE topic = ? AND type = ? ORDER BY version`)
    .bind(topic.name, type)
    .all<RuntimeRow & { fingerprint: string }>();
  const declared = Object.hasOwn(topic.schemaVersions, type) ? (topic.schemaVersions[type] as z.ZodType[]).length : 0;
  return {
    schemas: merge(topic, type, results.map(viewOf)),
    declared,
    latestStored: results.at(-1)?.version ?? 0,
    fingerprints: new Map(results.map((r) => [r.version, r.fingerprint])),
  };
}

/** Whether a topic accepts `type`: any type, unless the topic has `strictTypes` and the type has no version. */
export function acceptsType(topic: TopicConfig, schemas: TypeSchemas | undefined): boolean {
  return !topic.strictTypes || schemas !== undefined;
}
