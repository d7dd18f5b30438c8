import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { schemaUri } from "../../../sdk/schema-uri";
import { problemResponse, TopicParam } from "../../../shared/api-schemas";
import { type EventlineConfig, findTopic } from "../../../shared/config";
import { EventlineError } from "../../../shared/errors";
import { access, topicParam } from "../auth/access";
import type { AppEnv } from "../context";
import { CompatibilityVerdict, DryRunQuery, RegisteredSchema, SchemaBody, TypeParam } from "../schemas/api";
import { dryRunView, registerSchema } from "../schemas/register";
import { acceptSubmittedSchema } from "../schemas/submitted";
import { requireTopic } from "../validation";

/**
 * Registering data schema versions at runtime, and asking whether one would be accepted
 * (docs/schemas.md, ADR 0049). Registering needs `admin` on the topic and is audited; the dry run
 * (`?dryRun=true`, or the `/compatibility` alias) needs only `produce`, so the key a producer's CI
 * publishes with can ask before a deploy. It stores nothing, so it is not audited.
 */

const params = z.object({ topic: TopicParam, type: TypeParam });

const schemaResource = (c: Context<AppEnv>) => `schema:${c.req.param("topic")}/${c.req.param("type")}`;
const registerAccess = access({ group: "admin", action: "admin", topic: topicParam, audit: "schemas.register", resource: schemaResource });
const checkAccess = access({ group: "ingest", action: "produce", topic: topicParam });
/** `?dryRun=true` is a question, not a change: the producer's grant suffices. `false` or none needs admin (other values are a 400, after the grant check: fail closed). */
const registerOrCheck: MiddlewareHandler<AppEnv> = (c, next) =>
  c.req.query("dryRun") === "true" ? checkAccess(c, next) : registerAccess(c, next);

/**
 * Refuses query parameters the route does not know, before anything else: a misspelled `dryRun`
 * (`?dryrun=true`) must not be taken for a registration.
 */
const onlyQuery =
  (...accepted: string[]): MiddlewareHandler<AppEnv> =>
  async (c, next) => {
    for (const name of Object.keys(c.req.queries())) {
      if (!accepted.includes(name)) {
        throw new EventlineError(
          "invalid_parameter",
          `unknown query parameter ${JSON.stringify(name)}; ${accepted.length === 0 ? "this route takes none" : `the accepted one is ${accepted.map((a) => JSON.stringify(a)).join(", ")} (\`dryRun=true\` checks without registering)`}`,
        );
      }
    }
    await next();
  };

/**
 * Internal topics (the audit log) take no schemas: `422` for registration and dry run alike,
 * answered before the grant check (nobody can hold `produce` on them, so a grant check would
 * answer `403` for the dry run and `422` only for an admin's registration).
 */
const noInternalTopic: MiddlewareHandler<AppEnv> = async (c, next) => {
  const name = c.req.param("topic");
  const topic = name === undefined ? undefined : findTopic(c.get("config"), name);
  if (topic?.internal) {
    throw new EventlineError(
      "unprocessable_request",
      `topic ${name} is internal: only the platform writes it, so its types take no registered schemas`,
    );
  }
  await next();
};

const body = { required: true, content: { "application/json": { schema: SchemaBody } } };

const commonErrors = {
  400: problemResponse("Invalid body or parameter, or an unknown query parameter"),
  404: problemResponse("Unknown topic"),
  413: problemResponse("The schema is larger than 64 KiB as canonical JSON"),
  422: problemResponse(
    "Not a valid JSON Schema draft 2020-12 (meta-schema, remote or unresolvable `$ref`, nested `$id`), an internal topic, or a type at its version limit",
  ),
};

const registerRoute = createRoute({
  method: "post",
  path: "/v1/topics/{topic}/types/{type}/schemas",
  middleware: [onlyQuery("dryRun"), noInternalTopic, registerOrCheck] as const,
  tags: ["Schemas"],
  summary: "Register a new data schema version for an event type (or check one with dryRun=true)",
  description:
    "The schema (JSON Schema draft 2020-12) is checked against the earlier versions under the type's compatibility mode (`typeCompatibility`, else the topic's `compatibility`, default BACKWARD) and stored as the next version. A schema identical to an existing version (canonical JSON, ignoring `$id` and `$schema`) answers `200` with that version and `created: false`, and stores nothing (a new version: `201`, `created: true`). Query parameters other than `dryRun` are a `400`. Any type may get a first version this way; on a `strictTypes` topic that makes the type accepted. With `dryRun=true` nothing is stored and the answer is `200` with the verdict, compatible or not (grant: `produce`). Registering needs `admin` on the topic and is audited.",
  request: { params, query: DryRunQuery, body },
  responses: {
    200: {
      description: "Identical to an existing version (that version), or the verdict of a dry run",
      content: { "application/json": { schema: z.union([RegisteredSchema, CompatibilityVerdict]) } },
    },
    201: {
      description: "Registered; `Location` names the new version",
      content: { "application/json": { schema: RegisteredSchema } },
    },
    ...commonErrors,
    409: problemResponse(
      "`schema_incompatible`: the schema breaks the compatibility mode; `detail` names what, `issues` list each incompatibility (`path` rooted at /data) and the members of the dry-run verdict are included",
    ),
    503: problemResponse("Concurrent registrations for the type kept winning; retry"),
  },
});

const compatibilityRoute = createRoute({
  method: "post",
  path: "/v1/topics/{topic}/types/{type}/compatibility",
  middleware: [onlyQuery(), noInternalTopic, checkAccess] as const,
  tags: ["Schemas"],
  summary: "Would this schema be accepted as the type's next version? (the dry run of registration)",
  description:
    "Runs the checks of `POST …/schemas` and stores nothing. `200` with the verdict whether compatible or not: a question, not a registration. Grant: `produce` on the topic, so a producer's CI can fail before deploying (`eventline schemas check`).",
  request: { params, body },
  responses: {
    200: { description: "The verdict", content: { "application/json": { schema: CompatibilityVerdict } } },
    ...commonErrors,
  },
});

export function schemaRegistrationRoutes(config: EventlineConfig) {
  return new OpenAPIHono<AppEnv>()
    .openapi(registerRoute, async (c) => {
      const { topic: name, type } = c.req.valid("param");
      const dryRun = c.req.valid("query").dryRun === "true";
      const topic = requireTopic(config, name);
      const submitted = await acceptSubmittedSchema(c.req.valid("json").schema);
      const outcome = await registerSchema(c.env.DB, topic, type, submitted, { dryRun, createdBy: c.get("principal").id });
      if (dryRun) return c.json(dryRunView(outcome), 200);
      const dataschema = schemaUri(new URL(c.req.url).origin, topic.name, type, outcome.version);
      c.set("auditDetails", {
        type,
        version: outcome.version,
        fingerprint: submitted.fingerprint,
        created: outcome.created,
        compatibility: outcome.result.mode,
        checkedAgainst: outcome.result.checkedAgainst,
      });
      c.get("log").info(outcome.created ? "schema registered" : "schema already registered", {
        topic: topic.name,
        type,
        version: outcome.version,
      });
      const answer = {
        created: outcome.created,
        version: outcome.version,
        dataschema,
        compatibility: outcome.result.mode,
        checkedAgainst: outcome.result.checkedAgainst,
      };
      return outcome.created ? c.json(answer, 201, { location: dataschema }) : c.json(answer, 200, { "content-location": dataschema });
    })
    .openapi(compatibilityRoute, async (c) => {
      const { topic: name, type } = c.req.valid("param");
      const topic = requireTopic(config, name);
      const submitted = await acceptSubmittedSchema(c.req.valid("json").schema);
      const outcome = await registerSchema(c.env.DB, topic, type, submitted, { dryRun: true, createdBy: c.get("principal").id });
      return c.json(dryRunView(outcome), 200);
    });
}
