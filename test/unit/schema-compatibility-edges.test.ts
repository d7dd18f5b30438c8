import { describe, expect, it } from "vitest";
import { checkCompatibility } from "../../shared/schemas/compatibility";
import { dereference, MAX_SCHEMA_NODES, UnsupportedSchemaError } from "../../shared/schemas/dereference";
import type { JsonSchema } from "../../shared/schemas/json-schema";
import { MAX_SET_PRODUCTS } from "../../shared/schemas/set-inclusion";

const check = (mode: "BACKWARD" | "FORWARD" | "FULL", before: JsonSchema, after: JsonSchema) =>
  checkCompatibility(mode, after, [{ version: 1, schema: before }]);

describe("dereference", () => {
  it("inlines local $defs and definitions references, and a $ref beside constraints becomes an allOf member", () => {
    const schema = {
      $defs: { id: { type: "string", minLength: 1 } },
      definitions: { n: { type: "integer" } },
      type: "object",
      properties: { id: { $ref: "#/$defs/id", description: "kept" }, n: { $ref: "#/definitions/n", maximum: 9 } },
    };
    expect(dereference(schema)).toEqual({
      type: "object",
      properties: { id: { type: "string", minLength: 1 }, n: { maximum: 9, allOf: [{ type: "integer" }] } },
    });
  });

  it("follows escaped and percent-encoded pointers", () => {
    const schema = {
      $defs: { "a/b": { type: "null" }, "c d": { type: "boolean" } },
      anyOf: [{ $ref: "#/$defs/a~1b" }, { $ref: "#/$defs/c%20d" }],
    };
    expect(dereference(schema)).toEqual({ anyOf: [{ type: "null" }, { type: "boolean" }] });
  });

  it("refuses recursion, remote and anchor references, unresolvable ones and $dynamicRef", () => {
    const refused: [JsonSchema, string][] = [
      [{ $defs: { node: { type: "object", properties: { next: { $ref: "#/$defs/node" } } } }, $ref: "#/$defs/node" }, "recursive $ref"],
      [{ properties: { self: { $ref: "#" } } }, "recursive $ref to the root"],
      [{ $ref: "https://example.com/s.json" }, "not a local reference"],
      [{ $ref: "#anchor" }, "names an anchor"],
      [{ $ref: "#/$defs/missing" }, "does not resolve"],
      [{ $dynamicRef: "#x" }, "$dynamicRef"],
      [{ $defs: { a: { type: "string" } }, properties: { x: { $id: "inner", $ref: "#/$defs/a" } } }, "nested $id"],
    ];
    for (const [schema, reason] of refused) {
      expect(() => dereference(schema)).toThrow(UnsupportedSchemaError);
      expect(() => dereference(schema)).toThrow(reason);
    }
  });

  it("bounds the work of inlining (references that double at each level)", () => {
    const $defs: Record<string, JsonSchema> = { d0: { type: "string" } };
    for (let i = 1; i <= 16; i++) $defs[`d${i}`] = { allOf: [{ $ref: `#/$defs/d${i - 1}` }, { $ref: `#/$defs/d${i - 1}` }] };
    expect(() => dereference({ $defs, $ref: "#/$defs/d16" })).toThrow(`more than ${MAX_SCHEMA_NODES} subschemas`);
  });
});

describe("what the engine cannot compare", () => {
  it("accepts an identical recursive schema and refuses any change to it, naming why", () => {
    const tree = (leaf: JsonSchema): JsonSchema => ({
      $defs: { node: { type: "object", properties: { value: leaf, children: { type: "array", items: { $ref: "#/$defs/node" } } } } },
      $ref: "#/$defs/node",
    });
    expect(check("FULL", tree({ type: "string" }), tree({ type: "string" })).compatible).toBe(true);
    const changed = check("BACKWARD", tree({ type: "string" }), tree({ type: ["string", "null"] }));
    expect(changed.compatible).toBe(false);
    expect(changed.incompatibilities[0]?.message).toMatch(
      /recursive \$ref #\/\$defs\/node is not supported.*only an identical schema is accepted/,
    );
  });

  it("refuses changes to unevaluatedProperties schemas (their meaning depends on their siblings)", () => {
    const before = { type: "object", properties: { a: {}, b: {} }, unevaluatedProperties: false };
    const after = { type: "object", properties: { a: {} }, unevaluatedProperties: false };
    const result = check("BACKWARD", before, after);
    expect(result.compatible).toBe(false);
    expect(result.incompatibilities[0]?.message).toContain("unevaluatedProperties is not supported");
  });

  it("keeps items beside prefixItems and additionalProperties beside patternProperties unchanged", () => {
    const tuple = (items: JsonSchema) => ({ type: "array", prefixItems: [{ type: "string" }], items });
    expect(check("BACKWARD", tuple(false), tuple({ type: "number" })).incompatibilities.map((i) => i.message)).toEqual([
      "items beside prefixItems changed at /data (not comparable, so refused)",
    ]);
    const patterned = (additionalProperties: JsonSchema) => ({ type: "object", patternProperties: { "^x": {} }, additionalProperties });
    expect(check("BACKWARD", patterned(true), patterned(false)).incompatibilities.map((i) => i.message)).toEqual([
      "additionalProperties beside patternProperties changed at /data (not comparable, so refused)",
    ]);
  });

  it("refuses a changed not, keeps an unchanged one out of the way", () => {
    const changed = check("FULL", { type: "string", not: { maxLength: 0 } }, { type: "string", not: { maxLength: 1 } });
    expect(changed.incompatibilities.map((i) => i.message)).toEqual([
      "not changed at /data (not comparable, so refused)",
      "not changed at /data (not comparable, so refused)",
    ]);
    const kept = check(
      "BACKWARD",
      { type: "string", not: { const: "x" }, maxLength: 3 },
      { type: "string", not: { const: "x" }, maxLength: 4 },
    );
    expect(kept.compatible).toBe(true);
  });

  it("refuses a changed anyOf/oneOf that holds keywords it cannot compare, and accepts it unchanged", () => {
    const before = { oneOf: [{ type: "string", pattern: "^a" }, { type: "integer" }] };
    const after = {
      oneOf: [
        { type: "string", pattern: "^a" },
        { type: "integer", maximum: 9 },
      ],
    };
    expect(check("FORWARD", before, after).incompatibilities.map((i) => i.message)).toEqual([
      "oneOf of /data changed and holds keywords that cannot be compared (so refused)",
    ]);
    // The nullable pattern zod writes for .nullable(): unchanged, while the model gains a property.
    const nullableCode = { anyOf: [{ type: "string", pattern: "^[A-Z]{3}$" }, { type: "null" }] };
    const v1 = { type: "object", properties: { code: nullableCode }, additionalProperties: false };
    const v2 = { ...v1, properties: { code: nullableCode, note: { type: "string" } } };
    expect(check("BACKWARD", v1, v2).compatible).toBe(true);
    expect(check("FORWARD", v1, v2).incompatibilities.map((i) => i.message)).toEqual(["property /data/note added"]);
    // A branch dropped beside an unchanged opaque one: the library alone would see no change.
    const wide = { anyOf: [{ not: { type: "string" } }, { type: "string" }] };
    const narrow = { anyOf: [{ not: { type: "string" } }] };
    expect(check("BACKWARD", wide, narrow).incompatibilities.map((i) => i.message)).toEqual([
      "anyOf of /data changed and holds keywords that cannot be compared (so refused)",
    ]);
    // Without opaque keywords inside, the library compares the lists itself.
    expect(check("BACKWARD", { anyOf: [{ type: "string" }, { type: "null" }] }, { anyOf: [{ type: "string" }] }).compatible).toBe(false);
    expect(check("BACKWARD", { anyOf: [{ type: "string" }] }, { anyOf: [{ type: "string" }, { type: "null" }] }).compatible).toBe(true);
  });

  it("facing an open model's `true`, an added constraint breaks only the direction it narrows", () => {
    const open = { type: "object", properties: { a: { type: "string" } } };
    const withCode = { ...open, properties: { a: { type: "string" }, code: { type: "string", pattern: "^x" } } };
    expect(check("FORWARD", open, withCode).compatible).toBe(true);
    expect(check("BACKWARD", open, withCode).incompatibilities.map((i) => i.message)).toEqual([
      "pattern added to /data/code (not comparable, so refused)",
      "optional property /data/code added to an open content model",
    ]);
  });

  it("never throws on malformed schemas: they are refused with a reason", () => {
    const malformed: JsonSchema[] = [
      { type: "text" },
      { type: [] },
      { properties: [] },
      { required: "a" },
      { minimum: "1" },
      { anyOf: [] },
      { items: [{ type: "string" }] },
      { properties: { a: 3 } },
      { $ref: 7 },
    ];
    for (const schema of malformed) {
      const result = check("FULL", { type: "object" }, schema);
      expect(result.compatible, JSON.stringify(schema)).toBe(false);
      expect(result.incompatibilities.every((i) => i.path === "/data" && i.message.includes("only an identical schema is accepted"))).toBe(
        true,
      );
    }
  });
});

describe("json-schema-diff 1.0.0 quirks the engine works around", () => {
  it("maxProperties 0 forbids listed properties too", () => {
    // The library alone says {a?} ⊆ {a?, maxProperties: 0} (it keeps `a` allowed).
    const before = { type: "object", properties: { a: true }, additionalProperties: false };
    const after = { ...before, maxProperties: 0 };
    const result = check("BACKWARD", before, after);
    expect(result.compatible).toBe(false);
    expect(result.incompatibilities.map((i) => i.message)).toEqual(["maxProperties of /data added (0)"]);
    expect(check("FORWARD", before, after).compatible).toBe(true);
  });

  it("not over objects is not given to the library (its double complement loses members)", () => {
    // The library alone says ¬{b?} ⊆ ¬{a?, b?} for closed objects: {"a": []} is a counterexample.
    const inner = (properties: Record<string, JsonSchema>) => ({ type: "object", properties, additionalProperties: false });
    expect(check("BACKWARD", { not: inner({ b: true }) }, { not: inner({ b: true, a: true }) }).compatible).toBe(false);
  });

  it("an enum narrows the type the library sees, so enum-only schemas compare with typed ones", () => {
    expect(check("BACKWARD", { enum: ["a", "b"] }, { type: "string" }).compatible).toBe(true);
    expect(check("BACKWARD", { enum: ["a", 1] }, { type: "string" }).compatible).toBe(false);
    expect(check("FORWARD", { enum: ["a", "b"] }, { type: "string" }).incompatibilities.map((i) => i.message)).toEqual([
      'values of /data no longer restricted to ["a","b"]',
    ]);
    expect(check("FULL", { enum: [] }, false).compatible).toBe(true);
  });
});

describe("cost bound", () => {
  const branches = (keyword: "anyOf" | "oneOf", n: number, type: string): JsonSchema => ({
    [keyword]: Array.from({ length: n }, (_, i) => ({ type: "object", properties: { [`k${i}`]: { type } }, required: [`k${i}`] })),
  });

  it(`refuses a comparison that needs more than ${MAX_SET_PRODUCTS} set products, quickly, unless the schemas are identical`, () => {
    // Unbounded, these take seconds (a 4-branch oneOf of open objects: ~4.5 million products).
    for (const [keyword, n] of [
      ["oneOf", 4],
      ["anyOf", 6],
    ] as const) {
      const started = Date.now();
      const result = check("FULL", branches(keyword, n, "number"), branches(keyword, n, "integer"));
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(result.incompatibilities.map((i) => i.message)).toEqual([
        `comparing these schemas needs more than ${MAX_SET_PRODUCTS} set products; only an identical schema is accepted`,
        `comparing these schemas needs more than ${MAX_SET_PRODUCTS} set products; only an identical schema is accepted`,
      ]);
      const same = branches(keyword, n, "number");
      expect(check("FULL", same, structuredClone(same)).compatible).toBe(true);
    }
  });

  it("compares unions within the budget (a widening accepted, a narrowing refused)", () => {
    expect(check("BACKWARD", branches("anyOf", 3, "integer"), branches("anyOf", 3, "number")).compatible).toBe(true);
    expect(check("BACKWARD", branches("anyOf", 3, "number"), branches("anyOf", 3, "integer")).compatible).toBe(false);
    // Narrowing oneOf branches is not forward compatible: {"k0": 1.5, "k1": 1} matches one new
    // branch but both old ones, so the old schema refuses it.
    expect(check("FORWARD", branches("oneOf", 2, "number"), branches("oneOf", 2, "integer")).compatible).toBe(false);
  });
});
