import { Exposition, summarize } from "../../shared/metrics";
import { encryptionGauges } from "./encryption-status";
import type { MetricsModel } from "./metrics-model";
import { processorSeries } from "./processor-metrics";

/**
 * The two renderings of GET /v1/metrics (workers/platform/metrics-model.ts collects the model): the JSON
 * document the dashboard reads, and the Prometheus text exposition with the same values.
 */

// -------------------------------------------------------------------------------------------------
// JSON

/**
 * The JSON document of GET /v1/metrics (the dashboard's contract): the model with its histograms
 * as summaries. Keys keep the model's order, which collectMetrics builds field by field.
 */
export function metricsJson(model: MetricsModel) {
  return {
    ...model,
    topics: model.topics.map((t) => ({
      ...t,
      partitions: t.partitions.map((p) => ({
        ...p,
        appendLatency: summarize(p.appendLatency),
        recent: { ...p.recent, appendLatency: summarize(p.recent.appendLatency) },
      })),
    })),
    subscriptions: model.subscriptions.map((s) => ({
      ...s,
      handlerLatency: summarize(s.handlerLatency),
      endToEndLatency: summarize(s.endToEndLatency),
      recent: {
        ...s.recent,
        handlerLatency: summarize(s.recent.handlerLatency),
        endToEndLatency: summarize(s.recent.endToEndLatency),
      },
    })),
  };
}

// -------------------------------------------------------------------------------------------------
// Prometheus

/** The Prometheus text exposition (format 0.0.4) of the same model: every value equals the JSON one. */
export function metricsPrometheus(model: MetricsModel): string {
  const out = new Exposition();
  out.gauge(
    "eventline_metrics_window_seconds",
    "Length of the recent window of the windowed figures (config metrics.windowSeconds).",
    {},
    model.recent.windowSeconds,
  );
  for (const t of model.topics) {
    for (const p of t.partitions) {
      const labels = { topic: t.topic, partition: String(p.partition) };
      out.counter("eventline_events_appended_total", "Events appended to the partition log (its head sequence).", labels, p.appended);
      out.counter("eventline_event_bytes_total", "UTF-8 bytes of the events appended, as stored.", labels, p.bytes);
      out.counter("eventline_duplicates_total", "Events sent again with the same content: acknowledged, not stored.", labels, p.duplicates);
      out.histogram(
        "eventline_append_duration_seconds",
        "Time inside the partition's append call, from parsing its input to the durable commit.",
        labels,
        p.appendLatency,
      );
      out.counter("eventline_archive_segments_total", "Segments sealed to R2.", labels, p.archived?.segments ?? 0);
      out.counter("eventline_archive_bytes_total", "Compressed bytes of the segments in R2.", labels, p.archived?.bytes ?? 0);
      out.gauge("eventline_archived_sequence", "Highest sequence archived to R2 (0: none).", labels, p.archived?.last ?? 0);
    }
  }
  for (const t of model.topics) {
    for (const [status, n] of Object.entries(t.rejects)) {
      out.counter(
        "eventline_rejects_total",
        "Ingest requests answered with an error, by topic and HTTP status (counted per isolate; Analytics Engine holds the total).",
        { topic: t.topic, status },
        n,
      );
    }
  }
  for (const s of model.subscriptions) {
    const labels = { subscription: s.subscription };
    out.counter(
      "eventline_subscription_delivered_total",
      "Deliveries that reached an outcome: handled + retried + dead-lettered + duplicates.",
      labels,
      s.delivered,
    );
    out.counter("eventline_subscription_handled_total", "Events handled (effects committed).", labels, s.handled);
    out.counter("eventline_subscription_retried_total", "Handler failures that were retried.", labels, s.retried);
    out.counter("eventline_subscription_dead_lettered_total", "Events dead-lettered.", labels, s.deadLettered);
    out.gauge("eventline_dlq_depth", "Dead letters waiting for inspection or redrive.", labels, s.dlqDepth);
    out.gauge("eventline_circuit_open", "1 while the subscription's circuit breaker is open.", labels, s.circuit === "open" ? 1 : 0);
    for (const state of ["closed", "open", "half-open"] as const) {
      out.gauge(
        "eventline_circuit_state",
        "The circuit breaker's state: 1 for the current one.",
        { subscription: s.subscription, state },
        s.circuit === state ? 1 : 0,
      );
    }
    out.gauge(
      "eventline_subscription_error_ratio",
      "(retried + dead-lettered) ÷ delivered, over the subscription's lifetime counters.",
      labels,
      s.errorRate,
    );
    out.gauge(
      "eventline_subscription_recent_error_ratio",
      "(retried + dead-lettered) ÷ delivered over the recent window (eventline_metrics_window_seconds): what GET /v1/health judges.",
      labels,
      s.recent.errorRate,
    );
    out.histogram(
      "eventline_handler_duration_seconds",
      "Time in the subscription's handler per call (successful or failed).",
      labels,
      s.handlerLatency,
    );
    out.histogram(
      "eventline_end_to_end_latency_seconds",
      "Commit in the partition log to handled, per live delivery.",
      labels,
      s.endToEndLatency,
    );
    for (const l of s.lag) {
      const lagLabels = { subscription: s.subscription, topic: s.topic, partition: String(l.partition) };
      out.gauge("eventline_subscription_lag_events", "Events of the partition not yet handled by the subscription.", lagLabels, l.events);
      if (l.seconds !== null) {
        out.gauge(
          "eventline_subscription_lag_seconds",
          "Age of the oldest event of the partition not yet handled (0 when caught up).",
          lagLabels,
          l.seconds,
        );
      }
    }
  }
  for (const r of model.replays) {
    const labels = { replay: r.id, subscription: r.subscription };
    out.counter("eventline_replay_events_sent_total", "Events a replay job sent to its subscription's queue.", labels, r.sent);
    out.counter("eventline_replay_events_scanned_total", "Events a replay job read from the log and the archive.", labels, r.scanned);
    out.gauge("eventline_replay_events_per_second", "A replay job's send rate since it started.", { replay: r.id }, r.eventsPerSecond);
    if (r.progress !== null)
      out.gauge("eventline_replay_progress_ratio", "Share of a replay's range scanned (0..1).", { replay: r.id }, r.progress);
  }
  processorSeries(out, model.processors);
  if (model.encryption !== undefined) encryptionGauges(out, model.encryption);
  return out.render();
}
