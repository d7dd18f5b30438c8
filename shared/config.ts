import { z } from "zod";
import { filterSchema } from "./filter";

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
    /**
     * Archiving to R2: a partition seals a segment when `segmentEvents` events are unarchived or
     * the oldest of them is `segmentSeconds` old. Events leave the partition log only once
     * archived, verified, and older than `retentionHours`.
     */
    archive: z
      .object({
        segmentEvents: z.number().int().min(1).max(10_000).default(1000),
        segmentSeconds: z.number().int().min(1).max(86_400).default(300),
      })
      .strict()
      .default({ segmentEvents: 1000, segmentSeconds: 300 }),
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

export const SUBSCRIPTION_NAME = /^[a-z][a-z0-9-]{0,47}$/;
/** Queues caps retry delays at 12 hours. */
export const MAX_BACKOFF_SECONDS = 43_200;

const subscriptionSchema = z
  .object({
    name: z.string().regex(SUBSCRIPTION_NAME, "must be 1-48 chars of a-z, 0-9, '-', starting with a letter"),
    topic: z.string(),
    /** Content-based filter (shared/filter.ts), evaluated when the event is committed. */
    filter: filterSchema.optional(),
    /** Queue producer binding that delivers this subscription (SCREAMING_SNAKE, e.g. SUB_ACTIVITY). */
    queue: z.string().regex(/^[A-Z][A-Z0-9_]*$/, "must be a binding name in SCREAMING_SNAKE_CASE"),
    /** Deliveries after the first before the message goes to the DLQ (wrangler.toml max_retries). */
    maxRetries: z.number().int().min(0).max(100).default(3),
    backoff: z
      .object({
        baseSeconds: z.number().int().min(1).max(MAX_BACKOFF_SECONDS).default(1),
        capSeconds: z.number().int().min(1).max(MAX_BACKOFF_SECONDS).default(300),
      })
      .strict()
      .refine((b) => b.baseSeconds <= b.capSeconds, { message: "baseSeconds must not exceed capSeconds" })
      .default({ baseSeconds: 1, capSeconds: 300 }),
    /** `partition`: effects applied in sequence order per partition; `none`: as delivered. */
    ordering: z.enum(["none", "partition"]).default("none"),
    circuitBreaker: z
      .object({
        failureThreshold: z.number().int().min(1).max(1000).default(5),
        openSeconds: z.number().int().min(1).max(3600).default(30),
      })
      .strict()
      .default({ failureThreshold: 5, openSeconds: 30 }),
    description: z.string().optional(),
    /** Who consumes the queue: the platform Worker, or the Worker of this wrangler config. */
    consumer: z.string().default("platform"),
  })
  .strict();

const configSchema = z
  .object({
    topics: z.array(topicSchema).min(1),
    subscriptions: z.array(subscriptionSchema).default([]),
    limits: limitsSchema,
    partitionLog: z
      .object({
        /** Appends admitted but not yet durable, per partition; beyond it → 503 + Retry-After. */
        maxInFlightAppends: z.number().int().min(1).max(10_000),
        /** Seconds a client is asked to wait after a 503 from an overloaded partition. */
        retryAfterSeconds: z.number().int().min(1).max(3600),
      })
      .strict(),
    commands: z
      .object({
        snapshotEvery: z.number().int().min(1).max(10_000).default(10),
        conflictRetries: z.number().int().min(0).max(20).default(4),
        maxWaitMs: z.number().int().min(0).max(60_000).default(10_000),
        defaultWaitMs: z.number().int().min(0).max(60_000).default(5_000),
      })
      .strict()
      .refine((c) => c.defaultWaitMs <= c.maxWaitMs, { message: "defaultWaitMs must not exceed maxWaitMs" })
      .default({ snapshotEvery: 10, conflictRetries: 4, maxWaitMs: 10_000, defaultWaitMs: 5_000 }),
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
    const names = new Set<string>();
    const queues = new Set<string>();
    cfg.subscriptions.forEach((sub, i) => {
      if (!seen.has(sub.topic))
        ctx.addIssue({ code: "custom", message: `unknown topic "${sub.topic}"`, path: ["subscriptions", i, "topic"] });
      if (names.has(sub.name))
        ctx.addIssue({ code: "custom", message: `duplicate subscription name "${sub.name}"`, path: ["subscriptions", i, "name"] });
      if (queues.has(sub.queue))
        ctx.addIssue({ code: "custom", message: `queue binding ${sub.queue} is used twice`, path: ["subscriptions", i, "queue"] });
      names.add(sub.name);
      queues.add(sub.queue);
    });
  });

export type EventlineConfigInput = z.input<typeof configSchema>;
export type EventlineConfig = z.output<typeof configSchema>;
export type TopicConfig = EventlineConfig["topics"][number];
export type SubscriptionConfig = EventlineConfig["subscriptions"][number];

/** Queue names follow the subscription name, so wrangler.toml can be checked against config. */
export const queueNameOf = (subscription: string) => `eventline-${subscription}`;
export const dlqNameOf = (subscription: string) => `eventline-${subscription}-dlq`;

/**
 * Deliveries an ordered subscription may spend waiting for a predecessor (they are not handler
 * failures); the queue's `max_retries` leaves room for them on top of `maxRetries`.
 */
export const ORDERING_DEFERRALS = 20;

/** Runtime (webhook) subscriptions share one delivery queue (see wrangler.toml). */
export const WEBHOOK_QUEUE_BINDING = "WEBHOOK_DELIVERY";
export const WEBHOOK_QUEUE = "eventline-webhooks";
/** The webhook queue's max_retries: the ceiling for a webhook subscription's maxRetries. */
export const WEBHOOK_MAX_RETRIES = 10;

/** The `max_retries` wrangler.toml must give the subscription's queue. */
export function queueMaxRetries(sub: Pick<SubscriptionConfig, "maxRetries" | "ordering">): number {
  return sub.ordering === "partition" ? sub.maxRetries + ORDERING_DEFERRALS : sub.maxRetries;
}

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
