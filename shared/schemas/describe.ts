import { BACKWARD, BOTH, type Direction, type Finding, FORWARD } from "./findings";
import { childPath, declaredTypes, isSchemaObject, type JsonSchemaObject, type JsonType, render, sameJson } from "./json-schema";

/**
 * Names, in words, the structural changes between two (dereferenced) schemas that json-schema-
 * diff understands, each with a JSON Pointer into the event's data and the directions it breaks.
 * The verdict never comes from here (the library gives it); these are the reasons shown for it.
 */
export function describeChanges(before: unknown, after: unknown, path: string): Finding[] {
  const out: Finding[] = [];
  describe(before, after, path, out);
  return out;
}

const LOWER = ["minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"] as const;
const UPPER = ["maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"] as const;

function describe(before: unknown, after: unknown, path: string, out: Finding[]): void {
  if (sameJson(before, after)) return;
  if (after === false) {
    out.push({ path, message: `${path} no longer accepts any value`, breaks: BACKWARD });
    return;
  }
  if (before === false) {
    out.push({ path, message: `${path} now accepts values (it accepted none)`, breaks: FORWARD });
    return;
  }
  const a: JsonSchemaObject = isSchemaObject(before) ? before : {};
  const b: JsonSchemaObject = isSchemaObject(after) ? after : {};
  types(a, b, path, out);
  bounds(a, b, path, out);
  objects(a, b, path, out);
  if (a.items !== undefined || b.items !== undefined) describe(a.items ?? true, b.items ?? true, childPath(path, "items"), out);
  for (const keyword of ["allOf", "anyOf", "oneOf"] as const) {
    if (!sameJson(a[keyword], b[keyword])) out.push({ path, message: `${keyword} of ${path} changed`, breaks: BOTH });
  }
}

/** Whether `type` list `list` (undefined: any type) admits `type`; `number` admits `integer`. */
function admits(list: readonly JsonType[] | undefined, type: JsonType): boolean {
  return list === undefined || list.includes(type) || (type === "integer" && list.includes("number"));
}

function renderTypes(list: readonly JsonType[] | undefined): string {
  if (list === undefined) return "any";
  return list.length === 1 ? String(list[0]) : `[${list.join(", ")}]`;
}

function types(a: JsonSchemaObject, b: JsonSchemaObject, path: string, out: Finding[]): void {
  const ta = declaredTypes(a);
  const tb = declaredTypes(b);
  if (sameJson(ta, tb)) return;
  const lost = ta === undefined ? tb !== undefined : ta.some((t) => !admits(tb, t));
  const gained = tb === undefined ? ta !== undefined : tb.some((t) => !admits(ta, t));
  const breaks: Direction[] = [];
  if (lost) breaks.push("backward");
  if (gained) breaks.push("forward");
  if (breaks.length === 0) return;
  const verb = breaks.length === 2 ? "changed" : breaks[0] === "backward" ? "narrowed" : "widened";
  out.push({ path, message: `type of ${path} ${verb} (${renderTypes(ta)} → ${renderTypes(tb)})`, breaks });
}

function bounds(a: JsonSchemaObject, b: JsonSchemaObject, path: string, out: Finding[]): void {
  for (const keyword of [...LOWER, ...UPPER]) {
    const x = a[keyword];
    const y = b[keyword];
    if (x === y) continue;
    const lower = (LOWER as readonly string[]).includes(keyword);
    if (typeof x !== "number" && typeof y === "number") {
      out.push({ path, message: `${keyword} of ${path} added (${y})`, breaks: BACKWARD });
    } else if (typeof x === "number" && typeof y !== "number") {
      out.push({ path, message: `${keyword} of ${path} removed (was ${x})`, breaks: FORWARD });
    } else if (typeof x === "number" && typeof y === "number") {
      const tighter = lower ? y > x : y < x;
      out.push({
        path,
        message: `${keyword} of ${path} ${y > x ? "raised" : "lowered"} from ${x} to ${y}`,
        breaks: tighter ? BACKWARD : FORWARD,
      });
    }
  }
}

function listOf(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

function objects(a: JsonSchemaObject, b: JsonSchemaObject, path: string, out: Finding[]): void {
  const pa = isSchemaObject(a.properties) ? a.properties : {};
  const pb = isSchemaObject(b.properties) ? b.properties : {};
  const ra = listOf(a.required);
  const rb = listOf(b.required);
  const apA = a.additionalProperties ?? true;
  const apB = b.additionalProperties ?? true;
  for (const name of rb.filter((n) => !ra.includes(n))) {
    const where = childPath(path, name);
    const message = Object.hasOwn(pa, name) ? `property ${where} became required` : `required property ${where} added`;
    out.push({ path: where, message, breaks: BACKWARD });
  }
  for (const name of ra.filter((n) => !rb.includes(n))) {
    const where = childPath(path, name);
    out.push({ path: where, message: `property ${where} no longer required`, breaks: FORWARD });
  }
  for (const name of Object.keys(pa)) {
    const where = childPath(path, name);
    if (Object.hasOwn(pb, name)) describe(pa[name], pb[name], where, out);
    else {
      // Closed: old data holding it is refused now. Open: new data may hold any value under it.
      const breaks = apB === false ? BACKWARD : apB === true ? FORWARD : BOTH;
      out.push({ path: where, message: `property ${where} removed`, breaks });
    }
  }
  for (const name of Object.keys(pb)) {
    if (Object.hasOwn(pa, name)) continue;
    const where = childPath(path, name);
    if (apA === false) out.push({ path: where, message: `property ${where} added`, breaks: FORWARD });
    else if (!rb.includes(name)) {
      // Set semantics: old data could hold this name with any value (ADR 0048).
      const message = `optional property ${where} added to an open content model`;
      out.push({ path: where, message, breaks: apA === true ? BACKWARD : BOTH });
    }
  }
  if (sameJson(apA, apB)) return;
  if (apB === false) out.push({ path, message: `additional properties no longer allowed at ${path}`, breaks: BACKWARD });
  else if (apA === false) out.push({ path, message: `additional properties now allowed at ${path}`, breaks: FORWARD });
  else {
    const breaks = apA === true ? BACKWARD : apB === true ? FORWARD : BOTH;
    out.push({ path, message: `additional properties of ${path} changed (${render(apA)} → ${render(apB)})`, breaks });
  }
}
