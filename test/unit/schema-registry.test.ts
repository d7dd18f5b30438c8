import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import shipped from "../../eventline.config";
import { defineConfig, type EventlineConfigInput, findTopic, type TopicConfig } from "../../shared/config";
import { schemaCatalog } from "../../workers/platform/schemas/catalog";
import {
  acceptsType,
  compatibilityOf,
  invalidateSchemaCache,
  SCHEMA_CACHE_BYTES,
  SCHEMA_CACHE_MS,
  SCHEMA_CACHE_TYPES,
  schemaCacheSize,
  typeSchemas,
  typeSnapshot,
} from "../../workers/platform/schemas/registry";

/**
 * The registry's read side (workers/platform/schemas/registry.ts): config-declared versions 1..n
 * (list form), runtime versions numbered after them, strictTypes acceptance, and the per-isolate
 * cache whose staleness is bounded by SCHEMA_CACHE_MS.
 */

const config = defineConfig({
  ...(shipped as EventlineConfigInput),
  subscriptions: [],
  processors: [],
  topics: [
    {
      name: "reg",
      partitions: 1,
      retentionHours: 24,
      strictTypes: true,
      compatibility: "FULL",
      typeCompatibility: { "t.none": "NONE" },
      schemas: {
        "t.list": [z.object({ a: z.string() }), z.object({ a: z.string(), b: z.number().optional() }), z.object({ a: z.string() })],
        "t.single": z.object({ s: z.boolean() }),
      },
    },
    { name: "free", partitions: 1, retentionHours: 24 },
  ],
});
const reg = findTopic(config, "reg") as TopicConfig;
const free = findTopic(config, "free") as TopicConfig;

async function insertRow(topic: string, type: string, version: number, schema: unknown = { type: "object" }): Promise<void> {
  await env.DB.prepare(
    "INSERT INTO schema_versions (topic, type, version, schema, fingerprint, compatibility, created_by, created_at) VALUES (?, ?, ?, ?, ?, 'BACKWARD', 'test', ?)",
  )
    .bind(topic, type, version, JSON.stringify(schema), `fp-${topic}-${type}-${version}`, Date.now())
    .run();
}

const versionsOf = async (topic: TopicConfig, type: string, options = {}) =>
  (await typeSchemas(env.DB, topic, type, options))?.versions.map((v) => [v.version, v.source]);

beforeEach(() => invalidateSchemaCache());

describe("config-declared versions", () => {
  it("numbers a list-form declaration 1..n, each with its JSON Schema, zod schema and path", async () => {
    const schemas = await typeSchemas(env.DB, reg, "t.list");
    expect(schemas?.compatibility).toBe("FULL");
    expect(schemas?.versions.map((v) => [v.version, v.source, v.path])).toEqual([
      [1, "config", "/v1/topics/reg/types/t.list/schemas/1"],
      [2, "config", "/v1/topics/reg/types/t.list/schemas/2"],
      [3, "config", "/v1/topics/reg/types/t.list/schemas/3"],
    ]);
    expect(schemas?.versions[1]?.schema).toMatchObject({ properties: { a: { type: "string" }, b: { type: "number" } }, required: ["a"] });
    expect(schemas?.versions[1]?.zod?.safeParse({ a: "x", b: "no" }).success).toBe(false);
  });

  it("survives parsing a parsed config again (tests spread the shipped one); a replaced entry takes over", () => {
    const again = defineConfig({ ...(config as EventlineConfigInput) });
    expect(findTopic(again, "reg")?.schemaVersions["t.list"]).toEqual(reg.schemaVersions["t.list"]);
    expect(findTopic(again, "reg")?.schemaVersions["t.list"]?.length).toBe(3);
    const replacement = z.object({ other: z.string() });
    const replaced = defineConfig({
      ...(config as EventlineConfigInput),
      topics: [{ ...reg, schemas: { ...reg.schemas, "t.list": replacement } }],
    });
    expect(findTopic(replaced, "reg")?.schemaVersions["t.list"]).toEqual([replacement]);
    expect(findTopic(replaced, "reg")?.schemaVersions["t.single"]).toEqual(reg.schemaVersions["t.single"]);
  });

  it("numbers a single declaration as version 1", async () => {
    expect(await versionsOf(reg, "t.single")).toEqual([[1, "config"]]);
  });

  it("takes the type's compatibility override, else the topic's", () => {
    expect(compatibilityOf(reg, "t.none")).toBe("NONE");
    expect(compatibilityOf(reg, "t.list")).toBe("FULL");
    expect(compatibilityOf(free, "x")).toBe("BACKWARD");
  });
});

describe("runtime versions", () => {
  it("follow the config-declared ones; a runtime row the config has grown over is shadowed", async () => {
    await insertRow("reg", "t.single", 1, { shadowed: true });
    await insertRow("reg", "t.single", 2);
    await insertRow("reg", "t.single", 3);
    expect(await versionsOf(reg, "t.single", { fresh: true })).toEqual([
      [1, "config"],
      [2, "registry"],
      [3, "registry"],
    ]);
    const snapshot = await typeSnapshot(env.DB, reg, "t.single");
    expect(snapshot).toMatchObject({ declared: 1, latestStored: 3 });
    expect([...snapshot.fingerprints.keys()]).toEqual([1, 2, 3]);
    expect(snapshot.schemas?.versions.map((v) => v.version)).toEqual([1, 2, 3]);
  });

  it("give an undeclared type versions, which a strictTypes topic then accepts", async () => {
    expect(await typeSchemas(env.DB, reg, "t.late", { fresh: true })).toBeUndefined();
    expect(acceptsType(reg, undefined)).toBe(false);
    expect(acceptsType(free, undefined)).toBe(true);
    await insertRow("reg", "t.late", 1);
    const late = await typeSchemas(env.DB, reg, "t.late", { fresh: true });
    expect(late?.versions.map((v) => [v.version, v.source, v.createdBy])).toEqual([[1, "registry", "test"]]);
    expect(acceptsType(reg, late)).toBe(true);
  });

  it("are in the catalog: config types in config order, then runtime-only types by name", async () => {
    await insertRow("free", "z.type", 1);
    await insertRow("free", "a.type", 1);
    const catalog = await schemaCatalog(env.DB, config);
    const names = catalog.map((t) => `${t.topic}/${t.type}`);
    expect(names.slice(0, 2)).toEqual(["reg/t.list", "reg/t.single"]);
    expect(names.indexOf("free/a.type")).toBeLessThan(names.indexOf("free/z.type"));
    expect(names.indexOf("free/a.type")).toBeGreaterThan(names.indexOf("reg/t.single"));
  });

  it("give the catalog each type's latest version and count, shadowed rows not counted", async () => {
    const catalogOf = async () => new Map((await schemaCatalog(env.DB, config)).map((t) => [`${t.topic}/${t.type}`, t]));
    expect((await catalogOf()).get("reg/t.list")).toMatchObject({
      versions: 3,
      compatibility: "FULL",
      latest: { version: 3, source: "config" },
    });
    await insertRow("reg", "t.list", 3, { shadowed: true });
    await insertRow("reg", "t.list", 4);
    await insertRow("reg", "t.list", 5, { latest: true });
    await insertRow("free", "c.type", 1);
    await insertRow("free", "c.type", 2, { second: true });
    const byName = await catalogOf();
    expect(byName.get("reg/t.list")).toMatchObject({ versions: 5, latest: { version: 5, source: "registry", schema: { latest: true } } });
    expect(byName.get("free/c.type")).toMatchObject({ versions: 2, latest: { version: 2, schema: { second: true } } });
  });

  it("the catalog reads no version's body but the latest", async () => {
    await insertRow("free", "big.type", 1);
    await insertRow("free", "big.type", 2);
    const seen: string[] = [];
    const spying = {
      prepare: (sql: string) => {
        seen.push(sql);
        return env.DB.prepare(sql);
      },
    } as unknown as D1Database;
    const catalog = await schemaCatalog(spying, config);
    expect(catalog.find((t) => t.type === "big.type")).toMatchObject({ versions: 2, latest: { version: 2 } });
    // One query for the latest rows; any other only counts (runtime rows shadowed by the config, from the tests above).
    expect(seen.slice(1).every((sql) => sql.startsWith("SELECT COUNT(*)"))).toBe(true);
    const { results } = await env.DB.prepare(seen[0] as string).all<{ version: number }>();
    expect(results.filter((r) => r.version === 1 && (r as unknown as { type: string }).type === "big.type")).toEqual([]);
  });
});

describe("the per-isolate cache", () => {
  it(`keeps at most SCHEMA_CACHE_BYTES (${SCHEMA_CACHE_BYTES}) of versions, dropping the least recently used types`, async () => {
    // 20 types of 1 MiB each (one 1 MiB-odd row apiece): more than the byte bound, far fewer than the type bound.
    const filler = "x".repeat(1024 * 1024 - 20);
    for (let i = 0; i < 20; i++) await insertRow("free", `bytes.${i}`, 1, { description: filler });
    for (let i = 0; i < 20; i++) await typeSchemas(env.DB, free, `bytes.${i}`);
    const { types, bytes } = schemaCacheSize();
    expect(bytes).toBeLessThanOrEqual(SCHEMA_CACHE_BYTES);
    expect(types).toBeLessThan(20);
    expect(types).toBeGreaterThan(10);
    // The latest read is kept: asking again reads nothing.
    const { db, asked } = recording();
    await typeSchemas(db, free, "bytes.19");
    expect(asked).toEqual([]);
    await typeSchemas(db, free, "bytes.0");
    expect(asked).toEqual([["free", "bytes.0"]]);
  });

  /** A D1 that records the types it is asked for (and can be made to fail). */
  function recording(fail = () => false) {
    const asked: unknown[][] = [];
    const db = {
      prepare: (sql: string) => ({
        bind: (...args: unknown[]) => ({
          all: async () => {
            asked.push(args);
            if (fail()) throw new Error("D1 is down");
            return env.DB.prepare(sql)
              .bind(...args)
              .all();
          },
        }),
      }),
    } as unknown as D1Database;
    return { db, asked };
  }

  it("reads only the type asked for, not the whole table", async () => {
    await insertRow("free", "other.type", 1);
    const { db, asked } = recording();
    expect((await typeSchemas(db, free, "mine.type"))?.versions).toBeUndefined();
    expect(asked).toEqual([["free", "mine.type"]]);
    // Another type's versions are read when that type is asked for, once per SCHEMA_CACHE_MS.
    expect((await typeSchemas(db, free, "other.type"))?.versions.map((v) => v.version)).toEqual([1]);
    expect(await typeSchemas(db, free, "other.type")).toBeDefined();
    expect(asked).toEqual([
      ["free", "mine.type"],
      ["free", "other.type"],
    ]);
  });

  it("shares one read between concurrent callers of a type", async () => {
    await insertRow("free", "shared.type", 1);
    const { db, asked } = recording();
    const all = await Promise.all([1, 2, 3].map(() => typeSchemas(db, free, "shared.type")));
    expect(all.map((s) => s?.versions.length)).toEqual([1, 1, 1]);
    expect(asked).toHaveLength(1);
  });

  it("serves a stale copy when D1 fails, and throws when it has none", async () => {
    await insertRow("free", "stale.type", 1);
    let down = false;
    const { db } = recording(() => down);
    expect(await versionsOf(free, "stale.type")).toEqual([[1, "registry"]]);
    down = true;
    expect((await typeSchemas(db, free, "stale.type", { now: Date.now() + SCHEMA_CACHE_MS }))?.versions.length).toBe(1);
    await expect(typeSchemas(db, free, "never.read")).rejects.toThrow("D1 is down");
  });

  it(`keeps at most SCHEMA_CACHE_TYPES (${SCHEMA_CACHE_TYPES}) types, dropping the least recently used`, async () => {
    const { db, asked } = recording();
    await typeSchemas(db, free, "lru.first");
    for (let i = 0; i < SCHEMA_CACHE_TYPES; i++) {
      await typeSchemas(db, free, `lru.${i}`);
      // lru.first stays recently used for the first half, then is left alone and evicted.
      if (i < SCHEMA_CACHE_TYPES / 2) await typeSchemas(db, free, "lru.first");
    }
    expect(schemaCacheSize().types).toBe(SCHEMA_CACHE_TYPES);
    const before = asked.length;
    await typeSchemas(db, free, `lru.${SCHEMA_CACHE_TYPES - 1}`);
    expect(asked.length).toBe(before);
    await typeSchemas(db, free, "lru.0");
    expect(asked.length).toBe(before + 1);
  });

  it("does not see a row inserted elsewhere before SCHEMA_CACHE_MS, and sees it after", async () => {
    const loadedAround = Date.now();
    expect(await versionsOf(free, "cache.type")).toBeUndefined();
    // Another isolate registers: a row this isolate's cache does not know of.
    await insertRow("free", "cache.type", 1);
    expect(await typeSchemas(env.DB, free, "cache.type", { now: loadedAround + SCHEMA_CACHE_MS - 1 })).toBeUndefined();
    expect(await versionsOf(free, "cache.type", { now: Date.now() + SCHEMA_CACHE_MS })).toEqual([[1, "registry"]]);
  });

  it("a fresh read or an invalidation sees a new row at once", async () => {
    const now = Date.now();
    expect(await versionsOf(free, "fresh.type", { now })).toBeUndefined();
    await insertRow("free", "fresh.type", 1);
    expect(await versionsOf(free, "fresh.type", { now })).toBeUndefined();
    expect(await versionsOf(free, "fresh.type", { fresh: true, now })).toEqual([[1, "registry"]]);
    await insertRow("free", "fresh.type", 2);
    invalidateSchemaCache();
    expect(await versionsOf(free, "fresh.type", { now })).toEqual([
      [1, "registry"],
      [2, "registry"],
    ]);
  });

  it("does not keep a read that started before an invalidation", async () => {
    expect(await versionsOf(free, "race.type")).toBeUndefined();
    // A D1 whose answer is held back: the read is done before the row exists, and answered after the invalidation.
    let answered!: () => void;
    const queried = new Promise<void>((resolve) => {
      answered = resolve;
    });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const held = {
      prepare: (sql: string) => ({
        bind: (...args: unknown[]) => ({
          all: async () => {
            const result = await env.DB.prepare(sql)
              .bind(...args)
              .all();
            answered();
            await gate;
            return result;
          },
        }),
      }),
    } as unknown as D1Database;
    const pending = typeSchemas(held, free, "race.type", { now: Date.now() + SCHEMA_CACHE_MS });
    await queried;
    await insertRow("free", "race.type", 1);
    invalidateSchemaCache();
    release();
    expect(await pending).toBeUndefined();
    expect(await versionsOf(free, "race.type")).toEqual([[1, "registry"]]);
  });
});
