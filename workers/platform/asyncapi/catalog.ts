import { schemaUri } from "../../../sdk/schema-uri";
import type { EventlineConfig } from "../../../shared/config";
import { type JsonSchema, zodToJsonSchema } from "../../../shared/schemas/from-zod";
import type { CatalogType } from "../schemas/catalog";

export type { JsonSchema };

/** The latest data schema of one event type of a topic: what the AsyncAPI document types `data` by. */
export interface CatalogEntry {
  topic: string;
  type: string;
  version: number;
  /** The absolute URI events name this version by (their `dataschema` attribute). */
  dataschema: string;
  /** The data schema, JSON Schema draft 2020-12 (an object or a boolean schema). */
  schema: JsonSchema;
}

/** The origin of `npm start`'s stack: docs/asyncapi.json is the document as served there. */
export const LOCAL_ORIGIN = "http://localhost:8787";

/**
 * The catalog of the schema registry's types (workers/platform/schemas/catalog.ts `schemaCatalog`:
 * config versions, then runtime ones): the latest version of each, named by its URI at `origin`.
 */
export function latestCatalog(types: readonly CatalogType[], origin: string): CatalogEntry[] {
  return types.map(({ topic, type, latest }) => ({
    topic,
    type,
    version: latest.version,
    dataschema: schemaUri(origin, topic, type, latest.version),
    schema: latest.schema,
  }));
}

/**
 * The catalog the config alone gives (no runtime versions: a fresh stack), for `npm run asyncapi`,
 * which has no D1: each type's latest declared version, converted as the registry converts it.
 * The workerd test holds it equal to latestCatalog(schemaCatalog(…)) on a fresh database.
 */
export function configCatalog(config: EventlineConfig, origin: string): CatalogEntry[] {
  return config.topics.flatMap((topic) =>
    Object.entries(topic.schemaVersions).flatMap(([type, versions]) => {
      const latest = versions[versions.length - 1];
      if (latest === undefined) return [];
      const version = versions.length;
      return [
        { topic: topic.name, type, version, dataschema: schemaUri(origin, topic.name, type, version), schema: zodToJsonSchema(latest) },
      ];
    }),
  );
}
