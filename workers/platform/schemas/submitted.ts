import { type Schema, Validator } from "@cfworker/json-schema";
import { EventlineError, type ProblemIssue } from "../../../shared/errors";
import { canonicalJson, jsonPointer, resolveJsonPointer, sha256Hex } from "../../../shared/json";
import type { JsonSchema } from "../../../shared/schemas/from-zod";
import { DRAFT_2020_12, metaSchemaIssues } from "./meta-schema";

/**
 * What the registry accepts as a data schema (docs/schemas.md "Registering a version"): a JSON
 * Schema draft 2020-12 (object or boolean) that passes the draft's meta-schema, compiles, names
 * only local `$ref`s that resolve, and is at most MAX_SCHEMA_BYTES as canonical JSON. A top-level
 * `$id` is dropped: the registry names every version by its `dataschema` URI and serves it as its
 * `$id`. Nested `$id`s are refused, so every `#…` reference resolves against the schema's root.
 */

/** Largest schema stored, as canonical JSON (UTF-8 bytes). */
export const MAX_SCHEMA_BYTES = 64 * 1024;

export interface SubmittedSchema {
  /** The schema as stored: the submitted one without a top-level `$id`. */
  schema: JsonSchema;
  /** Its canonical JSON (what sizes are counted in). */
  canonical: string;
  /** The stored text: the schema as its author wrote it (member order kept; `$id` dropped). */
  text: string;
  /** SHA-256 (hex) of its canonical form without `$id`/`$schema`: equal schemas, equal fingerprints. */
  fingerprint: string;
}

/** One JSON Pointer token. */
const escapePointer = (key: string) => jsonPointer("", [key]).slice(1);

const invalid = (detail: string, issues: ProblemIssue[]) => new EventlineError("unprocessable_request", detail, { issues });

const SINGLE = [
  "items",
  "contains",
  "additionalProperties",
  "propertyNames",
  "not",
  "if",
  "then",
  "else",
  "unevaluatedItems",
  "unevaluatedProperties",
  "additionalItems",
] as const;
const ARRAYS = ["prefixItems", "allOf", "anyOf", "oneOf"] as const;
const MAPS = ["$defs", "definitions", "properties", "patternProperties", "dependentSchemas", "dependencies"] as const;
const REFS = ["$ref", "$dynamicRef", "$recursiveRef"] as const;

type Visit = (schema: Record<string, unknown>, pointer: string) => void;

/** Calls `visit` on every object subschema, in schema positions only (not inside `enum`, `const`, `default`…). */
function walk(schema: unknown, pointer: string, visit: Visit): void {
  if (schema === null || typeof schema !== "object" || Array.isArray(schema)) return;
  const node = schema as Record<string, unknown>;
  visit(node, pointer);
  for (const key of SINGLE) if (Object.hasOwn(node, key)) walk(node[key], `${pointer}/${key}`, visit);
  for (const key of ARRAYS) {
    const list = node[key];
    if (!Array.isArray(list)) continue;
    for (const [i, item] of list.entries()) walk(item, `${pointer}/${key}/${i}`, visit);
  }
  for (const key of MAPS) {
    const map = node[key];
    if (map === null || typeof map !== "object" || Array.isArray(map)) continue;
    for (const [name, item] of Object.entries(map)) walk(item, `${pointer}/${key}/${escapePointer(name)}`, visit);
  }
}

/** The value a `#/a/b` fragment points at in `root`, or undefined. */
function resolveFragmentPointer(root: unknown, fragment: string): unknown {
  let decoded: string;
  try {
    decoded = decodeURIComponent(fragment);
  } catch {
    return undefined;
  }
  return resolveJsonPointer(root, decoded);
}

/** Remote references, nested `$id`s and local references that do not resolve. */
function referenceIssues(root: JsonSchema): ProblemIssue[] {
  const anchors = new Set<string>();
  walk(root, "", (node) => {
    for (const key of ["$anchor", "$dynamicAnchor"]) if (typeof node[key] === "string") anchors.add(node[key]);
  });
  const issues: ProblemIssue[] = [];
  walk(root, "", (node, pointer) => {
    if (pointer !== "" && Object.hasOwn(node, "$id")) {
      issues.push({
        path: `/schema${pointer}/$id`,
        message: "a nested $id is not supported: references resolve against the schema's root",
      });
    }
    for (const key of REFS) {
      const ref = node[key];
      if (typeof ref !== "string") continue;
      const at = `/schema${pointer}/${escapePointer(key)}`;
      if (!ref.startsWith("#")) {
        issues.push({ path: at, message: `${key} ${JSON.stringify(ref)} is not local: only references starting with # are allowed` });
        continue;
      }
      const fragment = ref.slice(1);
      const resolves =
        fragment === "" || fragment.startsWith("/") ? resolveFragmentPointer(root, fragment) !== undefined : anchors.has(fragment);
      if (!resolves) issues.push({ path: at, message: `${key} ${JSON.stringify(ref)} does not resolve within the schema` });
    }
  });
  return issues;
}

/** The form fingerprints are taken of: without the top-level `$id` and `$schema` (both are the registry's to set). */
function fingerprintForm(schema: JsonSchema): JsonSchema {
  if (typeof schema === "boolean") return schema;
  const { $id: _id, $schema: _schema, ...rest } = schema;
  return rest;
}

/** The fingerprint of a stored or config-declared version, comparable with SubmittedSchema.fingerprint. */
export function fingerprintOf(schema: JsonSchema): Promise<string> {
  return sha256Hex(canonicalJson(fingerprintForm(schema)));
}

const encoder = new TextEncoder();

/** Checks a submitted schema (the `schema` member of the body): 422 naming each problem, 413 when too large. */
export async function acceptSubmittedSchema(input: unknown): Promise<SubmittedSchema> {
  if (typeof input !== "boolean" && (input === null || typeof input !== "object" || Array.isArray(input))) {
    throw invalid("schema must be a JSON Schema: an object or a boolean", [{ path: "/schema", message: "not an object or a boolean" }]);
  }
  let schema = input as JsonSchema;
  if (typeof schema === "object" && Object.hasOwn(schema, "$id")) {
    const { $id: _assigned, ...rest } = schema;
    schema = rest;
  }
  const canonical = canonicalJson(schema);
  const bytes = encoder.encode(canonical).length;
  if (bytes > MAX_SCHEMA_BYTES) {
    throw new EventlineError("payload_too_large", `the schema is ${bytes} bytes as canonical JSON; at most ${MAX_SCHEMA_BYTES} are stored`);
  }
  if (typeof schema === "object" && Object.hasOwn(schema, "$schema")) {
    const dialect = schema.$schema;
    if (dialect !== DRAFT_2020_12 && dialect !== `${DRAFT_2020_12}#`) {
      throw invalid(`only JSON Schema draft 2020-12 is supported ($schema ${DRAFT_2020_12})`, [
        { path: "/schema/$schema", message: `${JSON.stringify(dialect)} is not draft 2020-12` },
      ]);
    }
  }
  const meta = metaSchemaIssues(schema);
  if (meta.length > 0) {
    throw invalid(
      "schema is not a valid JSON Schema (draft 2020-12 meta-schema)",
      meta.map((i) => ({ path: `/schema${i.pointer}`, message: i.message })),
    );
  }
  const references = referenceIssues(schema);
  if (references.length > 0) throw invalid("schema has references the registry cannot resolve", references);
  try {
    // The library annotates what it compiles: a copy, so the stored schema stays as submitted.
    new Validator(structuredClone(schema) as Schema | boolean as Schema, "2020-12");
  } catch (err) {
    throw invalid("schema does not compile", [{ path: "/schema", message: err instanceof Error ? err.message : String(err) }]);
  }
  return { schema, canonical, text: JSON.stringify(schema), fingerprint: await fingerprintOf(schema) };
}
