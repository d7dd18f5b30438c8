import { z } from "@hono/zod-openapi";

/** OpenAPI shapes of the processors API (routes/processors.ts); the view itself is built by ../processors.ts. */

const time = (description: string) => z.string().nullable().openapi({ description, example: "2026-01-01T12:01:30.000Z" });

export const ProcessorNameParam = z
  .string()
  .min(1)
  .openapi({ param: { name: "name", in: "path" }, example: "revenue-per-minute", description: "Processor name (eventline.config.ts)" });

const ProcessorInputSchema = z.object({
  partition: z.number().int().openapi({ description: "A partition of the processor's input topic" }),
  checkpoint: z.number().int().nullable().openapi({ description: "The input partition's highest sequence applied (null: none yet)" }),
  watermark: time("That partition's watermark: the latest event time seen from it minus the allowed out-of-orderness"),
  idle: z.boolean().openapi({ description: "Idle (nothing for longer than watermark.idleTimeout): it no longer holds the watermark back" }),
});

const BackfillSchema = z.object({
  read: z.number().int().openapi({ description: "Input events read so far (every partition's, whoever's key)" }),
  total: z.number().int().openapi({ description: "Input events it reads in all: the input heads when it started, summed" }),
});

export const ProcessorPartitionSchema = z
  .object({
    partition: z.number().int().openapi({ description: "The partition of the internal topic `processor.<name>`: one instance each" }),
    watermark: time("The instance's watermark: the minimum over its non-idle inputs (null before its first input)"),
    inputs: z.array(ProcessorInputSchema),
    applied: z.number().int().openapi({
      description:
        "Internal-partition sequence applied through (right after a reset: the partition's head then, `rebuildThrough`; what came before is rebuilt from the input topic); each internal event is a batch of one input run's inputs for this instance",
    }),
    head: z.number().int().openapi({ description: "The internal partition's head sequence" }),
    lag: z.number().int().openapi({ description: "head − applied: events (input batches) of the internal partition not yet applied" }),
    inputsApplied: z
      .number()
      .int()
      .openapi({ description: "Inputs (events of the input topic) applied since the instance was last reset" }),
    openWindows: z.number().int().openapi({ description: "Open windows (aggregates) or pending “a” events (patterns)" }),
    keys: z.number().int(),
    lateEvents: z
      .number()
      .int()
      .openapi({ description: "Events that arrived after their windows closed (dead letters with reason late_event)" }),
    results: z.number().int().openapi({ description: "Results produced by the instance's current state (a reset starts again at 0)" }),
    pendingOutputs: z.number().int().openapi({ description: "Results and late events committed but not yet appended / dead-lettered" }),
    outputPerSecond: z.number().openapi({ description: "Results appended per second over the last minute" }),
    lastOutputError: z.string().nullable(),
    catchingUp: z
      .boolean()
      .openapi({ description: "Reading its history (a new processor, a reset, a changed declaration) or its partition back (a gap)" }),
    backfill: BackfillSchema.nullable().openapi({
      description:
        "While the instance reads the input topic's history (ADR 0058): input events read of the total. Null once it has read it (or had none to read)",
    }),
  })
  .openapi("ProcessorPartition");

const FilterSchema = z.record(z.string(), z.unknown()).openapi({ description: "A filter pattern (docs/subscriptions.md#filters)" });

export const ProcessorSchema = z
  .object({
    name: z.string(),
    kind: z.enum(["aggregate", "pattern"]),
    description: z.string().optional(),
    input: z.object({ topic: z.string(), filter: FilterSchema.optional() }),
    key: z.string().openapi({ description: "Attribute name or JSON Pointer the results are keyed by", example: "/data/currency" }),
    eventTime: z.enum(["time", "received"]),
    output: z.object({
      topic: z.string(),
      table: z.boolean().openapi({ description: "Window results are also upserted into D1 processor_windows" }),
    }),
    internalTopic: z
      .string()
      .openapi({ description: "The internal topic it re-partitions through", example: "processor.revenue-per-minute" }),
    window: z
      .record(z.string(), z.string())
      .optional()
      .openapi({ description: "Aggregates: the window as declared", example: { type: "tumbling", size: "1m" } }),
    aggregates: z.array(z.object({ name: z.string(), op: z.string(), field: z.string().optional() })).optional(),
    emit: z.enum(["final", "updates"]).optional(),
    pattern: z
      .object({ type: z.enum(["sequence", "absence"]), a: FilterSchema, b: FilterSchema, within: z.string() })
      .optional()
      .openapi({ description: "Patterns: the events that are “a” and “b”, and the time allowed between them" }),
    watermark: z.object({
      outOfOrderness: z.string(),
      idleTimeout: z.string(),
      maxAhead: z.string(),
      whenIdle: z
        .enum(["hold", "clock"])
        .openapi({ description: "While every input is idle: hold the watermark, or follow the clock (ADR 0057)" }),
    }),
    grace: z.string(),
    lowWatermark: time(
      "The lowest instance watermark: every window ending (+ grace) before it is final (null until every instance saw input)",
    ),
    lag: z.number().int().openapi({
      description:
        "Not yet applied: events waiting in the input topic's outboxes plus the instances' lag (internal events, each a batch of inputs)",
    }),
    inputLag: z
      .number()
      .int()
      .openapi({ description: "Of `lag`: events of the input topic not yet re-partitioned (still in its partitions' outboxes)" }),
    openWindows: z.number().int(),
    lateEvents: z.number().int(),
    results: z.number().int(),
    outputPerSecond: z.number(),
    pendingOutputs: z.number().int(),
    backfill: BackfillSchema.nullable().openapi({
      description:
        "While instances read the input topic's history: their input events read and to read, summed over the instances; null when none is",
    }),
    partitions: z.array(ProcessorPartitionSchema),
  })
  .openapi("Processor");

export const ProcessorResetSchema = z
  .object({
    processor: z.string(),
    state: z.literal("rebuilding"),
    instances: z
      .array(
        z.object({
          partition: z.number().int(),
          rebuildThrough: z.number().int().openapi({
            description: "The internal partition's head when the reset was taken: the instance continues with it after its backfill",
          }),
          inputThrough: z.array(z.number().int()).openapi({
            description:
              "Per input partition, its head when the reset was taken: the instance's backfill reads it from sequence 1 through there",
          }),
        }),
      )
      .openapi({ description: "Every instance, reset: each rebuilds its state from the input topic's history (ADR 0058)" }),
    events: z.number().int().openapi({ description: "Input-topic events the rebuild reads again (the input heads at the reset, summed)" }),
    status: z.string().openapi({
      description:
        "Where to follow it: the rebuild is done once every partition's `applied` reaches its `rebuildThrough` and `catchingUp` is false",
      example: "/v1/processors/revenue-per-minute",
    }),
  })
  .openapi("ProcessorReset");

export const ProcessorDeadLetterSchema = z
  .object({
    id: z.string().openapi({ description: "processor:<name>:<input topic>:<partition>:<sequence>" }),
    topic: z.string().openapi({ description: "The input topic" }),
    partition: z.number().int(),
    sequence: z.number().int(),
    eventId: z.string().nullable(),
    reason: z.string().openapi({
      description:
        "late_event (behind the watermark past its windows' grace), no_key (no usable key) or future_time (timed more than watermark.maxAhead after its commit)",
    }),
    error: z.string(),
    deadLetteredAt: z.string(),
    input: z.unknown().openapi({
      description:
        "What the processor had of the event: late_event: key, event time, the windows it missed; no_key, future_time: its position",
    }),
  })
  .openapi("ProcessorDeadLetter");

export const ProcessorDeadLetterPageSchema = z
  .object({ deadLetters: z.array(ProcessorDeadLetterSchema), total: z.number().int(), next: z.string().nullable() })
  .openapi("ProcessorDeadLetterPage");
