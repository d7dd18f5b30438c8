import { type Schema, Validator } from "@cfworker/json-schema";
import applicator from "./meta-2020-12/applicator.json";
import content from "./meta-2020-12/content.json";
import core from "./meta-2020-12/core.json";
import formatAnnotation from "./meta-2020-12/format-annotation.json";
import metaData from "./meta-2020-12/meta-data.json";
import top from "./meta-2020-12/schema.json";
import unevaluated from "./meta-2020-12/unevaluated.json";
import validation from "./meta-2020-12/validation.json";

/**
 * The JSON Schema draft 2020-12 meta-schema (the official files of json-schema.org/draft/2020-12,
 * copied verbatim into meta-2020-12/), checked with @cfworker/json-schema. That library does not
 * implement `$dynamicRef`; in the meta-schemas every `$dynamicRef` is `#meta`, which — validating
 * against the standard dialect, with no extending meta-schema — always resolves to the top
 * meta-schema, so it is rewritten to a plain `$ref` to it. Same verdicts, no dynamic scope.
 */

export const DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema";

function staticRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(staticRefs);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (key === "$dynamicRef") out.$ref = DRAFT_2020_12;
    else out[key] = staticRefs(item);
  }
  return out;
}

let validator: Validator | undefined;

function metaValidator(): Validator {
  if (validator === undefined) {
    const built = new Validator(staticRefs(top) as Schema, "2020-12", false);
    for (const vocabulary of [core, applicator, unevaluated, validation, metaData, formatAnnotation, content]) {
      built.addSchema(staticRefs(vocabulary) as Schema);
    }
    validator = built;
  }
  return validator;
}

/** Keywords whose error only says "a subschema had errors": the leaf errors under them say what. */
const WRAPPERS = new Set([
  "$ref",
  "allOf",
  "anyOf",
  "oneOf",
  "not",
  "if",
  "then",
  "else",
  "properties",
  "additionalProperties",
  "patternProperties",
  "propertyNames",
  "dependentSchemas",
  "items",
  "prefixItems",
  "contains",
  "unevaluatedProperties",
  "unevaluatedItems",
]);

/** The library's instance locations are `#` + a URI-encoded JSON Pointer. */
function decodeLocation(location: string): string {
  const encoded = location.replace(/^#/, "");
  try {
    return decodeURI(encoded).replaceAll("%23", "#");
  } catch {
    return encoded;
  }
}

export interface MetaSchemaIssue {
  /** JSON Pointer into the schema ("" is its root). */
  pointer: string;
  message: string;
}

/** Where `schema` breaks the draft 2020-12 meta-schema (empty when it is a valid JSON Schema), at most `max`. */
export function metaSchemaIssues(schema: unknown, max = 20): MetaSchemaIssue[] {
  const { valid, errors } = metaValidator().validate(schema);
  if (valid) return [];
  const leaves = errors.filter((e) => !WRAPPERS.has(e.keyword));
  const chosen = leaves.length > 0 ? leaves : errors.slice(-1);
  const seen = new Set<string>();
  const issues: MetaSchemaIssue[] = [];
  for (const error of chosen) {
    const pointer = decodeLocation(error.instanceLocation);
    const key = `${pointer}\u0000${error.error}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push({ pointer, message: error.error });
    if (issues.length === max) break;
  }
  return issues;
}
