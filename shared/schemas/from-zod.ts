import { z } from "zod";
import type { JsonSchemaObject } from "./json-schema";

/** A JSON Schema (draft 2020-12): an object, or a boolean schema. */
export type JsonSchema = boolean | Record<string, unknown>;

/**
 * The JSON Schema (draft 2020-12) of what a zod schema accepts as input — the shape a producer
 * sends, so `io: "input"` (defaults make a property optional, transforms are seen from the input
 * side). `.strict()` objects come out closed (`additionalProperties: false`); plain objects stay
 * open, since zod strips unknown keys instead of refusing them.
 *
 * Refinements (`.refine`, `.superRefine`, `.check`) and other unrepresentable parts (dates,
 * transforms' outputs…) have no JSON Schema form: `unrepresentable: "any"` turns them into `{}`,
 * so the JSON Schema is weaker than the zod schema. For versions declared in config the zod schema
 * stays the stronger check on ingest (docs/schemas.md); the JSON Schema is what compatibility is
 * judged on.
 */
export function zodToJsonSchema(schema: z.ZodType): JsonSchemaObject {
  return z.toJSONSchema(schema, { target: "draft-2020-12", unrepresentable: "any", io: "input" });
}
