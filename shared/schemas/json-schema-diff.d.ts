// json-schema-diff 1.0.0 ships no types for its internals; this is the part ADR 0048 uses.
declare module "json-schema-diff/dist/json-schema-diff/diff-schemas/parse-as-json-set" {
  export interface JsonSet {
    readonly type: "all" | "empty" | "some";
    intersect(other: JsonSet): JsonSet;
    union(other: JsonSet): JsonSet;
    complement(): JsonSet;
    toJsonSchema(): unknown;
  }
  export interface ParseContext {
    heuristics: { applyLawOfAbsorptionInTypeSetCartesianProduct: boolean };
  }
  export function parseAsJsonSet(schema: unknown, context: ParseContext): JsonSet;
}
