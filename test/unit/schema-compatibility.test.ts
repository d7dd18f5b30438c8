import { describe, expect, it } from "vitest";
import { checkCompatibility, type SchemaVersion } from "../../shared/schemas/compatibility";
import type { JsonSchema } from "../../shared/schemas/json-schema";
import { COMPATIBILITY_MODES, type CompatibilityMode, DEFAULT_COMPATIBILITY } from "../../shared/schemas/modes";
import { type Row, rows } from "./schema-compatibility-rows";

/** A mode's verdict from its definition (Confluent's): which directions it requires. */
function expectedVerdict(mode: CompatibilityMode, row: Row): boolean {
  if (mode === "NONE") return true;
  if (mode.startsWith("BACKWARD")) return row.backward;
  if (mode.startsWith("FORWARD")) return row.forward;
  return row.backward && row.forward;
}

function required(mode: CompatibilityMode): string[] {
  if (mode === "NONE") return [];
  if (mode.startsWith("BACKWARD")) return ["backward"];
  if (mode.startsWith("FORWARD")) return ["forward"];
  return ["backward", "forward"];
}

describe("compatibility modes", () => {
  it("lists Confluent's seven modes with BACKWARD the default", () => {
    expect(COMPATIBILITY_MODES).toEqual([
      "BACKWARD",
      "BACKWARD_TRANSITIVE",
      "FORWARD",
      "FORWARD_TRANSITIVE",
      "FULL",
      "FULL_TRANSITIVE",
      "NONE",
    ]);
    expect(DEFAULT_COMPATIBILITY).toBe("BACKWARD");
  });
});

describe(`schema changes × modes (${rows.length} rows × ${COMPATIBILITY_MODES.length} modes)`, () => {
  it("has the rows the issue asks for", () => {
    expect(rows.length).toBeGreaterThanOrEqual(25);
    expect(rows.some((r) => !r.backward) && rows.some((r) => !r.forward) && rows.some((r) => r.backward && r.forward)).toBe(true);
  });

  for (const row of rows) {
    describe(row.name, () => {
      for (const mode of COMPATIBILITY_MODES) {
        it(`${mode} ${expectedVerdict(mode, row) ? "accepts" : "refuses"}`, () => {
          const result = checkCompatibility(mode, row.after, [{ version: 1, schema: row.before }]);
          expect(result.compatible).toBe(expectedVerdict(mode, row));
          expect(result.mode).toBe(mode);
          expect(result.checkedAgainst).toEqual(mode === "NONE" ? [] : [1]);
          // Every reason is for a direction the mode requires and that the row says breaks.
          const broken = required(mode).filter((d) => (d === "backward" ? !row.backward : !row.forward));
          expect(new Set(result.incompatibilities.map((i) => i.direction))).toEqual(new Set(broken));
          for (const direction of broken) {
            const reasons = result.incompatibilities.filter((i) => i.direction === direction);
            expect(
              reasons.some((i) => i.message.includes(row.path) && i.path.startsWith(row.path)),
              JSON.stringify(reasons),
            ).toBe(true);
          }
          for (const i of result.incompatibilities) {
            expect(i.version).toBe(1);
            expect(i.path.startsWith("/data")).toBe(true);
          }
        });
      }
    });
  }
});

describe("messages", () => {
  const reasons = (mode: CompatibilityMode, before: JsonSchema, after: JsonSchema) =>
    checkCompatibility(mode, after, [{ version: 1, schema: before }]).incompatibilities.map((i) => i.message);
  const order = (properties: Record<string, JsonSchema>, required: string[] = []): JsonSchema => ({
    type: "object",
    properties,
    required,
    additionalProperties: false,
  });

  it("words each kind of change as the issue does", () => {
    expect(
      reasons("BACKWARD", order({ id: { type: "string" } }), order({ id: { type: "string" }, amount: { type: "integer" } }, ["amount"])),
    ).toContain("required property /data/amount added");
    const lines = (quantity: JsonSchema) => order({ lines: { type: "array", items: order({ quantity }) } });
    expect(reasons("BACKWARD", lines({ type: "number" }), lines({ type: "integer" }))).toEqual([
      "type of /data/lines/items/quantity narrowed (number → integer)",
    ]);
    expect(reasons("FORWARD", lines({ type: "integer" }), lines({ type: "number" }))).toEqual([
      "type of /data/lines/items/quantity widened (integer → number)",
    ]);
    expect(reasons("BACKWARD", order({ q: { maximum: 100 } }), order({ q: { maximum: 10 } }))).toEqual([
      "maximum of /data/q lowered from 100 to 10",
    ]);
    expect(reasons("BACKWARD", order({ s: { enum: ["a", "b"] } }), order({ s: { enum: ["a"] } }))).toEqual([
      'enum value "b" removed from /data/s',
    ]);
    expect(reasons("FORWARD", order({ s: { enum: ["a"] } }), order({ s: { enum: ["a", 2] } }))).toEqual(["enum value 2 added to /data/s"]);
    expect(reasons("BACKWARD", { type: "object" }, { type: "object", additionalProperties: false })).toEqual([
      "additional properties no longer allowed at /data",
    ]);
    expect(reasons("BACKWARD", { type: "object" }, { type: "object", properties: { note: { type: "string" } } })).toEqual([
      "optional property /data/note added to an open content model",
    ]);
    expect(reasons("BACKWARD", order({ note: { type: "string" } }), order({}))).toEqual(["property /data/note removed"]);
    expect(reasons("FULL", order({ c: { type: "string", pattern: "^a" } }), order({ c: { type: "string", pattern: "^b" } }))).toEqual([
      "pattern changed at /data/c (not comparable, so refused)",
      "pattern changed at /data/c (not comparable, so refused)",
    ]);
    expect(reasons("FULL", order({ k: { const: 1 } }), order({ k: { const: 2 } }))).toContain("const of /data/k changed from 1 to 2");
  });

  it("escapes property names in the pointer (RFC 6901)", () => {
    expect(reasons("BACKWARD", order({}), order({ "a/b~c": { type: "string" } }, ["a/b~c"]))).toContain(
      "required property /data/a~1b~0c added",
    );
  });

  it("reports only the failing direction's reasons", () => {
    // Adds a required property (breaks backward) and widens another (breaks forward).
    const before = { type: "object", properties: { q: { type: "integer" } } };
    const after = { type: "object", properties: { q: { type: "number" }, id: { type: "string" } }, required: ["id"] };
    const backward = checkCompatibility("BACKWARD", after, [{ version: 1, schema: before }]);
    expect(backward.incompatibilities.map((i) => [i.direction, i.message])).toEqual([["backward", "required property /data/id added"]]);
    const full = checkCompatibility("FULL", after, [{ version: 1, schema: before }]);
    expect(full.incompatibilities.map((i) => i.direction).sort()).toEqual(["backward", "forward"]);
    expect(full.incompatibilities.find((i) => i.direction === "forward")?.message).toBe("type of /data/q widened (integer → number)");
  });

  it("falls back to the library's set when no structural change explains the verdict", () => {
    // anyOf's branches only ever differ as a whole; oneOf's exclusivity narrows without a visible change.
    const before = { anyOf: [{ type: "integer" }, { type: "number", minimum: 0 }] };
    const after = { oneOf: [{ type: "integer" }, { type: "number", minimum: 0 }] };
    const result = checkCompatibility("BACKWARD", after, [{ version: 1, schema: before }]);
    expect(result.compatible).toBe(false);
    expect(result.incompatibilities.length).toBeGreaterThan(0);
    expect(result.incompatibilities.every((i) => i.path === "/data" && i.message.length > 0)).toBe(true);
  });
});

describe("transitive modes", () => {
  const v = (version: number, schema: JsonSchema): SchemaVersion => ({ version, schema });
  const closed = (properties: Record<string, JsonSchema>): JsonSchema => ({ type: "object", properties, additionalProperties: false });
  const str = { type: "string" };

  it("BACKWARD compares with the latest only, BACKWARD_TRANSITIVE with every version", () => {
    const earlier = [v(1, closed({ a: str, note: str })), v(2, closed({ a: str }))];
    const candidate = closed({ a: str, extra: { type: "number" } });
    const plain = checkCompatibility("BACKWARD", candidate, earlier);
    expect(plain).toEqual({ compatible: true, mode: "BACKWARD", checkedAgainst: [2], incompatibilities: [] });
    const transitive = checkCompatibility("BACKWARD_TRANSITIVE", candidate, earlier);
    expect(transitive.compatible).toBe(false);
    expect(transitive.checkedAgainst).toEqual([1, 2]);
    expect(transitive.incompatibilities).toEqual([
      { version: 1, path: "/data/note", message: "property /data/note removed", direction: "backward" },
    ]);
  });

  const bounded = (maximum: number) => closed({ q: { type: "number", maximum } });

  it("FORWARD compares with the latest only, FORWARD_TRANSITIVE with every version", () => {
    const earlier = [v(1, bounded(10)), v(2, bounded(100))];
    expect(checkCompatibility("FORWARD", bounded(50), earlier)).toEqual({
      compatible: true,
      mode: "FORWARD",
      checkedAgainst: [2],
      incompatibilities: [],
    });
    const transitive = checkCompatibility("FORWARD_TRANSITIVE", bounded(50), earlier);
    expect(transitive.checkedAgainst).toEqual([1, 2]);
    expect(transitive.incompatibilities).toEqual([
      { version: 1, path: "/data/q", message: "maximum of /data/q raised from 10 to 50", direction: "forward" },
    ]);
  });

  it("FULL compares with the latest only, FULL_TRANSITIVE with every version", () => {
    const earlier = [v(1, bounded(10)), v(2, bounded(100)), v(3, { ...(bounded(100) as object), title: "v3" })];
    const candidate = { ...(bounded(100) as object), description: "same set as v2 and v3" };
    expect(checkCompatibility("FULL", candidate, earlier)).toEqual({
      compatible: true,
      mode: "FULL",
      checkedAgainst: [3],
      incompatibilities: [],
    });
    const transitive = checkCompatibility("FULL_TRANSITIVE", candidate, earlier);
    expect(transitive.compatible).toBe(false);
    expect(transitive.checkedAgainst).toEqual([1, 2, 3]);
    expect(transitive.incompatibilities).toEqual([
      { version: 1, path: "/data/q", message: "maximum of /data/q raised from 10 to 100", direction: "forward" },
    ]);
  });

  it("takes the highest version as the latest whatever the order given, and accepts anything with no earlier version", () => {
    const earlier = [v(2, closed({ a: str })), v(1, closed({ a: str, note: str }))];
    expect(checkCompatibility("BACKWARD", closed({ a: str }), earlier).checkedAgainst).toEqual([2]);
    expect(checkCompatibility("BACKWARD_TRANSITIVE", closed({ a: str }), earlier).checkedAgainst).toEqual([1, 2]);
    for (const mode of COMPATIBILITY_MODES) {
      expect(checkCompatibility(mode, false, [])).toEqual({ compatible: true, mode, checkedAgainst: [], incompatibilities: [] });
    }
    expect(checkCompatibility("NONE", false, earlier)).toEqual({
      compatible: true,
      mode: "NONE",
      checkedAgainst: [],
      incompatibilities: [],
    });
  });
});
