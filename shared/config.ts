import { z } from "zod";

/**
 * Topics are configuration, not runtime state: `eventline.config.ts` declares them and this
 * module validates the declaration when it is loaded, so a bad config fails the build
 * (`npm run build` checks it first), the tests and the Worker's start-up with one clear message.
 */

export const TOPIC_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

const zodSchema = z.custom<z.ZodType>((v) => v instanceof z.ZodType, {
  message: "must be a zod schema (z.object(...), z.string(), ...)",
});

const topicSchema = z
  .object({
    name: z.string().regex(TOPIC_NAME, "must be 1-63 chars of a-z, 0-9, '.', '_', '-', starting with a letter or digit"),
    partitions: z.number().int().min(1).max(1024),
    /** How long events stay in the partition log (archiving and trimming use it). */
    retentionHours: z
      .number()
      .int()
      .min(1)
      .max(24 * 365 * 10),
    /** Zod schema for `data`, per CloudEvents `type`. */
    schemas: z.record(z.string().min(1), zodSchema).default({}),
    /** When true, only the types listed in `schemas` are accepted (422 otherwise). */
    strictTypes: z.boolean().default(false),
    description: z.string().optional(),
  })
  .strict()
  .refine((t) => !t.strictTypes || Object.keys(t.schemas).length > 0, {
    message: "strictTypes needs at least one entry in schemas",
    path: ["strictTypes"],
  });

const limitsSchema = z
  .object({
    maxBodyBytes: z
      .number()
      .int()
      .min(1024)
      .max(100 * 1024 * 1024),
    maxEventBytes: z.number().int().min(256),
    maxBatchEvents: z.number().int().min(1).max(10_000),
  })
  .strict()
  .refine((l) => l.maxEventBytes <= l.maxBodyBytes, {
    message: "maxEventBytes must not exceed maxBodyBytes",
    path: ["maxEventBytes"],
  });

const configSchema = z
  .object({
    topics: z.array(topicSchema).min(1),
    limits: limitsSchema,
    partitionLog: z
      .object({
        /** Appends admitted but not yet durable, per partition; beyond it → 503 + Retry-After. */
        maxInFlightAppends: z.number().int().min(1).max(10_000),
        /** Seconds a client is asked to wait after a 503 from an overloaded partition. */
        retryAfterSeconds: z.number().int().min(1).max(3600),
      })
      .strict(),
    read: z
      .object({
        defaultLimit: z.number().int().min(1),
        maxLimit: z.number().int().min(1).max(10_000),
      })
      .strict()
      .refine((r) => r.defaultLimit <= r.maxLimit, { message: "defaultLimit must not exceed maxLimit" }),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.topics.forEach((t, i) => {
      if (seen.has(t.name)) {
        ctx.addIssue({ code: "custom", message: `duplicate topic name "${t.name}"`, path: ["topics", i, "name"] });
      }
      seen.add(t.name);
    });
  });

export type EventlineConfigInput = z.input<typeof configSchema>;
export type EventlineConfig = z.output<typeof configSchema>;
export type TopicConfig = EventlineConfig["topics"][number];

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

function formatPath(path: readonly PropertyKey[]): string {
  return (
    path
      .map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
      .join("")
      .replace(/^\./, "") || "(root)"
  );
}

/** Validates a config declaration; throws `ConfigError` listing every problem with its path. */
export function defineConfig(input: EventlineConfigInput): EventlineConfig {
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  - ${formatPath(issue.path)}: ${issue.message}`);
    throw new ConfigError(`Invalid Eventline config (eventline.config.ts):\n${lines.join("\n")}`);
  }
  return parsed.data;
}

export function findTopic(config: EventlineConfig, name: string): TopicConfig | undefined {
  return config.topics.find((t) => t.name === name);
}
