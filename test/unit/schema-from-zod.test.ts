import { Validator } from "@cfworker/json-schema";
// The draft 2020-12 meta-schemas as ajv ships them (ajv is installed with cloudevents and json-schema-diff).
import applicator from "ajv/dist/refs/json-schema-2020-12/meta/applicator.json";
import content from "ajv/dist/refs/json-schema-2020-12/meta/content.json";
import core from "ajv/dist/refs/json-schema-2020-12/meta/core.json";
import formatAnnotation from "ajv/dist/refs/json-schema-2020-12/meta/format-annotation.json";
import metaData from "ajv/dist/refs/json-schema-2020-12/meta/meta-data.json";
import unevaluated from "ajv/dist/refs/json-schema-2020-12/meta/unevaluated.json";
import validation from "ajv/dist/refs/json-schema-2020-12/meta/validation.json";
import metaSchema from "ajv/dist/refs/json-schema-2020-12/schema.json";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { checkCompatibility } from "../../shared/schemas/compatibility";
import { zodToJsonSchema } from "../../shared/schemas/from-zod";
import type { JsonSchema } from "../../shared/schemas/json-schema";
import { orderEventSchemas } from "../../workers/examples/orders/schemas";

const DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema";

/**
 * A validator of draft 2020-12 schemas. @cfworker/json-schema has no $dynamicRef; in the meta-
 * schemas `"$dynamicRef": "#meta"` always lands on the meta-schema itself when nothing extends
 * it, so it is rewritten to that `$ref`.
 */
function metaValidator(): Validator {
  const rewrite = (schema: unknown): Record<string, unknown> =>
    JSON.parse(JSON.stringify(schema).replaceAll('"$dynamicRef":"#meta"', `"$ref":"${DRAFT_2020_12}"`));
  const validator = new Validator(rewrite(metaSchema), "2020-12", false);
  for (const meta of [applicator, content, core, formatAnnotation, metaData, unevaluated, validation]) {
    validator.addSchema(rewrite(meta));
  }
  return validator;
}

const accepts = (schema: JsonSchema, value: unknown) => new Validator(schema as boolean, "2020-12").validate(value).valid;

const line = { sku: "A-1", quantity: 2, unitPrice: 500 };
const samples: Record<keyof typeof orderEventSchemas, unknown[]> = {
  "orders.placed": [
    { orderId: "o-1", customerId: "c-1", currency: "EUR", lines: [line] },
    { orderId: "o-1", customerId: "c-1", currency: "EUR", lines: [] },
    { orderId: "o-1", customerId: "c-1", currency: "eur", lines: [line] },
    { orderId: "o-1", customerId: "c-1", currency: "EUR", lines: [{ ...line, quantity: 1.5 }] },
    { orderId: "o-1", customerId: "c-1", currency: "EUR", lines: [{ ...line, extra: true }] },
  ],
  "orders.line-added": [
    { orderId: "o-1", line },
    { orderId: "", line },
    { orderId: "o-1", line: { ...line, quantity: 0 } },
  ],
  "orders.line-removed": [{ orderId: "o-1", sku: "A" }, { orderId: "o-1" }, { orderId: "o-1", sku: "A", note: 1 }],
  "orders.paid": [
    { orderId: "o-1", amount: 0, currency: "EUR" },
    { orderId: "o-1", amount: -1, currency: "EUR" },
  ],
  "orders.shipped": [{ orderId: "o-1" }, { orderId: "o-1", carrier: "DHL" }, { orderId: "o-1", carrier: 7 }],
  "orders.cancelled": [
    { orderId: "o-1", reason: "x".repeat(500) },
    { orderId: "o-1", reason: "x".repeat(501) },
  ],
};

describe("zodToJsonSchema", () => {
  const meta = metaValidator();

  it("the meta-schema validator refuses malformed schemas (so its acceptance below means something)", () => {
    for (const bad of [{ type: "text" }, { required: "a" }, { properties: { a: 1 } }, { minLength: -1 }, { items: [true] }]) {
      expect(meta.validate(bad).valid, JSON.stringify(bad)).toBe(false);
    }
    expect(meta.validate({ type: "object", properties: { a: { type: "string", pattern: "^a" } } }).valid).toBe(true);
  });

  for (const [type, schema] of Object.entries(orderEventSchemas)) {
    it(`${type}: a valid draft 2020-12 object schema, closed where zod is strict, agreeing with zod on samples`, () => {
      const json = zodToJsonSchema(schema);
      expect(json.$schema).toBe(DRAFT_2020_12);
      expect(json.type).toBe("object");
      expect(meta.validate(json).errors).toEqual([]);
      expect(json.additionalProperties).toBe(false);
      for (const value of samples[type as keyof typeof samples]) {
        expect(accepts(json, value), JSON.stringify(value)).toBe(schema.safeParse(value).success);
      }
      expect(checkCompatibility("FULL_TRANSITIVE", json, [{ version: 1, schema: zodToJsonSchema(schema) }]).compatible).toBe(true);
    });
  }

  it("closes nested strict objects too (the order line)", () => {
    const placed = zodToJsonSchema(orderEventSchemas["orders.placed"]) as { properties: { lines: { items: Record<string, unknown> } } };
    expect(placed.properties.lines.items).toMatchObject({
      type: "object",
      additionalProperties: false,
      required: ["sku", "quantity", "unitPrice"],
    });
  });

  it("is weaker than zod where zod refines: the zod schema stays the stronger check", () => {
    // Keys must be well-formed Unicode: a .refine() that JSON Schema cannot say.
    const loneSurrogate = { orderId: "o-\uD800", sku: "A" };
    expect(orderEventSchemas["orders.line-removed"].safeParse(loneSurrogate).success).toBe(false);
    expect(accepts(zodToJsonSchema(orderEventSchemas["orders.line-removed"]), loneSurrogate)).toBe(true);
  });

  it("describes the input side: open plain objects, defaults make properties optional", () => {
    const json = zodToJsonSchema(z.object({ a: z.string(), b: z.number().default(1) }));
    expect(json.additionalProperties).toBeUndefined();
    expect(json.required).toEqual(["a"]);
  });

  it("feeds the compatibility check: an optional field on a strict event is backward, not forward, compatible", () => {
    const v1 = zodToJsonSchema(orderEventSchemas["orders.shipped"]);
    const v2 = zodToJsonSchema(orderEventSchemas["orders.shipped"].extend({ trackingUrl: z.url().optional() }));
    const earlier = [{ version: 1, schema: v1 }];
    expect(checkCompatibility("BACKWARD", v2, earlier).compatible).toBe(true);
    expect(checkCompatibility("FORWARD", v2, earlier).incompatibilities.map((i) => i.message)).toEqual([
      "property /data/trackingUrl added",
    ]);
    const v3 = zodToJsonSchema(orderEventSchemas["orders.shipped"].extend({ carrier: z.string().max(32).optional() }));
    expect(checkCompatibility("BACKWARD", v3, earlier).incompatibilities.map((i) => i.message)).toEqual([
      "maxLength of /data/carrier lowered from 64 to 32",
    ]);
  });
});
