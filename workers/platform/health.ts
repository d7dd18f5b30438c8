import { DEFAULT_HEALTH, type EventlineConfig, type HealthThresholds } from "../../shared/config";
import { DEFAULT_PROCESSOR_HEALTH } from "../../shared/processors-config";
import type { MetricsModel } from "./metrics-model";
import type { ProcessorModel } from "./processor-metrics";

/**
 * GET /v1/health: the metrics model (workers/platform/metrics-model.ts, collected with "health") judged
 * against each subscription's and each processor's health thresholds.
 */

// -------------------------------------------------------------------------------------------------
// Health

export type HealthStatus = "ok" | "degraded" | "failing";

export type HealthCheck = ({ subscription: string } | { processor: string }) & { status: HealthStatus; reasons: string[] };

export interface HealthReport {
  status: HealthStatus;
  /** The subscriptions' checks, then the processors'. */
  checks: HealthCheck[];
  reasons: string[];
}

const RANK: Record<HealthStatus, number> = { ok: 0, degraded: 1, failing: 2 };
const worse = (a: HealthStatus, b: HealthStatus): HealthStatus => (RANK[b] > RANK[a] ? b : a);
const integer = (n: number) => Math.round(n).toLocaleString("en-US");
const decimal = (n: number) => String(Number(n.toFixed(3)));

/** The thresholds of a subscription: its config `health` block, or the defaults (webhook subscriptions). */
export function thresholdsOf(config: EventlineConfig, subscription: string): HealthThresholds {
  return config.subscriptions.find((s) => s.name === subscription)?.health ?? { ...DEFAULT_HEALTH };
}

/** Judges values against thresholds: degraded above one, failing above 10× (a threshold of 0 makes any value failing). */
function judge(prefix: string) {
  let status: HealthStatus = "ok";
  const reasons: string[] = [];
  const flag = (level: HealthStatus, reason: string) => {
    status = worse(status, level);
    reasons.push(`${prefix} ${reason}`);
  };
  const over = (value: number, max: number, text: string) => {
    if (!(value > max)) return;
    const tenfold = value > 10 * max;
    flag(tenfold ? "failing" : "degraded", tenfold ? `${text} (over 10× the threshold)` : text);
  };
  return { flag, over, result: () => ({ status: status as HealthStatus, reasons }) };
}

/**
 * Per processor, with its config's `health` thresholds: lag (events not yet applied), pending
 * outputs, a watermark stuck far behind the clock on an instance that has events waiting (judged
 * only then: a quiet processor's watermark rightly stands still), each degraded above its threshold
 * and failing above 10×; outputs failing (an instance's last hand-on failed and results wait) is at
 * least degraded.
 */
export function processorCheck(p: ProcessorModel, config: EventlineConfig): HealthCheck {
  const t = config.processors.find((x) => x.name === p.processor)?.health ?? { ...DEFAULT_PROCESSOR_HEALTH };
  const { flag, over, result } = judge(`processor ${p.processor}`);
  const failing = p.partitions.filter((i) => i.lastOutputError !== null && i.pendingOutputs > 0);
  const first = failing[0];
  if (first !== undefined) {
    const pending = failing.reduce((n, i) => n + i.pendingOutputs, 0);
    flag(
      "degraded",
      `outputs failing on partition${failing.length === 1 ? "" : "s"} ${failing.map((i) => i.partition).join(", ")}: ` +
        `${integer(pending)} not handed on (${first.lastOutputError})`,
    );
  }
  over(p.lag, t.maxLagEvents, `lag ${integer(p.lag)} events > ${integer(t.maxLagEvents)}`);
  over(p.pendingOutputs, t.maxPendingOutputs, `pending outputs ${integer(p.pendingOutputs)} > ${integer(t.maxPendingOutputs)}`);
  // The instance with events waiting whose watermark is furthest behind (none without a watermark).
  let stuck: { partition: number; lag: number; behind: number } | undefined;
  for (const i of p.partitions) {
    const behind = i.watermarkLagSeconds;
    if (i.lag > 0 && behind !== null && behind > (stuck?.behind ?? -1)) stuck = { partition: i.partition, lag: i.lag, behind };
  }
  if (stuck !== undefined) {
    over(
      stuck.behind,
      t.maxWatermarkLagSeconds,
      `watermark ${decimal(stuck.behind)} s behind > ${decimal(t.maxWatermarkLagSeconds)} s on partition ${stuck.partition} with ${integer(stuck.lag)} events waiting`,
    );
  }
  return { processor: p.processor, ...result() };
}

/**
 * Per subscription: failing when its circuit is open or a threshold is exceeded more than 10×;
 * degraded when its circuit is half-open or a threshold is exceeded; else ok. Then each processor
 * (processorCheck). The whole is the worst of its checks (ok when there are none). Reads only
 * circuits, lag, the error rate over the recent window (metrics-window.ts, the figure the dashboard
 * shows) and the processors: all that `collectMetrics(…, "health")` collects.
 */
export function evaluateHealth(model: MetricsModel, config: EventlineConfig): HealthReport {
  const window = config.metrics.windowSeconds;
  const checks = model.subscriptions.map((s) => {
    const t = thresholdsOf(config, s.subscription);
    const { flag, over, result } = judge(`subscription ${s.subscription}`);
    if (s.circuit === "open") flag("failing", "circuit is open");
    else if (s.circuit === "half-open") flag("degraded", "circuit is half-open");
    const lagEvents = s.lag.reduce((n, l) => n + l.events, 0);
    const lagSeconds = s.lag.reduce((n, l) => Math.max(n, l.seconds ?? 0), 0);
    // Events the log had to send again and that are still not handled: not a backlog but a stall
    // (lost messages, or a consumer that does not settle them). Failing once sent a third time.
    const stalled = s.lag.reduce((n, l) => n + l.redelivered, 0);
    const maxSends = s.lag.reduce((n, l) => Math.max(n, l.maxSends), 0);
    if (stalled > 0) {
      flag(
        maxSends > 2 ? "failing" : "degraded",
        `stalled: ${integer(stalled)} events sent again by the partition log are still not handled (up to ${integer(maxSends)} sends)`,
      );
    }
    over(lagEvents, t.maxLagEvents, `lag ${integer(lagEvents)} events > ${integer(t.maxLagEvents)}`);
    over(lagSeconds, t.maxLagSeconds, `lag ${decimal(lagSeconds)} s > ${decimal(t.maxLagSeconds)} s`);
    // Over the recent window, not the lifetime counters: one dead letter must not degrade it forever.
    const errorRate = s.recent.errorRate;
    over(errorRate, t.maxErrorRate, `error rate ${decimal(errorRate)} > ${decimal(t.maxErrorRate)} over the last ${integer(window)} s`);
    return { subscription: s.subscription, ...result() };
  });
  const all: HealthCheck[] = [...checks, ...model.processors.map((p) => processorCheck(p, config))];
  return {
    status: all.reduce<HealthStatus>((a, c) => worse(a, c.status), "ok"),
    checks: all,
    reasons: all.flatMap((c) => c.reasons),
  };
}
