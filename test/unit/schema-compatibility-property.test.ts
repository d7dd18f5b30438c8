import { Validator } from "@cfworker/json-schema";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkCompatibility } from "../../shared/schemas/compatibility";
import type { JsonSchema } from "../../shared/schemas/json-schema";

/**
 * Soundness of the verdict against a real validator: when BACKWARD accepts a change, every
 * sampled value the old schema accepts, the new one accepts too (and FORWARD the reverse).
 * Schemas and values come from small domains so that values often match and changes often pass.
 */

const names = ["a", "b", "c"] as const;
const scalars = [null, true, false, 0, 1, -1, 2.5, 100, "", "a", "abc", "b"] as const;

const { value } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { maxDepth: 3, depthIdentifier: "value" },
    fc.constantFrom(...scalars),
    fc.array(tie("value"), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom(...names), tie("value"), { maxKeys: 3 }),
  ),
}));

const bound = fc.constantFrom(-1, 0, 1, 2, 2.5);
const count = fc.constantFrom(0, 1, 2, 3);

const { schema } = fc.letrec<{ schema: JsonSchema; leaf: JsonSchema; object: JsonSchema; array: JsonSchema; logic: JsonSchema }>((tie) => ({
  schema: fc.oneof({ maxDepth: 3, depthIdentifier: "schema" }, tie("leaf"), fc.boolean(), tie("object"), tie("array"), tie("logic")),
  leaf: fc.record(
    {
      type: fc.constantFrom<string | string[]>("string", "number", "integer", "null", "boolean", ["string", "null"], ["integer", "string"]),
      minimum: bound,
      exclusiveMaximum: bound,
      minLength: count,
      maxLength: count,
      enum: fc.subarray([...scalars], { minLength: 1 }),
      const: fc.constantFrom(...scalars),
      pattern: fc.constantFrom("^a", "b"),
    },
    { requiredKeys: [] },
  ),
  object: fc.record(
    {
      type: fc.constant("object"),
      properties: fc.dictionary(fc.constantFrom(...names), tie("schema"), { maxKeys: 3 }),
      required: fc.subarray([...names]),
      additionalProperties: fc.oneof(fc.boolean(), tie("schema")),
      maxProperties: count,
    },
    { requiredKeys: ["type"] },
  ),
  array: fc.record({ type: fc.constant("array"), items: tie("schema"), minItems: count, maxItems: count }, { requiredKeys: ["type"] }),
  logic: fc.oneof(
    fc.record({ anyOf: fc.array(tie("schema"), { minLength: 1, maxLength: 2 }) }),
    fc.record({ oneOf: fc.array(tie("schema"), { minLength: 1, maxLength: 2 }) }),
    fc.record({ not: tie("schema") }),
    fc.record({ allOf: fc.array(tie("schema"), { minLength: 1, maxLength: 2 }) }),
  ),
}));

/** Every schema one deletion away from `s` (a keyword, a property, an enum value): many are wider. */
function deletions(s: JsonSchema): JsonSchema[] {
  if (typeof s === "boolean") return [true];
  const out: JsonSchema[] = [];
  for (const [key, child] of Object.entries(s)) {
    const { [key]: _dropped, ...rest } = s;
    out.push(rest);
    if (key === "properties" && typeof child === "object" && child !== null) {
      for (const [name, sub] of Object.entries(child)) {
        const { [name]: _gone, ...others } = child as Record<string, JsonSchema>;
        out.push({ ...s, properties: others });
        for (const variant of deletions(sub as JsonSchema)) out.push({ ...s, properties: { ...child, [name]: variant } });
      }
    } else if (Array.isArray(child)) {
      child.forEach((item, i) => {
        out.push({ ...s, [key]: child.filter((_, j) => j !== i) });
        if (key !== "enum" && key !== "required") {
          for (const variant of deletions(item as JsonSchema)) out.push({ ...s, [key]: child.map((c, j) => (j === i ? variant : c)) });
        }
      });
    } else if ((typeof child === "object" && child !== null) || typeof child === "boolean") {
      if (key === "items" || key === "additionalProperties" || key === "not") {
        for (const variant of deletions(child as JsonSchema)) out.push({ ...s, [key]: variant });
      }
    }
  }
  return out.filter(
    (x) => !(Array.isArray((x as Record<string, unknown>).anyOf) && ((x as Record<string, unknown>).anyOf as unknown[]).length === 0),
  );
}

const pair = fc.oneof(
  fc.tuple(schema, schema),
  schema.chain((before) => {
    const variants = deletions(before);
    return variants.length === 0
      ? fc.constant([before, before] as const)
      : fc.constantFrom(...variants).map((after) => [before, after] as const);
  }),
  schema.chain((after) => {
    const variants = deletions(after);
    return variants.length === 0
      ? fc.constant([after, after] as const)
      : fc.constantFrom(...variants).map((before) => [before, after] as const);
  }),
);

const accepts = (s: JsonSchema, v: unknown) => new Validator(s as boolean, "2020-12").validate(v).valid;

describe("verdicts against a validator (fast-check)", () => {
  it("BACKWARD-compatible: what the old schema accepts, the new one accepts; FORWARD: the reverse", () => {
    let checked = 0;
    let refusedSomething = 0;
    let acceptedChanges = 0;
    fc.assert(
      fc.property(pair, fc.array(value, { minLength: 10, maxLength: 20 }), ([before, after], values) => {
        const earlier = [{ version: 1, schema: before }];
        const backward = checkCompatibility("BACKWARD", after, earlier);
        const forward = checkCompatibility("FORWARD", after, earlier);
        if (!backward.compatible || !forward.compatible) refusedSomething++;
        const changed = JSON.stringify(before) !== JSON.stringify(after);
        if (changed && (backward.compatible || forward.compatible) && values.some((v) => accepts(before, v) || accepts(after, v))) {
          acceptedChanges++;
        }
        for (const v of values) {
          if (backward.compatible && accepts(before, v)) {
            checked++;
            expect(accepts(after, v), `value ${JSON.stringify(v)}`).toBe(true);
          }
          if (forward.compatible && accepts(after, v)) {
            checked++;
            expect(accepts(before, v), `value ${JSON.stringify(v)}`).toBe(true);
          }
        }
      }),
      { numRuns: 1_000 },
    );
    // Not vacuous: many accepted changes (not just identical schemas) met values they cover; some were refused.
    expect(checked).toBeGreaterThan(1_500);
    expect(acceptedChanges).toBeGreaterThan(100);
    expect(refusedSomething).toBeGreaterThan(100);
  });
});
