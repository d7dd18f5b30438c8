import { z } from "zod";
import type { EventlineConfig } from "../../../shared/config";

/** A JSON Schema (draft 2020-12) as a JSON object. */
export type JsonSchema = Record<string, unknown>;

/** The latest data schema of one event type of a topic: what the AsyncAPI document types `data` by. */
export interface CatalogEntry {
  topic: string;
  type: string;
  version: number;
  /** The absolute URI events name this version by (their `dataschema` attribute). */
  dataschema: string;
  /** The data schema, JSON Schema draft 2020-12. */
  schema: JsonSchema;
}

/** The URI of version `version` of a type's data schema, served by the schema registry's routes. */
export function dataschemaUri(origin: string, topic: string, type: string, version: number): string {
  return `${origin}/v1/topics/${encodeURIComponent(topic)}/types/${encodeURIComponent(type)}/schemas/${version}`;
}

/**
 * The catalog the config alone gives: each configured zod schema as version 1, converted to JSON
 * Schema draft 2020-12 as the registry stores them. The registry's list of latest versions (config
 * versions first, then runtime ones) replaces this function's result without changing its shape.
 */
export function configCatalog(config: EventlineConfig, origin: string): CatalogEntry[] {
  return config.topics.flatMap((topic) =>
    Object.entries(topic.schemas).map(([type, schema]) => ({
      topic: topic.name,
      type,
      version: 1,
      dataschema: dataschemaUri(origin, topic.name, type, 1),
      schema: z.toJSONSchema(schema, { target: "draft-2020-12", unrepresentable: "any", io: "input" }) as JsonSchema,
    })),
  );
}

/** The origin of `npm start`'s stack: docs/asyncapi.json is the document as served there. */
export const LOCAL_ORIGIN = "http://localhost:8787";
