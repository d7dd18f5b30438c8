import { type OutputUnit, Validator } from "@cfworker/json-schema";
import type { z } from "zod";
import { parseSchemaUri, schemaPath, schemaUri } from "../../../sdk/schema-uri";
import { type CloudEvent, isJsonMediaType } from "../../../shared/cloudevents";
import { declaredVersions, type TopicConfig } from "../../../shared/config";
import { EventlineError, type ProblemIssue } from "../../../shared/errors";
import { jsonPointer } from "../../../shared/json";
import type { JsonSchema } from "../../../shared/schemas/from-zod";
import { typeSchemas } from "../schemas/registry";

/**
 * Events carry their schema (docs/http-api.md "Data schemas", ADR 0051): which version of its
 * type's data schema an event is checked against, the check itself, and the `dataschema` it is
 * stored with.
 *
 * - A type with versions: `dataschema`, when given, must be one of that type's Eventline schema
 *   URIs (any origin) naming an existing version — the event is checked against that version and
 *   stored with the producer's URI as sent; absent, the latest version is used and its URI,
 *   under the ingest request's origin, is stamped on the stored event.
 * - A type without versions: `dataschema` is the producer's business (any absolute URI), except
 *   an Eventline URI naming this very type, which names a version that does not exist.
 */

/** One version as the check needs it: config versions by their zod schema, runtime ones by JSON Schema. */
export interface CheckedVersion {
  version: number;
  /** Config-declared versions: the check (it holds refinements JSON Schema cannot express). */
  zod?: z.ZodType | undefined;
  /** Runtime-registered versions: the JSON Schema (draft 2020-12) checked with @cfworker/json-schema. */
  schema?: JsonSchema | undefined;
}

/** Where the versions of a topic's types come from, and the origin stamped URIs are built on. */
export interface DataSchemaSource {
  /** E.g. `https://eventline.example`; without one (platform-written records) nothing is stamped. */
  origin: string | undefined;
  /** A type's versions, ascending; undefined when it has none. */
  versionsOf(type: string): Promise<CheckedVersion[] | undefined>;
}

/**
 * Ingest's source: config versions then runtime-registered ones (the registry's per-isolate cache,
 * so no D1 read per request). A registry that cannot be read at all (D1 failing, nothing cached)
 * is a 503: no event is checked against less than its type's real versions.
 */
export function registrySource(db: D1Database, topic: TopicConfig, origin: string, retryAfter: number): DataSchemaSource {
  return {
    origin,
    async versionsOf(type) {
      try {
        return (await typeSchemas(db, topic, type))?.versions;
      } catch (err) {
        throw new EventlineError(
          "unavailable",
          `the schema registry cannot be read (${err instanceof Error ? err.message : String(err)}); nothing was stored, retrying is safe`,
          { retryAfter, cause: err },
        );
      }
    },
  };
}

/**
 * The config's versions only: what events the platform writes itself are checked against. A
 * command's decider is code written against the config's zod schema, so its events carry the
 * config-declared latest version (ADR 0051), whatever was registered at runtime since.
 */
export function configSource(topic: TopicConfig, origin: string | undefined): DataSchemaSource {
  return {
    origin,
    versionsOf: async (type) => {
      const declared = declaredVersions(topic, type);
      return declared.length === 0 ? undefined : declared.map((zod, i) => ({ version: i + 1, zod }));
    },
  };
}

/** Where a type's versions are listed (`GET …/schemas`), for error messages. */
function listUrl(origin: string | undefined, topic: string, type: string): string {
  const path = schemaPath(topic, type, 1).replace(/\/1$/, "");
  return origin === undefined ? path : `${origin}${path}`;
}

function available(origin: string | undefined, topic: string, type: string, versions: CheckedVersion[]): string {
  return `type "${type}" has version${versions.length === 1 ? "" : "s"} ${versions.map((v) => v.version).join(", ")}: see ${listUrl(origin, topic, type)}`;
}

/** Validators of runtime versions, per schema object (the registry's cache keeps one object per version). */
const validators = new WeakMap<object, Validator>();

function validatorOf(schema: JsonSchema): Validator {
  if (typeof schema === "boolean") return new Validator(schema, "2020-12", false);
  let validator = validators.get(schema);
  if (validator === undefined) {
    validator = new Validator(schema, "2020-12", false);
    validators.set(schema, validator);
  }
  return validator;
}

/** Keywords whose failure is only the sum of a deeper one reported beside it. */
const SUMMARIES: ReadonlySet<string> = new Set([
  "properties",
  "patternProperties",
  "additionalProperties",
  "unevaluatedProperties",
  "items",
  "prefixItems",
  "additionalItems",
  "unevaluatedItems",
  "contains",
  "dependentSchemas",
  "propertyNames",
  "allOf",
  "$ref",
  "$dynamicRef",
  "$recursiveRef",
  "if",
  "then",
  "else",
]);

/** A failing branch of anyOf / oneOf / not: its parent's own error says it better. */
const IN_BRANCH = /\/(anyOf|oneOf)\/\d+\/|\/not\//;

/** @cfworker/json-schema's output as problem issues: the deepest failures, JSON Pointers under `base`. */
export function jsonSchemaIssues(errors: OutputUnit[], base: string): ProblemIssue[] {
  const issues: ProblemIssue[] = [];
  const seen = new Set<string>();
  for (const unit of errors) {
    if (SUMMARIES.has(unit.keyword) || IN_BRANCH.test(unit.keywordLocation)) continue;
    // instanceLocation is "#" + a URI-encoded JSON Pointer; its segments stay RFC 6901-escaped.
    const pointer = unit.instanceLocation
      .replace(/^#/, "")
      .split("/")
      .map((segment) => {
        try {
          return decodeURIComponent(segment);
        } catch {
          return segment;
        }
      })
      .join("/");
    const message = unit.keyword === "false" ? "is not allowed by the schema" : unit.error;
    const key = `${pointer}\u0000${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push({ path: `${base}${pointer}`, message });
  }
  return issues.length > 0 ? issues : [{ path: base, message: "does not match the schema" }];
}

function dataIssues(version: CheckedVersion, data: unknown, base: string): ProblemIssue[] {
  if (version.zod !== undefined) {
    const result = version.zod.safeParse(data);
    if (result.success) return [];
    return result.error.issues.map((issue) => ({ path: jsonPointer(base, issue.path), message: issue.message }));
  }
  if (version.schema === undefined) return [];
  // The JSON event format reads `"data": null` as no data: an event without data is checked as
  // null, so a schema that accepts null (or anything) accepts it, and any other is a 422.
  const result = validatorOf(version.schema).validate(data === undefined ? null : data);
  if (result.valid) return [];
  if (data === undefined) return [{ path: base, message: "is missing (no data, or null), and this version's schema does not accept null" }];
  return jsonSchemaIssues(result.errors, base);
}

export interface DataSchemaCheck {
  issues: ProblemIssue[];
  /** Per event: the `dataschema` to add to the stored event (the latest version's URI), if any. */
  stamps: (string | undefined)[];
}

/**
 * Checks each event's data against the version its `dataschema` names, or its type's latest, and
 * says which events get a `dataschema` stamped. Types are looked up once per request.
 */
export async function checkDataSchemas(
  events: CloudEvent[],
  topic: TopicConfig,
  source: DataSchemaSource,
  base: (i: number) => string,
): Promise<DataSchemaCheck> {
  const types = [...new Set(events.map((e) => e.type))];
  const looked = await Promise.all(types.map((type) => source.versionsOf(type)));
  const versionsByType = new Map(types.map((type, i) => [type, looked[i]]));
  const issues: ProblemIssue[] = [];
  const stamps = events.map((event, i) => {
    const { issues: found, stamp } = checkOne(event, topic, source.origin, versionsByType.get(event.type), base(i));
    issues.push(...found);
    return stamp;
  });
  return { issues, stamps };
}

function checkOne(
  event: CloudEvent,
  topic: TopicConfig,
  origin: string | undefined,
  versions: CheckedVersion[] | undefined,
  base: string,
): { issues: ProblemIssue[]; stamp?: string } {
  const named = event.dataschema === undefined ? undefined : parseSchemaUri(event.dataschema);
  if (versions === undefined) {
    if (topic.strictTypes) {
      const known = Object.keys(topic.schemas).join(", ");
      return {
        issues: [
          {
            path: `${base}/type`,
            message: `topic ${topic.name} does not accept type "${event.type}": it has no data schema (declared: ${known}; others can be registered)`,
          },
        ],
      };
    }
    if (named !== undefined && named.topic === topic.name && named.type === event.type) {
      const message = `${event.dataschema} names version ${named.version} of type "${event.type}", which has no schema versions: see ${listUrl(origin, topic.name, event.type)}`;
      return { issues: [{ path: `${base}/dataschema`, message }] };
    }
    return { issues: [] };
  }
  if (event.data_base64 !== undefined || !isJsonMediaType(event.datacontenttype)) {
    return { issues: [{ path: `${base}/data`, message: `type "${event.type}" requires JSON data` }] };
  }
  const latest = versions.at(-1) as CheckedVersion;
  if (event.dataschema === undefined) {
    const found = dataIssues(latest, event.data, `${base}/data`);
    return origin === undefined ? { issues: found } : { issues: found, stamp: schemaUri(origin, topic.name, event.type, latest.version) };
  }
  const uri = event.dataschema;
  const problem = (message: string) => ({ issues: [{ path: `${base}/dataschema`, message }] });
  if (named === undefined) {
    return problem(
      `${uri} is not an Eventline schema URI (<origin>/v1/topics/{topic}/types/{type}/schemas/{version}); ${available(origin, topic.name, event.type, versions)}`,
    );
  }
  if (named.topic !== topic.name || named.type !== event.type) {
    return problem(
      `${uri} names a schema of ${named.topic}/${named.type}, not of ${topic.name}/${event.type}; ${available(origin, topic.name, event.type, versions)}`,
    );
  }
  const version = versions.find((v) => v.version === named.version);
  if (version === undefined) {
    return problem(`${uri} names version ${named.version}, which does not exist; ${available(origin, topic.name, event.type, versions)}`);
  }
  // Kept exactly as sent, and like a stamp not part of the content hash: the version an event was
  // checked against is not its content, so re-sending a stored event (its stamp included) is a duplicate.
  return { issues: dataIssues(version, event.data, `${base}/data`), stamp: uri };
}
