import { z } from "zod";
import { type FilterPattern, filterSchema } from "./filter";
import { AGGREGATE_OPS, type ProcessorSpec, processorSpecSchema } from "./processing/spec";

/**
 * Processors as configuration (issue 21, ADR 0053): what `eventline.config.ts` may declare under
 * `processors`, and how a declaration becomes the engine's spec (shared/processing) plus what the
 * host needs (key and value extraction, role filters, output). Pure: no platform imports.
 */

/** Durations are written as `500ms`, `30s`, `1m`, `15m`, `1h` or `1d`. */
const DURATION = /^(\d{1,9})(ms|s|m|h|d)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export function durationMs(text: string): number {
  const m = DURATION.exec(text);
  if (m === null) throw new Error(`not a duration: ${text}`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

const duration = (what: string) => z.string().regex(DURATION, `${what} is a duration such as "500ms", "30s", "1m", "15m", "1h" or "1d"`);
// Refinements run after a failed format check too: only a well-formed duration is measured.
const positiveDuration = (what: string) =>
  duration(what).refine((d) => !DURATION.test(d) || durationMs(d) > 0, `${what} must be longer than 0`);

/**
 * Where a value comes from in an event: a JSON Pointer into the event as stored (`/data/currency`,
 * `/subject`), or an attribute name (`subject`, `source`, `type`).
 */
const ATTRIBUTE = /^[a-z0-9]{1,20}$/;
const expression = (what: string) =>
  z
    .string()
    .min(1)
    .max(200)
    .refine(
      (e) => ATTRIBUTE.test(e) || /^\/data(\/|$)|^\/[a-z0-9]{1,20}$/.test(e),
      `${what} is an attribute name (e.g. "subject") or a JSON Pointer into the event (e.g. "/data/currency")`,
    );

/** A processor's default health thresholds (its config's `health` block overrides each). */
export const DEFAULT_PROCESSOR_HEALTH = { maxLagEvents: 5000, maxWatermarkLagSeconds: 600, maxPendingOutputs: 1000 } as const;

export const PROCESSOR_NAME = /^[a-z][a-z0-9-]{0,47}$/;

const common = {
  name: z.string().regex(PROCESSOR_NAME, "must be 1-48 chars of a-z, 0-9, '-', starting with a letter"),
  description: z.string().optional(),
  input: z
    .object({
      topic: z.string(),
      /** Only events matching it (the subscription filter language, docs/subscriptions.md) reach the processor. */
      filter: filterSchema.optional(),
    })
    .strict(),
  /** The processor's key: results are per key (the processor re-partitions by it). */
  key: expression("key"),
  /** Event time: the event's `time` (default; an event without one uses its commit time), or its commit time (`received`). */
  eventTime: z.enum(["time", "received"]).default("time"),
  watermark: z
    .object({
      /** How far behind the latest event time seen an event may still arrive in order: watermark = max time − this. */
      outOfOrderness: duration("watermark.outOfOrderness").default("0s"),
      /** A partition that delivers nothing for this long (processing time) no longer holds the watermark back. */
      idleTimeout: positiveDuration("watermark.idleTimeout").default("1m"),
      /**
       * How far ahead of its commit time an event's time may be. Beyond it the event is a dead letter
       * (`future_time`): one wrong clock would otherwise move the watermark past every real event.
       */
      maxAhead: duration("watermark.maxAhead").default("1h"),
      /**
       * While every input partition is idle: `hold` the watermark where the events left it, or let
       * it follow the `clock` (now − outOfOrderness), so windows and absences close on a quiet
       * stream and a later event older than that is late (ADR 0057).
       */
      whenIdle: z.enum(["hold", "clock"]).default("hold"),
    })
    .strict()
    .default({ outOfOrderness: "0s", idleTimeout: "1m", maxAhead: "1h", whenIdle: "hold" }),
  /** How long after a window closes in event time late events are still taken. */
  grace: duration("grace").default("0s"),
  /** Partitions of the processor's internal re-partition topic (its parallelism); default: the input topic's. */
  partitions: z.number().int().min(1).max(256).optional(),
  output: z
    .object({
      /** The topic results are appended to, as CloudEvents (subject = key). */
      topic: z.string(),
      /** Also upsert window results into D1 `processor_windows` (keyed by processor, key, window start). */
      table: z.boolean().default(false),
    })
    .strict(),
  /** GET /v1/health's thresholds for this processor (docs/observability.md "Health"): degraded above, failing above 10×. */
  health: z
    .object({
      /** Events not yet applied: waiting to be re-partitioned plus waiting in the internal topic. */
      maxLagEvents: z.number().int().min(0).default(DEFAULT_PROCESSOR_HEALTH.maxLagEvents),
      /** now − an instance's watermark, seconds, judged only while that instance has events waiting (a stuck watermark). */
      maxWatermarkLagSeconds: z.number().min(0).default(DEFAULT_PROCESSOR_HEALTH.maxWatermarkLagSeconds),
      /** Results and late events committed but not yet handed on (appended to the output topic, dead letters). */
      maxPendingOutputs: z.number().int().min(0).default(DEFAULT_PROCESSOR_HEALTH.maxPendingOutputs),
    })
    .strict()
    .default({ ...DEFAULT_PROCESSOR_HEALTH }),
};

const windowSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("tumbling"), size: positiveDuration("window.size") }).strict(),
  z.object({ type: z.literal("hopping"), size: positiveDuration("window.size"), advance: positiveDuration("window.advance") }).strict(),
  z.object({ type: z.literal("session"), gap: positiveDuration("window.gap") }).strict(),
]);

const aggregateSchema = z
  .object({
    name: z.string(),
    op: z.enum(AGGREGATE_OPS),
    /** What it reads: an attribute or a JSON Pointer into the event (`count` reads nothing). */
    field: expression("field").optional(),
  })
  .strict();

const aggregateProcessorSchema = z
  .object({
    kind: z.literal("aggregate"),
    ...common,
    window: windowSchema,
    aggregates: z.array(aggregateSchema).min(1).max(32),
    /** `final`: one result per window, once the watermark passes its end + grace; `updates`: one per change, then the final. */
    emit: z.enum(["final", "updates"]).default("final"),
    /** Exact distinct values per window before `distinct` switches to a HyperLogLog estimate (1.6 % standard error). */
    distinctExactLimit: z.number().int().min(1).max(100_000).optional(),
  })
  .strict();

const patternProcessorSchema = z
  .object({
    kind: z.literal("pattern"),
    ...common,
    pattern: z
      .object({
        /** `sequence`: an "a" then a "b" within `within`; `absence`: an "a" with no "b" within `within`. */
        type: z.enum(["sequence", "absence"]),
        /** Which events are "a" and which "b" (filter patterns over the event). */
        a: filterSchema,
        b: filterSchema,
        within: positiveDuration("pattern.within"),
      })
      .strict(),
  })
  .strict();

export const processorConfigSchema = z.discriminatedUnion("kind", [aggregateProcessorSchema, patternProcessorSchema]);
export type ProcessorConfigInput = z.input<typeof processorConfigSchema>;
export type ProcessorConfig = z.output<typeof processorConfigSchema>;

/** What the host needs beside the engine spec, derived once. */
export interface ProcessorPlan {
  config: ProcessorConfig;
  /** The engine's spec: `partitions` is the input topic's (watermarks are per input partition). */
  spec: ProcessorSpec;
  /** The internal topic the processor re-partitions through, and its partition count. */
  repartitionTopic: string;
  instances: number;
  /** Values the aggregates read: field expression → its extraction (attribute or pointer). */
  fields: string[];
  /** watermark.maxAhead in ms: event times further ahead of their commit are dead letters. */
  maxAheadMs: number;
  roles?: { a: FilterPattern; b: FilterPattern };
}

export const repartitionTopicOf = (processor: string) => `processor.${processor}`;
/** The route (outbox "subscription") name a processor's feed uses in partition logs. */
export const processorRouteOf = (processor: string) => `processor:${processor}`;
export const PROCESSOR_ROUTE_PREFIX = "processor:";
/** The id of a processor's dead letter for the input at (topic, partition, sequence): one per input, whatever the reason. */
export const processorDeadLetterId = (processor: string, topic: string, partition: number, sequence: number) =>
  `${processorRouteOf(processor)}:${topic}:${partition}:${sequence}`;

/**
 * The engine spec of a validated declaration, or the spec's own error messages (a window that
 * puts an event in too many windows, a duplicate aggregate name...).
 */
export function planProcessor(
  config: ProcessorConfig,
  inputPartitions: number,
): ProcessorPlan | { issues: { path: PropertyKey[]; message: string }[] } {
  const watermark = {
    outOfOrdernessMs: durationMs(config.watermark.outOfOrderness),
    idleTimeoutMs: durationMs(config.watermark.idleTimeout),
    // Only when set: a spec without it stays what it was (a changed spec rebuilds the processor).
    ...(config.watermark.whenIdle === "clock" ? { whenIdle: "clock" as const } : {}),
  };
  const base = { name: config.name, partitions: inputPartitions, watermark, graceMs: durationMs(config.grace) };
  const declared =
    config.kind === "aggregate"
      ? {
          kind: "aggregate" as const,
          ...base,
          window:
            config.window.type === "tumbling"
              ? { type: "tumbling" as const, sizeMs: durationMs(config.window.size) }
              : config.window.type === "hopping"
                ? { type: "hopping" as const, sizeMs: durationMs(config.window.size), advanceMs: durationMs(config.window.advance) }
                : { type: "session" as const, gapMs: durationMs(config.window.gap) },
          aggregates: config.aggregates,
          emit: config.emit,
          ...(config.distinctExactLimit === undefined ? {} : { distinctExactLimit: config.distinctExactLimit }),
        }
      : { kind: "pattern" as const, ...base, pattern: { type: config.pattern.type, withinMs: durationMs(config.pattern.within) } };
  const parsed = processorSpecSchema.safeParse(declared);
  if (!parsed.success) return { issues: parsed.error.issues.map((i) => ({ path: i.path, message: i.message })) };
  const fields =
    config.kind === "aggregate" ? [...new Set(config.aggregates.flatMap((a) => (a.field === undefined ? [] : [a.field])))] : [];
  return {
    config,
    spec: parsed.data,
    repartitionTopic: repartitionTopicOf(config.name),
    instances: config.partitions ?? inputPartitions,
    fields,
    maxAheadMs: durationMs(config.watermark.maxAhead),
    ...(config.kind === "pattern" ? { roles: { a: config.pattern.a, b: config.pattern.b } } : {}),
  };
}
