import { canonicalJson, jsonPointer } from "../json";

/**
 * A JSON Schema (draft 2020-12): an object or one of the boolean schemas. The registry validates
 * a schema before it compares it; the compatibility engine still never trusts a keyword's shape.
 */
export type JsonSchema = boolean | JsonSchemaObject;
export type JsonSchemaObject = { readonly [keyword: string]: unknown };

/** The data of an event: every path the engine reports is a JSON Pointer below it. */
export const DATA_ROOT = "/data";

export function childPath(path: string, segment: string): string {
  return jsonPointer(path, [segment]);
}

/** Keywords that never change which values a schema accepts (2020-12 annotations and identifiers). */
export const ANNOTATIONS: ReadonlySet<string> = new Set([
  "title",
  "description",
  "$schema",
  "$id",
  "$anchor",
  "$dynamicAnchor",
  "$vocabulary",
  "$comment",
  "default",
  "examples",
  "deprecated",
  "readOnly",
  "writeOnly",
  "contentMediaType",
  "contentEncoding",
  "contentSchema",
]);

/**
 * Keywords json-schema-diff turns into sets (its parse-as-json-set.js), `items` as one schema.
 * It parses `not` too, but complements of object sets lose members (a fast-check counterexample
 * in test/unit/schema-compatibility-property.test.ts found it), so `not` is treated as unsupported.
 */
export const LIBRARY_KEYWORDS: ReadonlySet<string> = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "minLength",
  "maxLength",
  "minItems",
  "maxItems",
  "minProperties",
  "maxProperties",
  "allOf",
  "anyOf",
  "oneOf",
]);

/** Keywords this engine handles itself: value sets, and local references (inlined beforehand). */
export const ENGINE_KEYWORDS: ReadonlySet<string> = new Set(["enum", "const", "$ref", "$defs", "definitions"]);

/** Any other keyword (pattern, format, multipleOf, if/then/else, an unknown one…) must stay identical. */
export function isUnsupportedKeyword(keyword: string): boolean {
  return !ANNOTATIONS.has(keyword) && !LIBRARY_KEYWORDS.has(keyword) && !ENGINE_KEYWORDS.has(keyword);
}

/**
 * Whether a subschema holds anything json-schema-diff reads only approximately: a keyword it does
 * not know, or an enum/const (shown to it as the types of the values).
 */
export function isOpaque(schema: unknown): boolean {
  if (Array.isArray(schema)) return schema.some(isOpaque);
  if (!isSchemaObject(schema)) return false;
  return Object.entries(schema).some(([keyword, value]) => {
    if (keyword === "enum" || keyword === "const" || isUnsupportedKeyword(keyword)) return true;
    if (keyword === "properties") return isSchemaObject(value) && Object.values(value).some(isOpaque);
    return ["items", "additionalProperties", "allOf", "anyOf", "oneOf"].includes(keyword) && isOpaque(value);
  });
}

export const JSON_TYPES = ["array", "boolean", "integer", "null", "number", "object", "string"] as const;
export type JsonType = (typeof JSON_TYPES)[number];

export function isSchemaObject(value: unknown): value is JsonSchemaObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function isSchema(value: unknown): value is JsonSchema {
  return typeof value === "boolean" || isSchemaObject(value);
}

export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  return canonicalJson(a) === canonicalJson(b);
}

/** The JSON type of a value, as the `type` keyword names it (integral numbers are `integer`). */
export function typeOfValue(value: unknown): JsonType {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  switch (typeof value) {
    case "number":
      return Number.isInteger(value) ? "integer" : "number";
    case "string":
      return "string";
    case "boolean":
      return "boolean";
    default:
      return "object";
  }
}

/** The `type` keyword as a list, or undefined when it is absent. */
export function declaredTypes(schema: JsonSchemaObject): JsonType[] | undefined {
  const type = schema.type;
  if (type === undefined) return undefined;
  return (Array.isArray(type) ? type : [type]).filter((t): t is JsonType => (JSON_TYPES as readonly string[]).includes(String(t)));
}

/** The enumerated values of `enum` or `const` (both present: only what both allow), if any. */
export function enumeratedValues(schema: JsonSchemaObject): unknown[] | undefined {
  const hasConst = Object.hasOwn(schema, "const");
  const list = Array.isArray(schema.enum) ? (schema.enum as unknown[]) : undefined;
  if (hasConst && list) return list.some((v) => sameJson(v, schema.const)) ? [schema.const] : [];
  if (hasConst) return [schema.const];
  return list;
}

/** A short JSON rendering for messages (long values are cut). */
export function render(value: unknown, max = 200): string {
  let text: string;
  try {
    text = canonicalJson(value);
  } catch {
    text = String(value);
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
