import { dereference, UnsupportedSchemaError } from "./dereference";
import { describeChanges } from "./describe";
import type { Direction, Finding } from "./findings";
import { DATA_ROOT, type JsonSchema, render, sameJson } from "./json-schema";
import { keywordFindings } from "./keyword-rules";
import type { CompatibilityMode } from "./modes";
import { setInclusion } from "./set-inclusion";

export type { JsonSchema } from "./json-schema";

export interface SchemaVersion {
  version: number;
  /** A draft 2020-12 schema of the event's data: an object or a boolean schema. */
  schema: JsonSchema;
}

export interface Incompatibility {
  /** The earlier version the candidate breaks against. */
  version: number;
  /** JSON Pointer into the event, rooted at /data (e.g. /data/lines/items/quantity). */
  path: string;
  /** E.g. "required property /data/amount added". */
  message: string;
  /** backward: data written with the earlier version is refused by the candidate; forward: the reverse. */
  direction: Direction;
}

export interface CompatibilityResult {
  compatible: boolean;
  mode: CompatibilityMode;
  /** The versions compared, ascending: none (NONE, or no earlier version), the latest, or all. */
  checkedAgainst: number[];
  incompatibilities: Incompatibility[];
}

function directionsOf(mode: CompatibilityMode): Direction[] {
  if (mode.startsWith("BACKWARD")) return ["backward"];
  if (mode.startsWith("FORWARD")) return ["forward"];
  return ["backward", "forward"];
}

/**
 * Checks a candidate schema against the earlier versions under a Confluent compatibility mode
 * (ADR 0048). BACKWARD: every value valid under the earlier schema is valid under the candidate
 * (consumers on the new schema read old data); FORWARD: the reverse; FULL: both. Plain modes
 * compare with the latest earlier version, *_TRANSITIVE ones with every earlier version; NONE
 * compares nothing. Pure (no I/O): runs in workerd and Node alike, and never throws — a schema
 * it cannot reason about is reported as an incompatibility, not an error.
 */
export function checkCompatibility(mode: CompatibilityMode, candidate: JsonSchema, earlier: readonly SchemaVersion[]): CompatibilityResult {
  if (mode === "NONE" || earlier.length === 0) {
    return { compatible: true, mode, checkedAgainst: [], incompatibilities: [] };
  }
  const ascending = [...earlier].sort((x, y) => x.version - y.version);
  const targets = mode.endsWith("_TRANSITIVE") ? ascending : ascending.slice(-1);
  const directions = directionsOf(mode);
  const incompatibilities = targets.flatMap(({ version, schema }) =>
    compareVersions(schema, candidate, directions).map((f) => ({ version, ...f })),
  );
  return {
    compatible: incompatibilities.length === 0,
    mode,
    checkedAgainst: targets.map((t) => t.version),
    incompatibilities,
  };
}

type Reason = Omit<Incompatibility, "version">;

/** The reasons `after` breaks `before` in each of `directions` (none: compatible). */
export function compareVersions(before: JsonSchema, after: JsonSchema, directions: readonly Direction[]): Reason[] {
  if (sameJson(before, after)) return [];
  let a: JsonSchema;
  let b: JsonSchema;
  try {
    a = dereference(before);
    b = dereference(after);
  } catch (error) {
    return directions.map((direction) => refusal(error, direction));
  }
  if (sameJson(a, b)) return [];
  const rules = keywordFindings(a, b, DATA_ROOT);
  let described: Finding[] | undefined;
  const reasons: Reason[] = [];
  for (const direction of directions) {
    const found = rules.filter((f) => f.breaks.includes(direction));
    let outside: unknown;
    try {
      const inclusion = direction === "backward" ? setInclusion(a, b) : setInclusion(b, a);
      outside = inclusion.included ? undefined : inclusion.outside;
    } catch (error) {
      reasons.push(refusal(error, direction));
      continue;
    }
    if (outside !== undefined) {
      described ??= describeChanges(a, b, DATA_ROOT);
      const why = described.filter((f) => f.breaks.includes(direction));
      if (why.length > 0) found.push(...why);
      else if (found.length === 0) {
        // Nothing structural names it (a rewritten anyOf/oneOf, say): show the library's set.
        const refuser =
          direction === "backward"
            ? "the new schema refuses values the earlier one accepted"
            : "the earlier schema refuses values the new one accepts";
        found.push({ path: DATA_ROOT, message: `${refuser}: ${render(outside)}`, breaks: [direction] });
      }
    }
    const seen = new Set<string>();
    for (const { path, message } of found) {
      if (seen.has(message)) continue;
      seen.add(message);
      reasons.push({ path, message, direction });
    }
  }
  return reasons;
}

function refusal(error: unknown, direction: Direction): Reason {
  const why = error instanceof UnsupportedSchemaError ? error.message : `comparison failed: ${String(error)}`;
  return { path: DATA_ROOT, message: `${why}; only an identical schema is accepted`, direction };
}
