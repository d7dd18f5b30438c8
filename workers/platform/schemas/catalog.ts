import { declaredVersions, type EventlineConfig } from "../../../shared/config";
import type { CompatibilityMode } from "../../../shared/schemas/modes";
import { COLUMNS, compatibilityOf, merge, type RuntimeRow, type SchemaVersionView, viewOf } from "./registry";

/**
 * The registry's catalog (GET /v1/schemas, /asyncapi.json): each (topic, type) with versions, its
 * latest version and how many it has. It reads the latest runtime row of each type in one query
 * (the primary key's index finds them; no other version's body is read), so its cost does not grow
 * with how many versions a type has. Not cached: the routes that use it are not on ingest's path.
 */

export interface CatalogType {
  topic: string;
  type: string;
  compatibility: CompatibilityMode;
  /** The latest version (config-declared or runtime). */
  latest: SchemaVersionView;
  /** How many versions the type has (shadowed runtime rows not counted). */
  versions: number;
}

interface LatestRow extends RuntimeRow {
  stored: number;
  lowest: number;
}

const LATEST_SQL = `SELECT ${COLUMNS.split(", ")
  .map((c) => `s.${c}`)
  .join(", ")}, c.stored, c.lowest
  FROM (SELECT topic, type, MAX(version) AS highest, MIN(version) AS lowest, COUNT(*) AS stored FROM schema_versions GROUP BY topic, type) c
  JOIN schema_versions s ON s.topic = c.topic AND s.type = c.type AND s.version = c.highest`;

/** Every type with at least one version, per topic (config order, then runtime-only types by name). */
export async function schemaCatalog(db: D1Database, config: EventlineConfig): Promise<CatalogType[]> {
  const { results } = await db.prepare(LATEST_SQL).all<LatestRow>();
  const latestOf = new Map<string, LatestRow>();
  for (const row of results) latestOf.set(`${row.topic}\u0000${row.type}`, row);
  const out: CatalogType[] = [];
  for (const topic of config.topics) {
    const types = new Set(Object.keys(topic.schemaVersions));
    const runtimeTypes = results.filter((r) => r.topic === topic.name).map((r) => r.type);
    for (const type of runtimeTypes.sort()) types.add(type);
    for (const type of types) {
      const declared = declaredVersions(topic, type).length;
      const row = latestOf.get(`${topic.name}\u0000${type}`);
      let count = declared;
      let latest: SchemaVersionView | undefined;
      if (row !== undefined && row.version > declared) {
        latest = viewOf(row);
        // Rows at or below `declared` are shadowed by the config: count only those after it.
        count += row.lowest > declared ? row.stored : await countAfter(db, topic.name, type, declared);
      } else {
        latest = merge(topic, type, [])?.versions.at(-1);
      }
      if (latest !== undefined) out.push({ topic: topic.name, type, compatibility: compatibilityOf(topic, type), latest, versions: count });
    }
  }
  return out;
}

/** The rare case of runtime rows the config has since grown over: how many are not shadowed. */
async function countAfter(db: D1Database, topic: string, type: string, declared: number): Promise<number> {
  const row = await db
    .prepare("SELECT COUNT(*) AS n FROM schema_versions WHERE topic = ? AND type = ? AND version > ?")
    .bind(topic, type, declared)
    .first<{ n: number }>();
  return row?.n ?? 0;
}
