import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { schemaUri } from "../../../sdk/schema-uri";
import { problemResponse, TopicParam } from "../../../shared/api-schemas";
import type { EventlineConfig, TopicConfig } from "../../../shared/config";
import { EventlineError } from "../../../shared/errors";
import type { JsonSchema } from "../../../shared/schemas/from-zod";
import { access, may, topicParam } from "../auth/access";
import type { AppEnv } from "../context";
import { CatalogQuery, SchemaCatalogSchema, SchemaVersionSchema, TypeParam, TypeSchemasSchema, VersionParam } from "../schemas/api";
import { schemaCatalog } from "../schemas/catalog";
import { DRAFT_2020_12 } from "../schemas/meta-schema";
import { type SchemaVersionView, type TypeSchemas, typeSchemas, typeSnapshot } from "../schemas/registry";
import { requireTopic } from "../validation";

/**
 * Reading the schema registry (docs/schemas.md): a type's versions, one version (as JSON Schema
 * tooling fetches it, with `Accept: application/schema+json`), and the catalog of every type.
 * A type's runtime versions come from the isolate's per-type cache, at most SCHEMA_CACHE_MS stale; the catalog reads
 * each type's latest version from D1 (schemas/catalog.ts). Readable with `consume` or `produce` on the topic.
 */

export const SCHEMA_MEDIA_TYPE = "application/schema+json";

/**
 * Reading a topic's schemas needs `consume` or `produce` on it: a consumer reads the events they
 * describe, a producer must name them (`dataschema`) and may check against them.
 */
function readAccess(topicOf: (c: Context<AppEnv>) => string | undefined): MiddlewareHandler<AppEnv> {
  const consume = access({ group: "read", action: "consume", topic: topicOf });
  const produce = access({ group: "read", action: "produce", topic: topicOf });
  return (c, next) => {
    const topic = topicOf(c);
    const producer = topic !== undefined && may(c.get("config"), c.get("principal"), "produce", topic);
    return producer ? produce(c, next) : consume(c, next);
  };
}

/** `GET /v1/schemas?topic=`: that topic's grant; without it, any grant (the handler filters). */
const catalogAccess: MiddlewareHandler<AppEnv> = (c, next) =>
  c.req.query("topic") === undefined ? listAccess(c, next) : topicReadAccess(c, next);
const listAccess = access({ group: "read", action: "list" });
const topicReadAccess = readAccess((c) => c.req.query("topic"));

const listRoute = createRoute({
  method: "get",
  path: "/v1/topics/{topic}/types/{type}/schemas",
  middleware: [readAccess(topicParam)] as const,
  tags: ["Schemas"],
  summary: "Every data schema version of an event type, oldest first",
  description:
    "Config-declared versions (`source: config`, 1..n) come first, then versions registered at runtime (`source: registry`). Each has the `dataschema` URI events name it by.",
  request: { params: z.object({ topic: TopicParam, type: TypeParam }) },
  responses: {
    200: { description: "The type's versions", content: { "application/json": { schema: TypeSchemasSchema } } },
    400: problemResponse("The type is longer than 256 characters"),
    404: problemResponse("Unknown topic, or a type without schema versions"),
  },
});

const versionRoute = createRoute({
  method: "get",
  path: "/v1/topics/{topic}/types/{type}/schemas/{version}",
  middleware: [readAccess(topicParam)] as const,
  tags: ["Schemas"],
  summary: "One data schema version (the resource a `dataschema` URI names)",
  description: `With \`Accept: ${SCHEMA_MEDIA_TYPE}\` the body is the JSON Schema itself, with \`$id\` set to this URI and \`$schema\` to draft 2020-12, so the \`dataschema\` of an event can be handed to JSON Schema tooling as is. Versions never change once they exist.`,
  request: { params: z.object({ topic: TopicParam, type: TypeParam, version: VersionParam }) },
  responses: {
    200: {
      description: "The version",
      content: {
        "application/json": { schema: SchemaVersionSchema },
        [SCHEMA_MEDIA_TYPE]: { schema: z.record(z.string(), z.unknown()) },
      },
    },
    400: problemResponse("The version is not a positive integer, or the type is longer than 256 characters"),
    404: problemResponse("Unknown topic, type or version"),
  },
});

const catalogRoute = createRoute({
  method: "get",
  path: "/v1/schemas",
  middleware: [catalogAccess] as const,
  tags: ["Schemas"],
  summary: "Every event type with schema versions, on the topics the caller may consume or produce to",
  description: "With `topic`, that topic's types only (`404` for an unknown topic, `403` without `consume` or `produce` on it).",
  request: { query: CatalogQuery },
  responses: {
    200: { description: "Each (topic, type) and its latest version", content: { "application/json": { schema: SchemaCatalogSchema } } },
    403: problemResponse("No `consume` or `produce` grant on the `topic` asked for"),
    404: problemResponse("Unknown `topic`"),
  },
});

const originOf = (url: string) => new URL(url).origin;

function itemOf(origin: string, v: SchemaVersionView) {
  return {
    version: v.version,
    schema: v.schema,
    dataschema: schemaUri(origin, v.topic, v.type, v.version),
    source: v.source,
    ...(v.createdAt === undefined ? {} : { createdAt: v.createdAt }),
    ...(v.createdBy === undefined ? {} : { createdBy: v.createdBy }),
  };
}

/** The schema as JSON Schema tooling fetches it: its URI as `$id`, the dialect as `$schema` (`true`/`false` in object form). */
function rawSchema(schema: JsonSchema, id: string): Record<string, unknown> {
  const body = schema === true ? {} : schema === false ? { not: {} } : schema;
  const { $id: _id, $schema: _dialect, ...rest } = body;
  return { $schema: DRAFT_2020_12, $id: id, ...rest };
}

/**
 * The type's versions from the cache; when the cache lacks what was asked for (a version
 * registered through another isolate within the cache bound), the type's own rows from D1 (one
 * indexed query, not a reload of the whole registry, so probing unknown names costs little).
 */
async function versionsFor(
  db: D1Database,
  topic: TopicConfig,
  type: string,
  found: (schemas: TypeSchemas | undefined) => boolean,
): Promise<TypeSchemas | undefined> {
  const cached = await typeSchemas(db, topic, type);
  return found(cached) ? cached : (await typeSnapshot(db, topic, type)).schemas;
}

function noVersions(topic: string, type: string): EventlineError {
  return new EventlineError("not_found", `type ${JSON.stringify(type)} of topic ${topic} has no schema versions`);
}

export function schemaReadRoutes(config: EventlineConfig) {
  return new OpenAPIHono<AppEnv>()
    .openapi(listRoute, async (c) => {
      const { topic: name, type } = c.req.valid("param");
      const topic = requireTopic(config, name);
      const schemas = await versionsFor(c.env.DB, topic, type, (s) => s !== undefined);
      if (schemas === undefined) throw noVersions(topic.name, type);
      const origin = originOf(c.req.url);
      return c.json(
        { topic: topic.name, type, compatibility: schemas.compatibility, schemas: schemas.versions.map((v) => itemOf(origin, v)) },
        200,
      );
    })
    .openapi(versionRoute, async (c) => {
      const { topic: name, type, version } = c.req.valid("param");
      const topic = requireTopic(config, name);
      const find = (schemas: TypeSchemas | undefined) => schemas?.versions.find((v) => v.version === version);
      const found = find(await versionsFor(c.env.DB, topic, type, (s) => find(s) !== undefined));
      if (found === undefined) {
        throw new EventlineError("not_found", `type ${JSON.stringify(type)} of topic ${topic.name} has no schema version ${version}`);
      }
      const item = itemOf(originOf(c.req.url), found);
      const headers = { vary: "accept" };
      if ((c.req.header("accept") ?? "").includes(SCHEMA_MEDIA_TYPE)) {
        // `as never`: the typed-response helper knows one JSON body per status.
        return c.body(JSON.stringify(rawSchema(item.schema, item.dataschema)), 200, {
          ...headers,
          "content-type": SCHEMA_MEDIA_TYPE,
        }) as never;
      }
      return c.json(item, 200, headers);
    })
    .openapi(catalogRoute, async (c) => {
      const principal = c.get("principal");
      const origin = originOf(c.req.url);
      const { topic } = c.req.valid("query");
      const readable = topic === undefined ? config.topics : [requireTopic(config, topic)];
      const visible = {
        ...config,
        topics: readable.filter((t) => may(config, principal, "consume", t.name) || may(config, principal, "produce", t.name)),
      };
      const types = (await schemaCatalog(c.env.DB, visible)).map((t) => ({
        topic: t.topic,
        type: t.type,
        compatibility: t.compatibility,
        latestVersion: t.latest.version,
        dataschema: schemaUri(origin, t.topic, t.type, t.latest.version),
        versions: t.versions,
      }));
      return c.json({ types }, 200);
    });
}
