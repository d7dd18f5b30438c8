import { z } from "zod";

/** A JSON Schema (draft 2020-12): an object, or a boolean schema. */
export type JsonSchema = boolean | Record<string, unknown>;

/**
 * A config-declared data schema as JSON Schema (draft 2020-12), as producers send it (`io: input`).
 * Refinements (`.refine`, well-formed Unicode, …) have no JSON Schema form and are left out: for
 * config-declared versions the zod schema stays the check ingest applies (docs/schemas.md).
 */
export function zodToJsonSchema(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, { target: "draft-2020-12", unrepresentable: "any", io: "input" }) as JsonSchema;
}
