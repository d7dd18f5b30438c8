import { z } from "zod";

/**
 * What a processor is: the validated, JSON-serializable declaration the engine runs (ADR 0052).
 * Key and value extraction, filtering and event-time selection belong to the host: the engine
 * receives each input with its key, event time, values and (for patterns) its role already set.
 */

const ms = (what: string) => z.number().int(`${what} must be an integer number of milliseconds`);
const name = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, "a processor name is lowercase letters, digits and dashes, starting with a letter");

/**
 * Watermark per input partition = max event time seen − `outOfOrdernessMs`. A partition that has
 * delivered nothing for more than `idleTimeoutMs` of processing time is left out of the combined
 * watermark (the minimum over the others). `whenIdle: "clock"` (ADR 0057): while every partition
 * is idle, the watermark also follows processing time (clock − `outOfOrdernessMs`), so absences
 * and windows close on a stream gone quiet; absent, it holds.
 */
export const watermarkSpecSchema = z.strictObject({
  outOfOrdernessMs: ms("outOfOrdernessMs").min(0),
  idleTimeoutMs: ms("idleTimeoutMs").min(1),
  whenIdle: z.literal("clock").optional(),
});

/** Hopping windows may overlap by at most this many windows per event (bounds the work and state per event). */
export const MAX_WINDOWS_PER_EVENT = 100;

export const windowSpecSchema = z
  .discriminatedUnion("type", [
    z.strictObject({ type: z.literal("tumbling"), sizeMs: ms("sizeMs").min(1) }),
    z.strictObject({ type: z.literal("hopping"), sizeMs: ms("sizeMs").min(1), advanceMs: ms("advanceMs").min(1) }),
    z.strictObject({ type: z.literal("session"), gapMs: ms("gapMs").min(1) }),
  ])
  .superRefine((w, ctx) => {
    if (w.type !== "hopping") return;
    if (w.advanceMs > w.sizeMs) ctx.addIssue({ code: "custom", message: "a hopping window's advanceMs must not exceed its sizeMs" });
    if (Math.ceil(w.sizeMs / w.advanceMs) > MAX_WINDOWS_PER_EVENT)
      ctx.addIssue({
        code: "custom",
        message: `a hopping window may put an event in at most ${MAX_WINDOWS_PER_EVENT} windows (sizeMs / advanceMs)`,
      });
  });

export const AGGREGATE_OPS = ["count", "sum", "min", "max", "avg", "first", "last", "distinct"] as const;

export const aggregateSpecSchema = z
  .strictObject({
    /** The result's field name. */
    name: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, "an aggregate name is an identifier")
      .refine((n) => n !== "__proto__", "an aggregate may not be named __proto__"),
    op: z.enum(AGGREGATE_OPS),
    /** The input value it reads (a key of the input's `value`); `count` reads none. */
    field: z.string().min(1).max(200).optional(),
  })
  .superRefine((a, ctx) => {
    if (a.op === "count" && a.field !== undefined) ctx.addIssue({ code: "custom", message: "count takes no field" });
    if (a.op !== "count" && a.field === undefined) ctx.addIssue({ code: "custom", message: `${a.op} needs a field` });
  });

/** Exact distinct values kept per window before the count switches to a HyperLogLog estimate. */
export const DEFAULT_DISTINCT_EXACT_LIMIT = 10_000;

const common = {
  name,
  /** Input partitions 0 … partitions − 1; an unseen partition holds the watermark until it turns idle. */
  partitions: z.number().int().min(1).max(1024),
  watermark: watermarkSpecSchema,
  /** How long after a window closes in event time (its end; an event's own time for sessions; an "a" input's time + within for patterns) late inputs are still taken. */
  graceMs: ms("graceMs").min(0),
};

export const aggregateProcessorSpecSchema = z.strictObject({
  kind: z.literal("aggregate"),
  ...common,
  window: windowSpecSchema,
  aggregates: z
    .array(aggregateSpecSchema)
    .min(1)
    .max(32)
    .refine((list) => new Set(list.map((a) => a.name)).size === list.length, "aggregate names must be unique"),
  emit: z.enum(["final", "updates"]),
  distinctExactLimit: z.number().int().min(1).max(100_000).default(DEFAULT_DISTINCT_EXACT_LIMIT),
});

export const patternProcessorSpecSchema = z.strictObject({
  kind: z.literal("pattern"),
  ...common,
  /**
   * `sequence`: an input of role "a" followed by one of role "b" for the same key, with
   * a.time ≤ b.time < a.time + withinMs. `absence`: an "a" with no such "b".
   */
  pattern: z.strictObject({ type: z.enum(["sequence", "absence"]), withinMs: ms("withinMs").min(1) }),
});

export const processorSpecSchema = z.discriminatedUnion("kind", [aggregateProcessorSpecSchema, patternProcessorSpecSchema]);

/** A processor as declared (defaults optional). */
export type ProcessorSpecInput = z.input<typeof processorSpecSchema>;
/** A validated processor (defaults filled in). */
export type ProcessorSpec = z.output<typeof processorSpecSchema>;
export type AggregateProcessorSpec = z.output<typeof aggregateProcessorSpecSchema>;
export type PatternProcessorSpec = z.output<typeof patternProcessorSpecSchema>;
export type WindowSpec = z.output<typeof windowSpecSchema>;
export type AggregateSpec = z.output<typeof aggregateSpecSchema>;
export type WatermarkSpec = z.output<typeof watermarkSpecSchema>;

/** A scalar input value (what the host extracted from the event for the aggregates to read). */
export type Scalar = string | number | boolean | null;

const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const epochMs = z.number().int().refine(Number.isSafeInteger, "a time must be a safe integer of epoch milliseconds");

/**
 * One input, as the host hands it over. `partition` + `sequence` identify it (sequences increase
 * per partition; gaps are fine). `receivedTime` is processing time (epoch ms; the host may pass the
 * event's commit time): it drives idleness. `role` is required by pattern processors.
 */
export const processorInputSchema = z.strictObject({
  partition: z.number().int().min(0),
  sequence: z.number().int().min(0),
  id: z.string().min(1),
  key: z.string(),
  eventTime: epochMs,
  receivedTime: epochMs,
  value: z.record(z.string(), scalar).optional(),
  role: z.enum(["a", "b"]).optional(),
});

export type ProcessorInput = z.infer<typeof processorInputSchema>;
