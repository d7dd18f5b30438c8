import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { assertJsonDepth, canonicalJson, JsonDepthError, jsonPointer, MAX_JSON_DEPTH } from "../../shared/json";

describe("JSON Pointer", () => {
  it("escapes ~ and / in keys (RFC 6901)", () => {
    expect(jsonPointer("/3", ["data", "a/b", "c~d", 0])).toBe("/3/data/a~1b/c~0d/0");
    expect(jsonPointer("", [])).toBe("");
  });
});

describe("canonical JSON", () => {
  it("sorts keys at every level, integer-like keys included", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, "10": 2, "9": 3 }], c: "x" } })).toBe(
      '{"a":{"c":"x","d":[3,{"10":2,"9":3,"z":1}]},"b":1}',
    );
  });

  it("is a pure function of the value: equal JSON → equal bytes (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const shuffled = JSON.parse(
          JSON.stringify(value, (_k, v) =>
            v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).reverse()) : v,
          ),
        );
        expect(canonicalJson(shuffled)).toBe(canonicalJson(value));
        expect(JSON.parse(canonicalJson(value))).toEqual(JSON.parse(JSON.stringify(value)));
      }),
    );
  });

  it("refuses nesting deeper than the limit, naming the path", () => {
    let deep: unknown = 1;
    for (let i = 0; i < MAX_JSON_DEPTH + 1; i++) deep = { k: deep };
    expect(() => assertJsonDepth(deep)).toThrow(JsonDepthError);
    let ok: unknown = 1;
    for (let i = 0; i < MAX_JSON_DEPTH - 1; i++) ok = [ok];
    expect(() => assertJsonDepth(ok)).not.toThrow();
  });
});
