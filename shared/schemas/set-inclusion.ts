import { type ParseContext, parseAsJsonSet } from "json-schema-diff/dist/json-schema-diff/diff-schemas/parse-as-json-set";
import { UnsupportedSchemaError } from "./dereference";
import { enumeratedValues, isOpaque, isSchemaObject, JSON_TYPES, type JsonSchema, typeOfValue } from "./json-schema";

// The heuristic json-schema-diff's own CLI and API default to (its dist/json-schema-diff/config.js).
const CONTEXT: ParseContext = { heuristics: { applyLawOfAbsorptionInTypeSetCartesianProduct: true } };

const NUMERIC = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] as const;
const COUNTS = ["minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"] as const;
const LISTS = ["allOf", "anyOf", "oneOf"] as const;

/** Keywords whose meaning depends on their siblings' (which properties or items were evaluated). */
const CONTEXTUAL = ["unevaluatedProperties", "unevaluatedItems"] as const;

/**
 * The schema json-schema-diff is given: only the keywords it understands, each checked for the
 * shape it assumes (it would throw, or misread, on anything else). Keywords it does not know are
 * left out — the callers refuse a change to them — and an `enum`/`const` narrows `type` to the
 * types of its values, so the library's view of a schema stays a superset of what it accepts.
 *
 * That superset argument needs every part to count positively: a `oneOf` holding anything the
 * library cannot read exactly (a wider branch can make the whole narrower) is left out as a whole
 * (the callers require it unchanged), as is `not` (see LIBRARY_KEYWORDS). Keywords whose meaning
 * depends on their siblings are refused. `items` beside `prefixItems` and `additionalProperties`
 * beside `patternProperties` apply to fewer members than the library assumes, so they are left
 * out too (and must stay equal).
 */
export function toLibrarySchema(schema: unknown, at = ""): JsonSchema {
  if (typeof schema === "boolean") return schema;
  if (!isSchemaObject(schema)) throw new UnsupportedSchemaError(at, "a subschema is neither an object nor a boolean");
  for (const keyword of CONTEXTUAL) {
    if (schema[keyword] !== undefined) throw new UnsupportedSchemaError(`${at}/${keyword}`, `${keyword} is not supported`);
  }
  const out: Record<string, unknown> = {};
  const allOf: JsonSchema[] = [];
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (types.length === 0 || !types.every((t) => (JSON_TYPES as readonly unknown[]).includes(t))) {
      throw new UnsupportedSchemaError(`${at}/type`, "type names no JSON type");
    }
    out.type = types;
  }
  for (const keyword of [...NUMERIC, ...COUNTS]) {
    const value = schema[keyword];
    if (value === undefined) continue;
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new UnsupportedSchemaError(`${at}/${keyword}`, `${keyword} is not a number`);
    }
    out[keyword] = value;
  }
  if (schema.required !== undefined) {
    if (!Array.isArray(schema.required) || !schema.required.every((r) => typeof r === "string")) {
      throw new UnsupportedSchemaError(`${at}/required`, "required is not a list of names");
    }
    out.required = [...new Set(schema.required)];
  }
  if (schema.properties !== undefined) {
    if (!isSchemaObject(schema.properties)) throw new UnsupportedSchemaError(`${at}/properties`, "properties is not an object");
    out.properties = Object.fromEntries(
      Object.entries(schema.properties).map(([name, sub]) => [name, toLibrarySchema(sub, `${at}/properties/${name}`)]),
    );
  }
  if (schema.additionalProperties !== undefined && schema.patternProperties === undefined) {
    out.additionalProperties = toLibrarySchema(schema.additionalProperties, `${at}/additionalProperties`);
  }
  if (schema.items !== undefined) {
    if (Array.isArray(schema.items)) throw new UnsupportedSchemaError(`${at}/items`, "items as a list (use prefixItems)");
    if (schema.prefixItems === undefined) out.items = toLibrarySchema(schema.items, `${at}/items`);
  }
  for (const keyword of LISTS) {
    const list = schema[keyword];
    if (list === undefined) continue;
    if (!Array.isArray(list) || list.length === 0)
      throw new UnsupportedSchemaError(`${at}/${keyword}`, `${keyword} is not a non-empty list`);
    if (keyword === "oneOf" && isOpaque(list)) continue;
    const members = list.map((sub, i) => toLibrarySchema(sub, `${at}/${keyword}/${i}`));
    if (keyword === "allOf") allOf.push(...members);
    else out[keyword] = members;
  }
  if (out.maxProperties === 0) {
    // json-schema-diff 1.0.0 simplifies maxProperties 0 to "no additional properties" but keeps
    // the listed ones allowed (its simplify-object-subset-config.js); say "no properties" in full.
    delete out.maxProperties;
    out.additionalProperties = false;
    out.properties = Object.fromEntries(Object.keys(isSchemaObject(out.properties) ? out.properties : {}).map((name) => [name, false]));
  }
  const values = enumeratedValues(schema);
  if (values !== undefined) {
    if (values.length === 0) return false;
    allOf.push({ type: [...new Set(values.map(typeOfValue))] });
  }
  if (allOf.length > 0) out.allOf = allOf;
  return out;
}

/**
 * Work allowed per inclusion test, counted in pairs of subsets intersected. json-schema-diff
 * computes in disjunctive normal form: every intersection is a cartesian product of subset lists
 * (`SomeTypeSet.intersectSubsets`, its set/type-set.js), and unions multiply them — n `anyOf`
 * branches of open objects cost ~5^n. Measured in Node: 4 such branches ~34,000 pairs (~0.2 s), a
 * 3-branch `oneOf` ~175,000, the orders demo's largest schema 78. A comparison over budget is
 * refused (unless the schemas are identical) rather than let one registration hold a Worker's CPU.
 */
export const MAX_SET_PRODUCTS = 50_000;

let fuel = Number.POSITIVE_INFINITY;

interface TypeSetInternals {
  intersectSubsets(a: readonly unknown[], b: readonly unknown[]): unknown[];
}

// The library has no budget of its own and a synchronous computation cannot be interrupted, so its
// one product method is wrapped to count. A probe set reaches the class; if a release renames it,
// every comparison is refused (fail closed) and the cost tests fail.
const budgeted = ((): boolean => {
  const probe = parseAsJsonSet({ type: "string", minLength: 1 }, CONTEXT) as unknown as { config?: Record<string, unknown> };
  const prototype: unknown = probe.config?.string === undefined ? undefined : Object.getPrototypeOf(probe.config.string);
  if (!isSchemaObject(prototype) || typeof prototype.intersectSubsets !== "function") return false;
  const internals = prototype as unknown as TypeSetInternals;
  const product = internals.intersectSubsets;
  internals.intersectSubsets = function (this: unknown, a, b) {
    fuel -= a.length * b.length;
    if (fuel < 0) throw new UnsupportedSchemaError("", `comparing these schemas needs more than ${MAX_SET_PRODUCTS} set products`);
    return product.call(this, a, b);
  };
  return true;
})();

export interface Inclusion {
  /** Every value the library sees in `sub` is in `sup`. */
  included: boolean;
  /** The values of `sub` outside `sup`, as json-schema-diff writes that set (`false` when included). */
  outside: unknown;
}

/** `sub ⊆ sup` by json-schema-diff's set algebra: `sub ∩ ¬(sub ∩ sup)` is empty (its diff-schemas.js). */
export function setInclusion(sub: JsonSchema, sup: JsonSchema): Inclusion {
  if (!budgeted) throw new UnsupportedSchemaError("", "json-schema-diff's set products cannot be bounded in this version");
  const left = toLibrarySchema(sub);
  const right = toLibrarySchema(sup);
  // Parsing counts too: a oneOf is parsed as intersections with its branches' complements.
  fuel = MAX_SET_PRODUCTS;
  try {
    const a = parseAsJsonSet(left, CONTEXT);
    const b = parseAsJsonSet(right, CONTEXT);
    const outside = a.intersect(b).complement().intersect(a);
    const included = outside.type === "empty";
    return { included, outside: included ? false : outside.toJsonSchema() };
  } finally {
    fuel = Number.POSITIVE_INFINITY;
  }
}
