import { z } from "@hono/zod-openapi";
import { COMPATIBILITY_MODES } from "../../../shared/schemas/modes";

/** Request and response shapes of the schema registry's routes (the OpenAPI document is generated from them). */

export const TypeParam = z
  .string()
  .min(1)
  .max(256)
  .openapi({ param: { name: "type", in: "path" }, example: "com.example.order.placed", description: "CloudEvents `type`" });

export const VersionParam = z
  .string()
  .regex(/^[1-9][0-9]{0,8}$/, "version must be a positive integer")
  .transform(Number)
  .openapi({ param: { name: "version", in: "path" }, example: "1", type: "integer", description: "Schema version, from 1" });

export const DryRunQuery = z.object({
  dryRun: z
    .enum(["true", "false"])
    .optional()
    .openapi({
      param: { name: "dryRun", in: "query" },
      description: "`true`: check only, store nothing, answer 200 with the verdict (also when incompatible)",
    }),
});

const JsonSchemaValue = z
  .union([z.boolean(), z.record(z.string(), z.unknown())])
  .openapi({ description: "A JSON Schema (draft 2020-12) of the event's `data`: an object or a boolean" });

export const SchemaBody = z
  .object({ schema: z.unknown().openapi({ description: "A JSON Schema (draft 2020-12) of the event's `data`: an object or a boolean" }) })
  .strict()
  .refine((body) => body.schema !== undefined, { message: "schema is required", path: ["schema"] })
  .openapi("SchemaSubmission");

const Mode = z.enum(COMPATIBILITY_MODES).openapi({ description: "The compatibility mode (Confluent's names and meanings)" });

const IncompatibilitySchema = z.object({
  version: z.number().int().openapi({ description: "The earlier version it breaks" }),
  path: z.string().openapi({ description: "JSON Pointer into the event, rooted at /data", example: "/data/amount" }),
  message: z.string().openapi({ example: "required property /data/amount added" }),
  direction: z.enum(["backward", "forward"]).openapi({
    description:
      "backward: data written with the earlier version no longer validates; forward: data written with the new one fails the earlier",
  }),
});

export const RegisteredSchema = z
  .object({
    created: z
      .boolean()
      .openapi({ description: "`true`: stored by this call (`201`); `false`: an identical schema already was `version` (`200`)" }),
    version: z.number().int(),
    dataschema: z.string().openapi({ description: "The URI events name this version by (their `dataschema` attribute)" }),
    compatibility: Mode,
    checkedAgainst: z.array(z.number().int()).openapi({ description: "The earlier versions it was checked against" }),
  })
  .openapi("RegisteredSchema");

export const CompatibilityVerdict = z
  .object({
    compatible: z.boolean(),
    version: z.number().int().openapi({ description: "The version the schema would get (or has, when `registered`)" }),
    registered: z.boolean().openapi({ description: "An identical schema already is `version`" }),
    compatibility: Mode,
    checkedAgainst: z.array(z.number().int()),
    incompatibilities: z.array(IncompatibilitySchema),
  })
  .openapi("CompatibilityVerdict");

export const SchemaVersionSchema = z
  .object({
    version: z.number().int(),
    schema: JsonSchemaValue,
    dataschema: z.string(),
    source: z.enum(["config", "registry"]).openapi({ description: "Declared in eventline.config.ts, or registered at runtime" }),
    createdAt: z.string().optional(),
    createdBy: z.string().nullable().optional(),
  })
  .openapi("SchemaVersion");

export const TypeSchemasSchema = z
  .object({ topic: z.string(), type: z.string(), compatibility: Mode, schemas: z.array(SchemaVersionSchema) })
  .openapi("TypeSchemas");

export const CatalogQuery = z.object({
  topic: z
    .string()
    .min(1)
    .optional()
    .openapi({ param: { name: "topic", in: "query" }, description: "Only this topic's types" }),
});

export const SchemaCatalogSchema = z
  .object({
    types: z.array(
      z.object({
        topic: z.string(),
        type: z.string(),
        compatibility: Mode,
        latestVersion: z.number().int(),
        dataschema: z.string().openapi({ description: "The latest version's URI" }),
        versions: z.number().int().openapi({ description: "How many versions the type has" }),
      }),
    ),
  })
  .openapi("SchemaCatalog");
