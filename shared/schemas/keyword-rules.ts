import { BACKWARD, BOTH, type Finding, FORWARD } from "./findings";
import {
  childPath,
  enumeratedValues,
  isOpaque,
  isSchemaObject,
  isUnsupportedKeyword,
  type JsonSchemaObject,
  render,
  sameJson,
} from "./json-schema";

const ABSENT: JsonSchemaObject = {};

function asObject(schema: unknown): JsonSchemaObject {
  return isSchemaObject(schema) ? schema : ABSENT;
}

/**
 * The rules for what json-schema-diff does not see, walked over both (dereferenced) schemas in
 * parallel. `enum`/`const` get set rules: the old values must all stay (backward) and no new
 * value may appear (forward). Every other keyword the library ignores (pattern, format,
 * multipleOf, if/then/else, prefixItems, patternProperties, …) must be identical in both, else
 * the change breaks both directions: the engine cannot tell which way it moved the set.
 */
export function keywordFindings(before: unknown, after: unknown, path: string): Finding[] {
  const findings: Finding[] = [];
  walk(before, after, path, findings);
  return findings;
}

// Walks the places where a subschema is a conjunct of the whole (properties, items, allOf members):
// there, a constraint left out on both sides widens both alike, so inclusion stays sound.
function walk(before: unknown, after: unknown, path: string, out: Finding[]): void {
  // A `false` side holds no values here, so what the other side says of them cannot be misread
  // in either direction (json-schema-diff sees the emptiness itself).
  if (before === false || after === false) return;
  const a = asObject(before);
  const b = asObject(after);
  if (a === ABSENT && b === ABSENT) return;
  if (sameJson(a, b)) return;

  // Facing `true` (an open model's unlisted name, say), a constraint can only make its side the
  // smaller one, and the library reads `true` exactly: only that direction is in doubt.
  const breaks = before === true ? BACKWARD : after === true ? FORWARD : BOTH;
  for (const keyword of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (!isUnsupportedKeyword(keyword) || sameJson(a[keyword], b[keyword])) continue;
    const change = a[keyword] === undefined ? "added to" : b[keyword] === undefined ? "removed from" : "changed at";
    out.push({ path, message: `${keyword} ${change} ${path} (not comparable, so refused)`, breaks });
  }
  enumFindings(a, b, path, out);

  // Beside prefixItems / patternProperties these apply to fewer members than json-schema-diff
  // assumes, so it is not shown them (set-inclusion.ts): they must stay as they were.
  const tupleItems = a.prefixItems !== undefined || b.prefixItems !== undefined;
  const patternRest = a.patternProperties !== undefined || b.patternProperties !== undefined;
  if (tupleItems && !sameJson(a.items, b.items)) {
    out.push({ path, message: `items beside prefixItems changed at ${path} (not comparable, so refused)`, breaks: BOTH });
  }
  if (patternRest && !sameJson(a.additionalProperties, b.additionalProperties)) {
    const message = `additionalProperties beside patternProperties changed at ${path} (not comparable, so refused)`;
    out.push({ path, message, breaks: BOTH });
  }

  const pa = asObject(a.properties);
  const pb = asObject(b.properties);
  // Without patternProperties, a name one side does not list falls to its additionalProperties.
  const fallback = (schema: JsonSchemaObject) =>
    schema.patternProperties === undefined ? (schema.additionalProperties ?? true) : undefined;
  for (const name of new Set([...Object.keys(pa), ...Object.keys(pb)])) {
    walk(pa[name] ?? fallback(a), pb[name] ?? fallback(b), childPath(path, name), out);
  }
  if (!patternRest && (a.additionalProperties !== undefined || b.additionalProperties !== undefined)) {
    walk(a.additionalProperties ?? true, b.additionalProperties ?? true, path, out);
  }
  if (!tupleItems && (a.items !== undefined || b.items !== undefined))
    walk(a.items ?? true, b.items ?? true, childPath(path, "items"), out);
  const la = Array.isArray(a.allOf) ? (a.allOf as unknown[]) : [];
  const lb = Array.isArray(b.allOf) ? (b.allOf as unknown[]) : [];
  for (let i = 0; i < Math.max(la.length, lb.length); i++) walk(la[i], lb[i], path, out);
  // A branch of anyOf/oneOf is no conjunct: left-out constraints in an unchanged branch can hide
  // a change elsewhere in the list. So a list holding them must stay as it was.
  for (const keyword of ["anyOf", "oneOf"] as const) {
    if (sameJson(a[keyword], b[keyword]) || !(isOpaque(a[keyword]) || isOpaque(b[keyword]))) continue;
    const message = `${keyword} of ${path} changed and holds keywords that cannot be compared (so refused)`;
    out.push({ path, message, breaks: BOTH });
  }
}

function enumFindings(a: JsonSchemaObject, b: JsonSchemaObject, path: string, out: Finding[]): void {
  const before = enumeratedValues(a);
  const after = enumeratedValues(b);
  if (before === undefined && after === undefined) return;
  if (before !== undefined && after !== undefined && sameValues(before, after)) return;
  if (a.const !== undefined && b.const !== undefined && a.enum === undefined && b.enum === undefined) {
    out.push({ path, message: `const of ${path} changed from ${render(a.const)} to ${render(b.const)}`, breaks: BOTH });
    return;
  }
  if (before === undefined) {
    out.push({ path, message: `values of ${path} restricted to ${render(after)}`, breaks: BACKWARD });
    return;
  }
  if (after === undefined) {
    out.push({ path, message: `values of ${path} no longer restricted to ${render(before)}`, breaks: FORWARD });
    return;
  }
  for (const value of before) {
    if (!after.some((v) => sameJson(v, value))) {
      out.push({ path, message: `enum value ${render(value)} removed from ${path}`, breaks: BACKWARD });
    }
  }
  for (const value of after) {
    if (!before.some((v) => sameJson(v, value))) {
      out.push({ path, message: `enum value ${render(value)} added to ${path}`, breaks: FORWARD });
    }
  }
}

function sameValues(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.every((x) => b.some((y) => sameJson(x, y))) && b.every((y) => a.some((x) => sameJson(x, y)));
}
