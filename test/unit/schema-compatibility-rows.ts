import type { JsonSchema, JsonSchemaObject } from "../../shared/schemas/json-schema";

/**
 * Schema changes with their verdict in each direction, by the definitions (ADR 0048): backward
 * holds when every value valid under `before` is valid under `after`, forward the reverse.
 * `path` is the JSON Pointer a refusal must name.
 */
export interface Row {
  name: string;
  before: JsonSchema;
  after: JsonSchema;
  backward: boolean;
  forward: boolean;
  path: string;
}

type Props = Record<string, JsonSchema>;
const closed = (properties: Props, required: string[] = []): JsonSchemaObject => ({
  type: "object",
  properties,
  required,
  additionalProperties: false,
});
const open = (properties: Props, required: string[] = []): JsonSchemaObject => ({ type: "object", properties, required });

const str: JsonSchema = { type: "string" };
const num: JsonSchema = { type: "number" };
const int: JsonSchema = { type: "integer" };
const line = (quantity: JsonSchema, required = ["quantity"]): JsonSchema => closed({ sku: str, quantity }, required);
const address = (zip: JsonSchema): JsonSchemaObject => ({
  $defs: { address: closed({ street: str, zip }, ["street"]) },
  type: "object",
  properties: { billing: { $ref: "#/$defs/address" }, shipping: { $ref: "#/$defs/address" } },
  required: ["billing"],
});

export const rows: Row[] = [
  { name: "no change", before: closed({ a: str }, ["a"]), after: closed({ a: str }, ["a"]), backward: true, forward: true, path: "" },
  {
    name: "only annotations change",
    before: closed({ a: str }, ["a"]),
    after: { ...closed({ a: { type: "string", description: "the a", examples: ["x"] } }, ["a"]), title: "T" },
    backward: true,
    forward: true,
    path: "",
  },
  {
    name: "optional field added, closed model",
    before: closed({ a: str }),
    after: closed({ a: str, note: str }),
    backward: true,
    forward: false,
    path: "/data/note",
  },
  {
    name: "optional field added, open model",
    before: open({ a: str }),
    after: open({ a: str, note: str }),
    backward: false,
    forward: true,
    path: "/data/note",
  },
  {
    name: "required field added, open model",
    before: open({ a: str }),
    after: open({ a: str, amount: int }, ["amount"]),
    backward: false,
    forward: true,
    path: "/data/amount",
  },
  {
    name: "required field added, closed model",
    before: closed({ a: str }),
    after: closed({ a: str, amount: int }, ["amount"]),
    backward: false,
    forward: false,
    path: "/data/amount",
  },
  {
    name: "optional field removed, closed model",
    before: closed({ a: str, note: str }),
    after: closed({ a: str }),
    backward: false,
    forward: true,
    path: "/data/note",
  },
  {
    name: "optional field removed, open model",
    before: open({ a: str, note: str }),
    after: open({ a: str }),
    backward: true,
    forward: false,
    path: "/data/note",
  },
  {
    name: "required field removed, open model",
    before: open({ a: str, amount: int }, ["amount"]),
    after: open({ a: str }),
    backward: true,
    forward: false,
    path: "/data/amount",
  },
  {
    name: "existing field becomes required",
    before: closed({ a: str, b: str }),
    after: closed({ a: str, b: str }, ["b"]),
    backward: false,
    forward: true,
    path: "/data/b",
  },
  {
    name: "type widened integer → number",
    before: closed({ q: int }),
    after: closed({ q: num }),
    backward: true,
    forward: false,
    path: "/data/q",
  },
  {
    name: "type widened string → [string, null]",
    before: closed({ s: str }),
    after: closed({ s: { type: ["string", "null"] } }),
    backward: true,
    forward: false,
    path: "/data/s",
  },
  {
    name: "type narrowed number → integer",
    before: closed({ q: num }),
    after: closed({ q: int }),
    backward: false,
    forward: true,
    path: "/data/q",
  },
  {
    name: "type changed string → number",
    before: closed({ s: str }),
    after: closed({ s: num }),
    backward: false,
    forward: false,
    path: "/data/s",
  },
  {
    name: "enum value added",
    before: closed({ status: { type: "string", enum: ["open", "paid"] } }),
    after: closed({ status: { type: "string", enum: ["open", "paid", "shipped"] } }),
    backward: true,
    forward: false,
    path: "/data/status",
  },
  {
    name: "enum value removed",
    before: closed({ status: { enum: ["open", "paid", "shipped"] } }),
    after: closed({ status: { enum: ["open", "paid"] } }),
    backward: false,
    forward: true,
    path: "/data/status",
  },
  {
    name: "enum introduced",
    before: closed({ status: str }),
    after: closed({ status: { type: "string", enum: ["open"] } }),
    backward: false,
    forward: true,
    path: "/data/status",
  },
  {
    name: "const changed",
    before: closed({ kind: { const: "a" } }),
    after: closed({ kind: { const: "b" } }),
    backward: false,
    forward: false,
    path: "/data/kind",
  },
  {
    name: "nested required property added",
    before: closed({ customer: open({ name: str }, ["name"]) }),
    after: closed({ customer: open({ name: str, email: str }, ["name", "email"]) }),
    backward: false,
    forward: true,
    path: "/data/customer/email",
  },
  {
    name: "nested property type narrowed",
    before: closed({ customer: closed({ age: num }) }),
    after: closed({ customer: closed({ age: int }) }),
    backward: false,
    forward: true,
    path: "/data/customer/age",
  },
  {
    name: "array items type narrowed",
    before: closed({ lines: { type: "array", items: line(num) } }),
    after: closed({ lines: { type: "array", items: line(int) } }),
    backward: false,
    forward: true,
    path: "/data/lines/items/quantity",
  },
  {
    name: "array items gain a required property",
    before: closed({ lines: { type: "array", items: line(int) } }),
    after: closed({ lines: { type: "array", items: line(int, ["quantity", "sku"]) } }),
    backward: false,
    forward: true,
    path: "/data/lines/items/sku",
  },
  {
    name: "minItems tightened",
    before: closed({ lines: { type: "array", items: str, minItems: 1 } }),
    after: closed({ lines: { type: "array", items: str, minItems: 2 } }),
    backward: false,
    forward: true,
    path: "/data/lines",
  },
  {
    name: "maxItems loosened",
    before: closed({ lines: { type: "array", items: str, maxItems: 10 } }),
    after: closed({ lines: { type: "array", items: str, maxItems: 100 } }),
    backward: true,
    forward: false,
    path: "/data/lines",
  },
  {
    name: "minimum tightened",
    before: closed({ q: { type: "integer", minimum: 0 } }),
    after: closed({ q: { type: "integer", minimum: 1 } }),
    backward: false,
    forward: true,
    path: "/data/q",
  },
  {
    name: "maximum loosened",
    before: closed({ q: { type: "number", maximum: 10 } }),
    after: closed({ q: { type: "number", maximum: 100 } }),
    backward: true,
    forward: false,
    path: "/data/q",
  },
  {
    name: "maximum tightened",
    before: closed({ q: { type: "number", maximum: 100 } }),
    after: closed({ q: { type: "number", maximum: 10 } }),
    backward: false,
    forward: true,
    path: "/data/q",
  },
  {
    name: "maxLength tightened",
    before: closed({ s: { type: "string", maxLength: 64 } }),
    after: closed({ s: { type: "string", maxLength: 32 } }),
    backward: false,
    forward: true,
    path: "/data/s",
  },
  {
    name: "minLength loosened",
    before: closed({ s: { type: "string", minLength: 3 } }),
    after: closed({ s: { type: "string", minLength: 1 } }),
    backward: true,
    forward: false,
    path: "/data/s",
  },
  {
    name: "additionalProperties true → false",
    before: { ...open({ a: str }), additionalProperties: true },
    after: closed({ a: str }),
    backward: false,
    forward: true,
    path: "/data",
  },
  {
    name: "additionalProperties false → true",
    before: closed({ a: str }),
    after: { ...open({ a: str }), additionalProperties: true },
    backward: true,
    forward: false,
    path: "/data",
  },
  {
    name: "pattern changed (not comparable)",
    before: closed({ currency: { type: "string", pattern: "^[A-Z]{3}$" } }),
    after: closed({ currency: { type: "string", pattern: "^[A-Z]{3,4}$" } }),
    backward: false,
    forward: false,
    path: "/data/currency",
  },
  {
    name: "format changed (not comparable)",
    before: closed({ at: { type: "string", format: "date" } }),
    after: closed({ at: { type: "string", format: "date-time" } }),
    backward: false,
    forward: false,
    path: "/data/at",
  },
  {
    name: "identical pattern kept while a bound loosens",
    before: closed({ code: { type: "string", pattern: "^[a-z]+$", maxLength: 8 } }),
    after: closed({ code: { type: "string", pattern: "^[a-z]+$", maxLength: 16 } }),
    backward: true,
    forward: false,
    path: "/data/code",
  },
  {
    name: "$ref/$defs used identically, annotation added",
    before: address(str),
    after: { ...address(str), description: "v2" },
    backward: true,
    forward: true,
    path: "",
  },
  {
    name: "$ref replaced by the same schema inline",
    before: address(str),
    after: {
      ...address(str),
      properties: { billing: closed({ street: str, zip: str }, ["street"]), shipping: { $ref: "#/$defs/address" } },
    },
    backward: true,
    forward: true,
    path: "",
  },
  {
    name: "$defs target narrowed",
    before: address(str),
    after: address({ type: "string", maxLength: 10 }),
    backward: false,
    forward: true,
    path: "/data/billing/zip",
  },
  { name: "boolean schema true → false", before: true, after: false, backward: false, forward: true, path: "/data" },
  { name: "boolean schema false → true", before: false, after: true, backward: true, forward: false, path: "/data" },
  { name: "true → an object type", before: true, after: { type: "object" }, backward: false, forward: true, path: "/data" },
  {
    name: "anyOf gains a branch",
    before: closed({ v: str }),
    after: closed({ v: { anyOf: [str, num] } }),
    backward: true,
    forward: false,
    path: "/data/v",
  },
];
