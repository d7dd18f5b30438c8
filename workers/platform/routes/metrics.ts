import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { problemResponse } from "../../../shared/api-schemas";
import { type EventlineConfig, findTopic } from "../../../shared/config";
import { PROMETHEUS_CONTENT_TYPE } from "../../../shared/metrics";
import { access, canSee, may } from "../auth/access";
import type { AppEnv } from "../context";
import { evaluateHealth } from "../health";
import { metricsJson, metricsPrometheus } from "../metrics-exposition";
import { collectMetrics } from "../metrics-model";
import { readHistory } from "../metrics-ring";
import { EncryptionStatusSchema } from "./encryption";

const LatencySchema = z
  .object({
    count: z.number().int(),
    sum: z.number().openapi({ description: "Seconds" }),
    p50: z.number().nullable().openapi({ description: "Seconds, estimated within the bucket; null when count is 0" }),
    p95: z.number().nullable(),
    p99: z.number().nullable(),
  })
  .openapi("LatencySummary");

const windowSpan = z.number().openapi({
  description:
    "Seconds the window actually spans: metrics.windowSeconds once the ring is that old, less before; 0 before the first snapshot",
});

const RecentTotalsSchema = z
  .object({
    windowSeconds: z.number().int().openapi({ description: "The recent window's length (config metrics.windowSeconds)" }),
    appendedPerSecond: z.number().openapi({ description: "Events appended per second over the window, summed over the partitions" }),
    handledPerSecond: z.number().openapi({ description: "Events handled per second over the window, summed over the subscriptions" }),
    errorRate: z
      .number()
      .openapi({ description: "(Σ retried + Σ deadLettered) ÷ Σ delivered over the window, 0..1; 0 without deliveries" }),
    latency: z
      .object({ kind: z.enum(["end-to-end", "append"]), p50: z.number(), p99: z.number() })
      .nullable()
      .openapi({
        description:
          "Seconds, over the window: the slowest subscription's end-to-end p50/p99, else the slowest partition's append; interpolated within the bucket",
      }),
  })
  .openapi("RecentTotals");

const processorFigures = {
  watermarkLagSeconds: z.number().nullable().openapi({ description: "now − the watermark, seconds; null before the first input" }),
  lag: z.number().int(),
  openWindows: z.number().int().openapi({ description: "Open windows (aggregates) or pending first events (patterns)" }),
  lateEvents: z.number().int().openapi({ description: "Events later than the watermark + grace: counted and dead-lettered" }),
  results: z.number().int().openapi({ description: "Results emitted (finals, updates, pattern matches) since the state was built" }),
  outputPerSecond: z.number().openapi({ description: "Results appended to the output topic per second over the last minute" }),
  pendingOutputs: z.number().int().openapi({ description: "Results and late events committed but not yet handed on" }),
};

const ProcessorMetricsSchema = z
  .object({
    processor: z.string(),
    kind: z.enum(["aggregate", "pattern"]),
    inputTopic: z.string(),
    outputTopic: z.string(),
    internalTopic: z.string().openapi({ description: "The internal topic it re-partitions through by its key" }),
    lowWatermark: z.string().nullable().openapi({
      description: "RFC 3339: the lowest instance watermark, every result up to it is final; null while an instance has had no input",
    }),
    ...processorFigures,
    lag: z.number().int().openapi({ description: "Events not yet applied: inputLag + the partitions' lag" }),
    inputLag: z.number().int().openapi({ description: "Events of the input topic waiting to be re-partitioned" }),
    partitions: z
      .array(
        z.object({
          partition: z.number().int().openapi({ description: "Partition of the internal topic: one instance each" }),
          watermark: z.string().nullable().openapi({ description: "RFC 3339; null before the instance's first input" }),
          ...processorFigures,
          lag: z.number().int().openapi({ description: "Events of the internal partition not yet applied" }),
          keys: z.number().int(),
          lastOutputError: z.string().nullable().openapi({ description: "Why the last hand-on of outputs failed; null once one succeeds" }),
          catchingUp: z.boolean().openapi({ description: "Reading its history (a new processor, a reset) or its partition back (a gap)" }),
          backfillRemaining: z.number().int().openapi({
            description: "Input events its backfill from the input topic has still to read (ADR 0058); 0 when none is under way",
          }),
        }),
      )
      .openapi({ description: "Per instance" }),
  })
  .openapi("ProcessorMetrics");

const MetricsSchema = z
  .object({
    generatedAt: z.string(),
    topics: z.array(
      z.object({
        topic: z.string(),
        partitions: z.array(
          z.object({
            partition: z.number().int(),
            head: z.number().int(),
            appended: z.number().int().openapi({ description: "Events ever appended (the head)" }),
            bytes: z.number().int().openapi({ description: "UTF-8 bytes of the appended events, as stored" }),
            duplicates: z.number().int().openapi({ description: "Events re-sent with the same content (not stored)" }),
            appendLatency: LatencySchema,
            recent: z
              .object({ seconds: windowSpan, appended: z.number().int(), appendedPerSecond: z.number(), appendLatency: LatencySchema })
              .openapi({ description: "The same counters over the recent window" }),
            archived: z
              .object({ first: z.number().int(), last: z.number().int(), segments: z.number().int(), bytes: z.number().int() })
              .nullable(),
          }),
        ),
        rejects: z
          .record(z.string(), z.number().int())
          .openapi({ description: "Ingest requests answered with an error, by HTTP status (this isolate's counts)" }),
        internal: z.boolean().openapi({ description: "Written only by the platform (the audit log): nothing produces to it" }),
      }),
    ),
    subscriptions: z.array(
      z.object({
        subscription: z.string(),
        topic: z.string(),
        kind: z.enum(["worker", "webhook"]),
        delivered: z.number().int().openapi({ description: "handled + retried + deadLettered + duplicates" }),
        handled: z.number().int(),
        retried: z.number().int(),
        deadLettered: z.number().int(),
        dlqDepth: z.number().int(),
        circuit: z.enum(["closed", "open", "half-open"]),
        errorRate: z.number().openapi({ description: "(retried + deadLettered) ÷ delivered over the lifetime counters, 0..1" }),
        handlerLatency: LatencySchema,
        endToEndLatency: LatencySchema,
        lag: z.array(
          z.object({
            partition: z.number().int(),
            events: z
              .number()
              .int()
              .openapi({ description: "Events routed to the subscription above its checkpoint, not yet acknowledged" }),
            seconds: z.number().nullable().openapi({ description: "Age of the oldest event not yet handled; 0 when caught up" }),
          }),
        ),
        recent: z
          .object({
            seconds: windowSpan,
            delivered: z.number().int(),
            handled: z.number().int(),
            retried: z.number().int(),
            deadLettered: z.number().int(),
            errorRate: z
              .number()
              .openapi({ description: "(retried + deadLettered) ÷ delivered within the window: what GET /v1/health judges" }),
            handledPerSecond: z.number(),
            handlerLatency: LatencySchema,
            endToEndLatency: LatencySchema,
          })
          .openapi({ description: "The same counters over the recent window (config metrics.windowSeconds)" }),
      }),
    ),
    replays: z.array(
      z.object({
        id: z.string(),
        topic: z.string(),
        subscription: z.string(),
        state: z.string(),
        sent: z.number().int(),
        scanned: z.number().int(),
        eventsPerSecond: z.number(),
        progress: z.number().nullable().openapi({ description: "Share of the range scanned, 0..1" }),
      }),
    ),
    processors: z
      .array(ProcessorMetricsSchema)
      .openapi({ description: 'The stream processors whose input topic the caller may consume (docs/observability.md "Processors")' }),
    recent: RecentTotalsSchema,
    encryption: EncryptionStatusSchema.optional().openapi({
      description: "Global admins only: data keys per KEK version and the KEK rotation, as GET /v1/encryption",
    }),
  })
  .openapi("Metrics");

const HealthStatusSchema = z.enum(["ok", "degraded", "failing"]);
const HealthSchema = z
  .object({
    status: HealthStatusSchema,
    checks: z
      .array(
        z.union([
          z.object({ subscription: z.string(), status: HealthStatusSchema, reasons: z.array(z.string()) }),
          z.object({ processor: z.string(), status: HealthStatusSchema, reasons: z.array(z.string()) }),
        ]),
      )
      .openapi({ description: "One per subscription, then one per processor" }),
    reasons: z.array(z.string()),
  })
  .openapi("Health");

const metricsRoute = createRoute({
  method: "get",
  path: "/v1/metrics",
  middleware: [access({ group: "read", action: "list" })] as const,
  tags: ["Operations"],
  summary: "Metrics of the topics, subscriptions, replays and processors the caller can see",
  description:
    "JSON by default. With `Accept: text/plain` (Prometheus, `text/plain; version=0.0.4`) the same values in the Prometheus text exposition format. Latencies are in seconds. Reject counts are this isolate's; Analytics Engine (dataset `eventline_metrics`) holds the totals.",
  responses: {
    200: {
      description: "The metrics",
      content: {
        "application/json": { schema: MetricsSchema },
        "text/plain": { schema: z.string().openapi({ description: "Prometheus text exposition format 0.0.4" }) },
      },
    },
    503: problemResponse("A partition did not answer; retry"),
  },
});

const healthRoute = createRoute({
  method: "get",
  path: "/v1/health",
  middleware: [access({ group: "read", action: "list" })] as const,
  tags: ["Operations"],
  summary: "Health of the subscriptions and processors the caller can see, against their thresholds",
  description:
    "Per subscription: `failing` when its circuit is open or a threshold (`health` in its config: maxLagEvents, maxLagSeconds, maxErrorRate) is exceeded more than 10×; `degraded` when its circuit is half-open or a threshold is exceeded; else `ok`. Per processor, with its config's `health` (maxLagEvents, maxWatermarkLagSeconds — judged on an instance with events waiting —, maxPendingOutputs) the same way, and `degraded` at least while its outputs fail. The status is the worst of them: 200 for ok and degraded, 503 for failing.",
  responses: {
    200: { description: "ok or degraded", content: { "application/json": { schema: HealthSchema } } },
    503: { description: "failing", content: { "application/json": { schema: HealthSchema } } },
  },
});

const HistorySchema = z
  .object({
    windowSeconds: z.number().int(),
    historySeconds: z.number().int().openapi({ description: "How far back the samples go (config metrics.historySeconds)" }),
    samples: z
      .array(RecentTotalsSchema.extend({ at: z.string().openapi({ description: "RFC 3339 time of the sample" }) }))
      .openapi({ description: "Oldest first: the recent window's totals as they stood at each snapshot of the ring" }),
  })
  .openapi("MetricsHistory");

const historyRoute = createRoute({
  method: "get",
  path: "/v1/metrics/history",
  middleware: [access({ group: "read", action: "list" })] as const,
  tags: ["Operations"],
  summary: "The recent window's totals over the last minutes (the dashboard's charts)",
  description:
    "Each sample is what `recent` of GET /v1/metrics said at that time, over the topics and subscriptions the caller can see, from the snapshots the server keeps (one per metrics.windowSeconds ÷ 30, taken when metrics or health are read).",
  responses: {
    200: { description: "The samples", content: { "application/json": { schema: HistorySchema } } },
  },
});

/** Picks Prometheus text or JSON from Accept (q-values honoured; JSON on a tie or without Accept). */
export function wantsPrometheus(accept: string | undefined): boolean {
  if (accept === undefined || accept.trim() === "") return false;
  let text = -1;
  let json = -1;
  for (const part of accept.split(",")) {
    const [range = "", ...params] = part.split(";").map((p) => p.trim().toLowerCase());
    const qParam = params.find((p) => p.startsWith("q="));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    if (!Number.isFinite(q)) continue;
    if (range === "text/plain" || range === "text/*") text = Math.max(text, q);
    if (range === "application/json" || range === "application/*") json = Math.max(json, q);
    if (range === "*/*") {
      text = Math.max(text, q);
      json = Math.max(json, q);
    }
  }
  return text > 0 && text > json;
}

export function metricsRoutes(config: EventlineConfig) {
  return new OpenAPIHono<AppEnv>()
    .openapi(metricsRoute, async (c) => {
      const model = await collectMetrics(c.env, config, c.get("principal"));
      if (wantsPrometheus(c.req.header("accept"))) {
        // `as never`: a second content type, which the typed-response helper cannot express.
        return c.body(metricsPrometheus(model), 200, { "content-type": PROMETHEUS_CONTENT_TYPE }) as never;
      }
      return c.json(metricsJson(model), 200);
    })
    .openapi(historyRoute, async (c) => {
      const principal = c.get("principal");
      const visible = (kind: "subscription" | "partition", _name: string, topic: string) =>
        findTopic(config, topic) !== undefined &&
        canSee(principal, topic, config) &&
        (kind === "partition" || may(config, principal, "consume", topic));
      const samples = await readHistory(c.env.DB, config, visible, Date.now());
      return c.json({ windowSeconds: config.metrics.windowSeconds, historySeconds: config.metrics.historySeconds, samples }, 200);
    })
    .openapi(healthRoute, async (c) => {
      const report = evaluateHealth(await collectMetrics(c.env, config, c.get("principal"), "health"), config);
      return report.status === "failing" ? c.json(report, 503) : c.json(report, 200);
    });
}
