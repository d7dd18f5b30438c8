import type { EventlineConfig } from "../../shared/config";
import type { Exposition } from "../../shared/metrics";
import { processorPlans } from "../../shared/processors";
import { canSee, may } from "./auth/access";
import type { Principal } from "./auth/identity";
import { partitionUnavailable } from "./ingest/append";
import { type ProcessorPartitionView, type ProcessorView, processorView } from "./processors";

/**
 * The stream processors' part of GET /v1/metrics and /v1/health (docs/observability.md
 * "Processors"): each processor's view (workers/platform/processors.ts) reduced to its figures, with
 * the watermark's lag behind the clock, and its Prometheus series.
 */

export interface ProcessorPartitionModel {
  /** The partition of the processor's internal topic (one instance each). */
  partition: number;
  /** The instance's watermark (RFC 3339; null before its first input). */
  watermark: string | null;
  /** now − watermark, seconds (null before the first input). */
  watermarkLagSeconds: number | null;
  /** Events of the internal partition not yet applied. */
  lag: number;
  openWindows: number;
  keys: number;
  lateEvents: number;
  results: number;
  pendingOutputs: number;
  outputPerSecond: number;
  /** Why the last hand-on of results failed (null once one succeeds). */
  lastOutputError: string | null;
  catchingUp: boolean;
  /** Input events the instance's backfill has still to read (ADR 0058; 0 when none is under way). */
  backfillRemaining: number;
}

export interface ProcessorModel {
  processor: string;
  kind: "aggregate" | "pattern";
  inputTopic: string;
  outputTopic: string;
  internalTopic: string;
  /** The lowest instance watermark (null while an instance has had no input). */
  lowWatermark: string | null;
  /** now − lowWatermark, seconds. */
  watermarkLagSeconds: number | null;
  /** Events not yet applied: `inputLag` plus the partitions' lag. */
  lag: number;
  /** Events of the input topic waiting to be re-partitioned. */
  inputLag: number;
  openWindows: number;
  lateEvents: number;
  results: number;
  /** Results appended per second over the last minute, summed over the instances. */
  outputPerSecond: number;
  pendingOutputs: number;
  partitions: ProcessorPartitionModel[];
}

const lagSeconds = (watermark: string | null, now: number) =>
  watermark === null ? null : Math.max(0, Math.round(now - Date.parse(watermark)) / 1000);

function partitionModel(p: ProcessorPartitionView, now: number): ProcessorPartitionModel {
  return {
    partition: p.partition,
    watermark: p.watermark,
    watermarkLagSeconds: lagSeconds(p.watermark, now),
    lag: p.lag,
    openWindows: p.openWindows,
    keys: p.keys,
    lateEvents: p.lateEvents,
    results: p.results,
    pendingOutputs: p.pendingOutputs,
    outputPerSecond: p.outputPerSecond,
    lastOutputError: p.lastOutputError,
    catchingUp: p.catchingUp,
    backfillRemaining: p.backfill === null ? 0 : Math.max(0, p.backfill.total - p.backfill.read),
  };
}

/** A processor's view as metrics and health report it, at `now`. */
export function processorModel(view: ProcessorView, now: number): ProcessorModel {
  return {
    processor: view.name,
    kind: view.kind,
    inputTopic: view.input.topic,
    outputTopic: view.output.topic,
    internalTopic: view.internalTopic,
    lowWatermark: view.lowWatermark,
    watermarkLagSeconds: lagSeconds(view.lowWatermark, now),
    lag: view.lag,
    inputLag: view.inputLag,
    openWindows: view.openWindows,
    lateEvents: view.lateEvents,
    results: view.results,
    outputPerSecond: view.outputPerSecond,
    pendingOutputs: view.pendingOutputs,
    partitions: view.partitions.map((p) => partitionModel(p, now)),
  };
}

/** The processors `principal` may see (those of input topics it may consume, as subscriptions), read from their instances and logs. */
export async function collectProcessors(env: Env, config: EventlineConfig, principal: Principal, now: number): Promise<ProcessorModel[]> {
  const visible = [...processorPlans(config).values()].filter((plan) => {
    const input = plan.config.input.topic;
    return canSee(principal, input, config) && may(config, principal, "consume", input);
  });
  return await Promise.all(
    visible.map(async (plan) => {
      try {
        return processorModel(await processorView(env, config, plan), now);
      } catch (err) {
        throw partitionUnavailable(err, `reading processor ${plan.config.name}`, 5);
      }
    }),
  );
}

/** The processors' Prometheus series: per instance with a `partition` label, the rest per processor. */
export function processorSeries(out: Exposition, processors: readonly ProcessorModel[]): void {
  for (const p of processors) {
    const labels = { processor: p.processor };
    out.gauge(
      "eventline_processor_input_lag_events",
      "Events of the processor's input topic waiting to be re-partitioned (the rest of its lag is per partition).",
      labels,
      p.inputLag,
    );
    if (p.lowWatermark !== null) {
      out.gauge(
        "eventline_processor_low_watermark_seconds",
        "The lowest instance watermark, Unix seconds: every result up to it is final.",
        labels,
        Date.parse(p.lowWatermark) / 1000,
      );
    }
    if (p.watermarkLagSeconds !== null) {
      out.gauge(
        "eventline_processor_low_watermark_lag_seconds",
        "now − the lowest instance watermark, seconds.",
        labels,
        p.watermarkLagSeconds,
      );
    }
    for (const i of p.partitions) {
      const at = { processor: p.processor, partition: String(i.partition) };
      out.gauge(
        "eventline_processor_lag_events",
        "Events of the processor's internal partition not yet applied by its instance.",
        at,
        i.lag,
      );
      if (i.watermark !== null) {
        out.gauge(
          "eventline_processor_watermark_seconds",
          "The instance's watermark (event time), Unix seconds.",
          at,
          Date.parse(i.watermark) / 1000,
        );
      }
      if (i.watermarkLagSeconds !== null) {
        out.gauge("eventline_processor_watermark_lag_seconds", "now − the instance's watermark, seconds.", at, i.watermarkLagSeconds);
      }
      out.gauge("eventline_processor_open_windows", "Open windows (aggregates) or pending first events (patterns).", at, i.openWindows);
      out.gauge("eventline_processor_keys", "Keys with state in the instance.", at, i.keys);
      out.counter(
        "eventline_processor_late_events_total",
        "Events later than the watermark + grace: counted and dead-lettered.",
        at,
        i.lateEvents,
      );
      out.counter(
        "eventline_processor_results_total",
        "Results emitted (finals, updates, pattern matches) since the state was built.",
        at,
        i.results,
      );
      out.gauge(
        "eventline_processor_output_per_second",
        "Results appended to the output topic per second over the last minute.",
        at,
        i.outputPerSecond,
      );
      out.gauge("eventline_processor_pending_outputs", "Results and late events committed but not yet handed on.", at, i.pendingOutputs);
      out.gauge(
        "eventline_processor_output_failing",
        "1 while the instance's last hand-on of its outputs failed.",
        at,
        i.lastOutputError === null ? 0 : 1,
      );
      out.gauge(
        "eventline_processor_catching_up",
        "1 while the instance reads its history (a new processor, a reset) or its partition back (a gap).",
        at,
        i.catchingUp ? 1 : 0,
      );
      out.gauge(
        "eventline_processor_backfill_remaining",
        "Input events the instance's backfill from the input topic has still to read (0 when none is under way).",
        at,
        i.backfillRemaining,
      );
    }
  }
}
