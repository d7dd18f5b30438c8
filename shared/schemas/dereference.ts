import { resolveJsonPointer } from "../json";
import { ANNOTATIONS, isSchema, isSchemaObject, type JsonSchema, type JsonSchemaObject } from "./json-schema";

/** A schema the engine cannot reason about: compared versions must then be identical. */
export class UnsupportedSchemaError extends Error {
  override readonly name = "UnsupportedSchemaError";
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(path === "" ? reason : `${reason} (at ${path} of the schema)`);
  }
}

/** Bounds the work of inlining references (each one copies its target) and of the set algebra after it. */
export const MAX_SCHEMA_NODES = 5_000;

const SINGLE = new Set([
  "additionalProperties",
  "items",
  "contains",
  "not",
  "if",
  "then",
  "else",
  "propertyNames",
  "unevaluatedItems",
  "unevaluatedProperties",
]);
const MAPS = new Set(["properties", "patternProperties", "dependentSchemas"]);
const LISTS = new Set(["allOf", "anyOf", "oneOf", "prefixItems"]);
const DEFINITIONS = new Set(["$defs", "definitions"]);

/**
 * Inlines the local references (`#/$defs/x`, `#/definitions/x`, any `#/…` pointer into the same
 * document) and drops the definitions, so json-schema-diff (which does not follow `$ref`) and the
 * describer see one tree. A `$ref` beside other constraints becomes one more `allOf` member (in
 * 2020-12 both apply). Recursive references, remote or anchor references and `$dynamicRef`
 * cannot be inlined: they throw {@link UnsupportedSchemaError}.
 */
export function dereference(root: JsonSchema): JsonSchema {
  let nodes = 0;
  const nestedIds: string[] = [];
  let refs = 0;

  const resolve = (ref: string, at: string): JsonSchema => {
    if (!ref.startsWith("#")) throw new UnsupportedSchemaError(at, `$ref ${ref} is not a local reference`);
    let pointer: string;
    try {
      pointer = decodeURIComponent(ref.slice(1));
    } catch {
      throw new UnsupportedSchemaError(at, `$ref ${ref} is not a valid URI fragment`);
    }
    if (pointer === "") throw new UnsupportedSchemaError(at, "recursive $ref to the root is not supported");
    if (!pointer.startsWith("/")) throw new UnsupportedSchemaError(at, `$ref ${ref} names an anchor, not a JSON Pointer`);
    const target = resolveJsonPointer(root, pointer);
    if (target === undefined) throw new UnsupportedSchemaError(at, `$ref ${ref} does not resolve`);
    if (!isSchema(target)) throw new UnsupportedSchemaError(at, `$ref ${ref} does not resolve to a schema`);
    return target;
  };

  const expand = (node: unknown, at: string, stack: readonly string[]): unknown => {
    if (++nodes > MAX_SCHEMA_NODES) {
      throw new UnsupportedSchemaError(at, `schema has more than ${MAX_SCHEMA_NODES} subschemas once references are inlined`);
    }
    if (!isSchemaObject(node)) return node;
    if (at !== "" && typeof node.$id === "string") nestedIds.push(at);
    if (node.$dynamicRef !== undefined || node.$recursiveRef !== undefined) {
      throw new UnsupportedSchemaError(at, "$dynamicRef is not supported");
    }
    const out: Record<string, unknown> = {};
    for (const [keyword, value] of Object.entries(node)) {
      if (DEFINITIONS.has(keyword) || keyword === "$ref") continue;
      const here = `${at}/${keyword}`;
      if (SINGLE.has(keyword)) out[keyword] = expand(value, here, stack);
      else if (MAPS.has(keyword) && isSchemaObject(value)) {
        out[keyword] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expand(v, `${here}/${k}`, stack)]));
      } else if (LISTS.has(keyword) && Array.isArray(value)) {
        out[keyword] = value.map((v, i) => expand(v, `${here}/${i}`, stack));
      } else out[keyword] = value;
    }
    if (node.$ref === undefined) return out;
    if (typeof node.$ref !== "string") throw new UnsupportedSchemaError(at, "$ref is not a string");
    refs++;
    if (stack.includes(node.$ref)) throw new UnsupportedSchemaError(at, `recursive $ref ${node.$ref} is not supported`);
    const target = expand(resolve(node.$ref, at), at, [...stack, node.$ref]);
    const constraints = Object.keys(out).filter((k) => !ANNOTATIONS.has(k));
    if (constraints.length === 0) return target;
    if (out.allOf !== undefined && !Array.isArray(out.allOf)) throw new UnsupportedSchemaError(at, "allOf is not an array");
    return { ...out, allOf: [target, ...((out.allOf as unknown[] | undefined) ?? [])] };
  };

  const result = expand(root, "", []);
  if (refs > 0 && nestedIds.length > 0) {
    // A nested $id changes the base URI its references resolve against; we resolve against the root only.
    throw new UnsupportedSchemaError(nestedIds[0] ?? "", "$ref inside a schema with a nested $id is not supported");
  }
  return result as JsonSchema | JsonSchemaObject;
}
