import type { z } from "zod";
import { schemaPath } from "../../../sdk/schema-uri";
import { declaredVersions, type TopicConfig } from "../../../shared/config";
import { type JsonSchema, zodToJsonSchema } from "../../../shared/schemas/from-zod";
import type { CompatibilityMode } from "../../../shared/schemas/modes";

/**
 * The schema registry's read side (docs/schemas.md, ADR 0049): each (topic, type)'s data schema
 * versions — those eventline.config.ts declares (1..n, zod, converted to JSON Schema) followed by
 * those registered at runtime (D1 `schema_versions`, n+1…).
 *
 * Runtime versions are read per (topic, type), on demand, and cached per isolate for at most
 * SCHEMA_CACHE_MS (at most SCHEMA_CACHE_TYPES types and SCHEMA_CACHE_BYTES, least recently used
 * dropped): a version
 * registered through another isolate (another edge location) is seen by this one within that
 * bound. The isolate that registers a version drops its cache at once, so its own next request
 * sees it. Registration caps a type's stored bytes (register.ts), which bounds each cached entry.
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

/** The config's versions as views, built once per (topic, type): ingest asks for them on every request. */
const configViews = new WeakMap<TopicConfig, Map<string, readonly SchemaVersionView[]>>();

function configVersions(topic: TopicConfig, type: string): readonly SchemaVersionView[] {
  let byType = configViews.get(topic);
  if (byType === undefined) {
    byType = new Map();
    configViews.set(topic, byType);
  }
  let views = byType.get(type);
  if (views === undefined) {
    views = declaredVersions(topic, type).map((zod, i) => ({
      topic: topic.name,
      type,
      version: i + 1,
      schema: jsonSchemaOf(zod),
      path: schemaPath(topic.name, type, i + 1),
      source: "config" as const,
      zod,
    }));
    // Only declared types are kept: a type the config does not list has no views to build, and
    // keeping its empty list would let arbitrary producer-chosen types grow the map.
    if (views.length > 0) byType.set(type, views);
  }
  return views;
}

export interface RuntimeRow {
  topic: string;
  type: string;
  version: number;
  schema: string;
  compatibility: string;
  created_by: string | null;
  created_at: number;
}

const keyOf = (topic: string, type: string) => `${topic}\u0000${type}`;

/** Most (topic, type)s whose runtime versions one isolate keeps (least recently used dropped first). */
export const SCHEMA_CACHE_TYPES = 1000;
/**
 * Most canonical-JSON bytes of runtime versions one isolate keeps (least recently used types
 * dropped first; the type just read is always kept, and is itself at most 1 MiB: register.ts).
 */
export const SCHEMA_CACHE_BYTES = 16 * 1024 * 1024;

interface CachedType {
  versions: SchemaVersionView[];
  loadedAt: number;
  /** Its rows' canonical JSON length: what it costs the cache's byte bound. */
  bytes: number;
}

/** Runtime versions per `topic\0type`, in least-recently-used order (Map iteration order). */
const cache = new Map<string, CachedType>();
let cachedBytes = 0;
const loading = new Map<string, { promise: Promise<SchemaVersionView[]>; generation: number }>();
/** Bumped by every invalidation: reads started before it are neither shared nor cached after it. */
let generation = 0;

/** Forgets this isolate's cached runtime versions (after a registration here). */
export function invalidateSchemaCache(): void {
  cache.clear();
  cachedBytes = 0;
  loading.clear();
  generation += 1;
}

/** How many types, and bytes of their versions, this isolate holds (tests hold them to the bounds). */
export function schemaCacheSize(): { types: number; bytes: number } {
  return { types: cache.size, bytes: cachedBytes };
}

export const viewOf = (row: RuntimeRow): SchemaVersionView => ({
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

export const COLUMNS = "topic, type, version, schema, compatibility, created_by, created_at";

/** One type's runtime rows (the primary key's prefix: an indexed read of that type only). */
async function loadType(db: D1Database, topic: string, type: string): Promise<Loaded> {
  const { results } = await db
    .prepare(`SELECT ${COLUMNS} FROM schema_versions WHERE topic = ? AND type = ? ORDER BY version`)
    .bind(topic, type)
    .all<RuntimeRow>();
  return { versions: results.map(viewOf), bytes: results.reduce((sum, r) => sum + r.schema.length, 0) };
}

interface Loaded {
  versions: SchemaVersionView[];
  bytes: number;
}

function remember(key: string, entry: CachedType): void {
  forget(key);
  cache.set(key, entry);
  cachedBytes += entry.bytes;
  while (cache.size > SCHEMA_CACHE_TYPES || (cachedBytes > SCHEMA_CACHE_BYTES && cache.size > 1)) {
    forget(cache.keys().next().value as string);
  }
}

function forget(key: string): void {
  const entry = cache.get(key);
  if (entry === undefined) return;
  cache.delete(key);
  cachedBytes -= entry.bytes;
}

/**
 * One type's runtime versions: from the isolate's cache when younger than SCHEMA_CACHE_MS, else
 * from D1 (concurrent callers for the type share one read). `fresh` always reads D1 (and refreshes
 * the cache). When D1 fails and a cached copy exists, the stale copy is served rather than failing
 * ingest. A copy's age counts from when its read started, and a read that started before an
 * invalidation is not cached (it may predate the registration that invalidated).
 */
async function runtimeVersions(
  db: D1Database,
  topic: string,
  type: string,
  { fresh = false, now = Date.now() }: ReadOptions,
): Promise<SchemaVersionView[]> {
  const key = keyOf(topic, type);
  const cached = cache.get(key);
  if (!fresh && cached !== undefined && now - cached.loadedAt < SCHEMA_CACHE_MS) {
    remember(key, cached);
    return cached.versions;
  }
  const started = Date.now();
  const startedIn = generation;
  const keep = ({ versions, bytes }: Loaded) => {
    const current = cache.get(key);
    if (startedIn === generation && (current === undefined || current.loadedAt <= started)) {
      remember(key, { versions, bytes, loadedAt: started });
    }
    return versions;
  };
  if (fresh) return keep(await loadType(db, topic, type));
  const pending = loading.get(key);
  if (pending !== undefined && pending.generation === generation) return pending.promise;
  const promise = loadType(db, topic, type)
    .then(keep)
    .catch((err: unknown) => {
      const stale = cache.get(key);
      if (stale !== undefined) return stale.versions;
      throw err;
    })
    .finally(() => {
      if (loading.get(key)?.promise === promise) loading.delete(key);
    });
  loading.set(key, { promise, generation });
  return promise;
}

export function merge(topic: TopicConfig, type: string, runtime: SchemaVersionView[] | undefined): TypeSchemas | undefined {
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
  return merge(topic, type, await runtimeVersions(db, topic.name, type, options));
}

/** One type's versions as D1 holds them now, with what registration needs to add the next one. */
const encoder = new TextEncoder();

export interface TypeSnapshot {
  /** Config versions, then the runtime versions numbered after them; undefined when there are none. */
  schemas: TypeSchemas | undefined;
  /** How many versions the config declares. */
  declared: number;
  /** The highest runtime version stored (0 when none), shadowed ones included: the next is numbered after it and `declared`. */
  latestStored: number;
  /** Fingerprints of the runtime rows by version, shadowed ones included. */
  fingerprints: Map<number, string>;
  /** The runtime rows' canonical JSON, in UTF-8 bytes, shadowed ones included: what an isolate caches of the type. */
  storedBytes: number;
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
  return {
    schemas: merge(topic, type, results.map(viewOf)),
    declared: declaredVersions(topic, type).length,
    latestStored: results.at(-1)?.version ?? 0,
    fingerprints: new Map(results.map((r) => [r.version, r.fingerprint])),
    storedBytes: results.reduce((sum, r) => sum + encoder.encode(r.schema).length, 0),
  };
}

/** Whether a topic accepts `type`: any type, unless the topic has `strictTypes` and the type has no version. */
export function acceptsType(topic: TopicConfig, schemas: TypeSchemas | undefined): boolean {
  return !topic.strictTypes || schemas !== undefined;
}
