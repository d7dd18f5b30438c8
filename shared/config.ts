import { z } from "zod";
import { filterSchema } from "./filter";
import { checkProcessors } from "./processors-checks";
import { type ProcessorConfig, processorConfigSchema, repartitionTopicOf } from "./processors-config";
import { COMPATIBILITY_MODES, DEFAULT_COMPATIBILITY } from "./schemas/modes";
import { parseGrants } from "./security/grants";

/**
 * Topics are configuration, not runtime state: `eventline.config.ts` declares them and this
 * module validates the declaration when it is loaded, so a bad config fails the build
 * (`npm run build` checks it first), the tests and the Worker's start-up with one clear message.
 */

export const TOPIC_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** A JSON Pointer below `data` (RFC 6901 escapes; a `*` segment is a wildcard). */
export const SENSITIVE_PATH = /^(\/([^~/]|~[01])+)+$/;

export const JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"] as const;

const grantList = z.array(z.string()).superRefine((texts, ctx) => {
  for (const message of parseGrants(texts).errors) ctx.addIssue({ code: "custom", message });
});

const issuerSchema = z
  .object({
    /** The `iss` value tokens must carry (exact match). */
    issuer: z.string().url(),
    /** Accepted `aud` values; a token must name at least one. */
    audiences: z.array(z.string().min(1)).min(1),
    /** Where the issuer publishes its keys (fetched with caching and a refetch cooldown; https, or http on loopback)... */
    jwksUri: z
      .string()
      .url()
      .refine((u) => u.startsWith("https://") || /^http:\/\/(localhost|127\.0\.0\.1)(:\d+)?\//.test(u), {
        message: "must be an https:// URL (http:// only for localhost)",
      })
      .optional(),
    /** ...or its public keys inline (a static JWKS). */
    jwks: z
      .object({
        keys: z
          .array(
            z
              .record(z.string(), z.unknown())
              .refine((k) => k.d === undefined && k.kty !== "oct", { message: "a JWKS here holds public keys only (no `d`, no `oct`)" }),
          )
          .min(1),
      })
      .optional(),
    /** Accepted signature algorithms; `none` and HMAC are never accepted. */
    algorithms: z.array(z.enum(JWT_ALGORITHMS)).min(1).default(["RS256", "ES256"]),
    /** Accepted `typ` header values (compared case-insensitively, `application/` optional). */
    types: z.array(z.string().min(1)).min(1).default(["JWT", "at+jwt"]),
    clockToleranceSeconds: z.number().int().min(0).max(300).default(30),
    /** Claim holding the principal's grants (array of grant strings, see shared/security/grants.ts). */
    grantsClaim: z.string().min(1).default("eventline_grants"),
    /** Claim naming the principal's tenant (recorded as owner and in the audit log). */
    tenantClaim: z.string().min(1).default("tenant"),
  })
  .strict()
  .refine((i) => (i.jwksUri === undefined) !== (i.jwks === undefined), { message: "give exactly one of jwksUri and jwks" });

export const ROUTE_GROUPS = ["ingest", "read", "commands", "admin"] as const;
export type RouteGroup = (typeof ROUTE_GROUPS)[number];

const securitySchema = z
  .object({
    oidc: z
      .object({
        issuers: z.array(issuerSchema).default([]),
        /** How long fetched JWKS are used before a refresh. */
        jwksCacheSeconds: z.number().int().min(1).max(86_400).default(600),
        /** At most one JWKS refetch per issuer in this period, however many unknown `kid`s arrive. */
        jwksCooldownSeconds: z.number().int().min(1).max(3600).default(30),
      })
      .strict()
      .refine((o) => new Set(o.issuers.map((i) => i.issuer)).size === o.issuers.length, { message: "an issuer is listed twice" })
      .refine((o) => o.jwksCacheSeconds >= o.jwksCooldownSeconds, { message: "jwksCacheSeconds must be at least jwksCooldownSeconds" })
      .default({ issuers: [], jwksCacheSeconds: 600, jwksCooldownSeconds: 30 }),
    apiKeys: z
      .object({
        /** Seconds a verified API key is cached per isolate (revocation reaches other isolates within it). */
        cacheSeconds: z.number().int().min(0).max(300).default(10),
        /** Grants a new key may not exceed are checked against its creator's; this caps their count. */
        maxGrants: z.number().int().min(1).max(100).default(20),
        /**
         * Longest life, in days, of a key minted by a JWT principal (also its default). A token's
         * `exp` ends a session, not the identity, so it does not bound the key; this does.
         */
        jwtKeyMaxDays: z.number().int().min(1).max(3650).default(90),
      })
      .strict()
      .default({ cacheSeconds: 10, maxGrants: 20, jwtKeyMaxDays: 90 }),
    mtls: z
      .object({
        /** Route groups that require a verified client certificate (request.cf.tlsClientAuth). */
        routeGroups: z.array(z.enum(ROUTE_GROUPS)).default([]),
        /** When non-empty, the certificate must also match one entry (every given field equal). */
        certificates: z
          .array(
            z
              .object({
                subjectDN: z.string().min(1).optional(),
                issuerDN: z.string().min(1).optional(),
                fingerprintSha256: z
                  .string()
                  .regex(/^[0-9a-f]{64}$/, "lower-case hex SHA-256")
                  .optional(),
              })
              .strict()
              .refine((c) => Object.keys(c).length > 0, { message: "name at least one certificate field" }),
          )
          .default([]),
      })
      .strict()
      .default({ routeGroups: [], certificates: [] }),
    /** Grants of the bootstrap admin key (EVENTLINE_ADMIN_KEY). */
    adminGrants: grantList.default(["admin:*", "decrypt:*"]),
  })
  .strict()
  .default({
    oidc: { issuers: [], jwksCacheSeconds: 600, jwksCooldownSeconds: 30 },
    apiKeys: { cacheSeconds: 10, maxGrants: 20, jwtKeyMaxDays: 90 },
    mtls: { routeGroups: [], certificates: [] },
    adminGrants: ["admin:*", "decrypt:*"],
  });

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
    /**
     * Zod schema for `data`, per CloudEvents `type`: one schema (version 1), or a list of versions
     * (1..n, oldest first). Later versions can be registered at runtime (docs/schemas.md); each is
     * checked against the earlier ones under the type's compatibility mode.
     */
    schemas: z.record(z.string().min(1), z.union([zodSchema, z.array(zodSchema).min(1).max(100)])).default({}),
    /**
     * The output of a parse (below), accepted as input so a parsed config parses again (tests
     * spread the shipped one into their own): a type keeps these versions while `schemas` still
     * holds their latest; a type whose `schemas` entry was replaced takes the new entry.
     */
    schemaVersions: z.record(z.string().min(1), z.array(zodSchema).min(1).max(100)).optional(),
    /** How a new schema version must relate to earlier ones (Confluent's modes; default BACKWARD). */
    compatibility: z.enum(COMPATIBILITY_MODES).default(DEFAULT_COMPATIBILITY),
    /** Per-type overrides of `compatibility`. */
    typeCompatibility: z.record(z.string().min(1), z.enum(COMPATIBILITY_MODES)).default({}),
    /** When true, only types with a data schema (declared here or registered) are accepted (422 otherwise). */
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
    /**
     * Sensitive fields of `data`, per event type (`"*"`: every type), as JSON Pointers into
     * `data`; a `*` segment matches every array element or object member (e.g. `/cards/*\/number`).
     * They are encrypted at ingest under the subject's data key (docs/security.md), so events
     * with sensitive fields need a `subject`.
     */
    sensitive: z
      .record(z.string().min(1), z.array(z.string().regex(SENSITIVE_PATH, "must be a JSON Pointer into data, e.g. /email")).min(1))
      .default({}),
    /** Written only by the platform (e.g. the audit log): nobody may produce to it through the API. */
    internal: z.boolean().default(false),
    description: z.string().optional(),
  })
  .strict()
  .refine((t) => !t.strictTypes || Object.keys(t.schemas).length > 0, {
    message: "strictTypes needs at least one entry in schemas",
    path: ["strictTypes"],
  })
  .transform(({ schemas, schemaVersions: parsed, ...topic }) => {
    const schemaVersions: Record<string, z.ZodType[]> = {};
    const latest: Record<string, z.ZodType> = {};
    for (const [type, declared] of Object.entries(schemas)) {
      const earlier = parsed !== undefined && Object.hasOwn(parsed, type) ? parsed[type] : undefined;
      const versions = Array.isArray(declared) ? declared : earlier?.at(-1) === declared ? earlier : [declared];
      schemaVersions[type] = versions;
      latest[type] = versions[versions.length - 1] as z.ZodType;
    }
    /** `schemas`: each type's latest declared version; `schemaVersions`: all of them, version i+1 at index i. */
    return { ...topic, schemas: latest, schemaVersions };
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

/**
 * Redelivery timeout of a subscription that does not set one (and of every webhook subscription).
 * A minute: well beyond a healthy queue's delivery time (batches wait at most max_batch_timeout,
 * 1 s; an ordered subscription's waits for a predecessor are retried within 10 s), so a message
 * that is merely slow is rarely sent twice, and short enough that a lost one costs about a minute.
 */
export const DEFAULT_REDELIVERY_SECONDS = 60;

/** Health thresholds of a subscription; webhook subscriptions use the defaults. */
export const DEFAULT_HEALTH = { maxLagEvents: 5000, maxLagSeconds: 300, maxErrorRate: 0.1 } as const;

/** The recent window of the metrics: 5 minutes, like Prometheus' `rate(x[5m])`; 15 minutes of chart history. */
export const DEFAULT_METRICS_WINDOW = { windowSeconds: 300, historySeconds: 900 } as const;

const healthSchema = z
  .object({
    /** Events not yet handled, summed over the topic's partitions. */
    maxLagEvents: z.number().int().min(0).default(DEFAULT_HEALTH.maxLagEvents),
    /** Age of the oldest event not yet handled, seconds. */
    maxLagSeconds: z.number().min(0).default(DEFAULT_HEALTH.maxLagSeconds),
    /** Failed handler attempts (retried + dead-lettered) ÷ deliveries, over the recent window (metrics.windowSeconds). */
    maxErrorRate: z.number().min(0).max(1).default(DEFAULT_HEALTH.maxErrorRate),
  })
  .strict()
  .default({ ...DEFAULT_HEALTH });
export type HealthThresholds = z.output<typeof healthSchema>;

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
    /**
     * Seconds after a send when the partition log sends an event again if the subscription has not
     * settled it (docs/adr/0030-log-driven-redelivery.md). Events the queue is still retrying after a
     * handler failure are not sent again while their retries last.
     */
    redeliverySeconds: z.number().int().min(5).max(MAX_BACKOFF_SECONDS).default(DEFAULT_REDELIVERY_SECONDS),
    circuitBreaker: z
      .object({
        failureThreshold: z.number().int().min(1).max(1000).default(5),
        openSeconds: z.number().int().min(1).max(3600).default(30),
      })
      .strict()
      .default({ failureThreshold: 5, openSeconds: 30 }),
    description: z.string().optional(),
    /**
     * Give the handler plaintext of the topic's sensitive fields (the SDK decrypts on receipt;
     * queue messages carry only envelopes). The declaration is the operator's grant.
     */
    decrypt: z.boolean().default(false),
    /** Who consumes the queue: the platform Worker, or the Worker of this wrangler config. */
    consumer: z.string().default("platform"),
    /** Thresholds of GET /v1/health: exceeded → degraded, exceeded 10× → failing (docs/observability.md "Health"). */
    health: healthSchema,
  })
  .strict();

const configSchema = z
  .object({
    topics: z.array(topicSchema).min(1),
    subscriptions: z.array(subscriptionSchema).default([]),
    /** Stream processors (docs/processors.md): windowed aggregates and patterns over a topic, results appended to another. */
    processors: z.array(processorConfigSchema).default([]),
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
    security: securitySchema,
    /**
     * Windowed figures (docs/observability.md "Recent window"): error rates, rates and latency
     * quantiles over the last `windowSeconds`, for GET /v1/health, /v1/metrics and the dashboard;
     * the dashboard's charts read the last `historySeconds` of them (GET /v1/metrics/history).
     */
    metrics: z
      .object({
        windowSeconds: z.number().int().min(2).max(3600).default(DEFAULT_METRICS_WINDOW.windowSeconds),
        historySeconds: z.number().int().min(60).max(86_400).default(DEFAULT_METRICS_WINDOW.historySeconds),
      })
      .strict()
      .default({ ...DEFAULT_METRICS_WINDOW }),
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
    checkProcessors(cfg, ctx);
  })
  .transform(withRepartitionTopics);

/**
 * Each processor re-partitions by its key through an internal topic of its own
 * (`processor.<name>`, docs/processors.md), added here unless the declaration already holds it (a
 * parsed config parses again).
 */
function withRepartitionTopics<C extends { topics: TopicOutput[]; processors: ProcessorConfig[] }>(cfg: C): C {
  const topics = [...cfg.topics];
  for (const p of cfg.processors) {
    const name = repartitionTopicOf(p.name);
    if (topics.some((t) => t.name === name)) continue;
    const input = topics.find((t) => t.name === p.input.topic);
    topics.push(
      topicSchema.parse({
        name,
        partitions: p.partitions ?? input?.partitions ?? 1,
        retentionHours: input?.retentionHours ?? 24 * 7,
        archive: input?.archive,
        internal: true,
        description: `Internal: processor ${p.name}'s input, re-partitioned by its key.`,
      }),
    );
  }
  return { ...cfg, topics };
}
type TopicOutput = z.output<typeof topicSchema>;

export type EventlineConfigInput = z.input<typeof configSchema>;
export type EventlineConfig = z.output<typeof configSchema>;
export type TopicConfig = EventlineConfig["topics"][number];
export type SubscriptionConfig = EventlineConfig["subscriptions"][number];
export type SecurityConfig = EventlineConfig["security"];
export type IssuerConfig = SecurityConfig["oidc"]["issuers"][number];

/** Queue names follow the subscription name, so wrangler.toml can be checked against config. */
export const queueNameOf = (subscription: string) => `eventline-${subscription}`;
export const dlqNameOf = (subscription: string) => `eventline-${subscription}-dlq`;

/** Deliveries an ordered subscription may spend waiting for a predecessor (the consumer SDK's constant). */
import { ORDERING_DEFERRALS } from "../sdk/constants";

export { ORDERING_DEFERRALS };

/** Runtime (webhook) subscriptions share one delivery queue (see wrangler.toml). */
export const WEBHOOK_QUEUE_BINDING = "WEBHOOK_DELIVERY";
export const WEBHOOK_QUEUE = "eventline-webhooks";
/** The webhook queue's max_retries: the ceiling for a webhook subscription's maxRetries. */
export const WEBHOOK_MAX_RETRIES = 10;
/** Every webhook subscription's retry backoff. */
export const WEBHOOK_BACKOFF = { baseSeconds: 1, capSeconds: 300 } as const;

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

/**
 * The data schema versions the config declares for `type` (version i+1 at index i), none for a
 * type it does not list. Own properties only: a type such as "constructor" finds nothing.
 */
export function declaredVersions(topic: TopicConfig, type: string): readonly z.ZodType[] {
  return Object.hasOwn(topic.schemaVersions, type) ? (topic.schemaVersions[type] as z.ZodType[]) : [];
}
