import { DEFAULT_HEALTH, type EventlineConfig, type HealthThresholds } from "../../shared/config";
import type { MetricsModel } from "./metrics-model";

/**
 * GET /v1/health: the metrics model (workers/platform/metrics-model.ts, collected with "health") judged
 * against each subscription's health thresholds.
 */

// -------------------------------------------------------------------------------------------------
// Health

export type HealthStatus = "ok" | "degraded" | "failing";

export interface HealthReport {
  status: HealthStatus;
  checks: { subscription: string; status: HealthStatus; reasons: string[] }[];
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

/**
 * Per subscription: failing when its circuit is open or a threshold is exceeded more than 10×;
 * degraded when its circuit is half-open or a threshold is exceeded; else ok. The whole is the
 * worst of its subscriptions (ok when there are none). Reads only circuits, lag and the error rate
 * over the recent window (metrics-window.ts, the figure the dashboard shows): all that
 * `collectMetrics(…, "health")` collects.
 */
export function evaluateHealth(model: MetricsModel, config: EventlineConfig): HealthReport {
  const window = config.metrics.windowSeconds;
  const checks = model.subscriptions.map((s) => {
    const t = thresholdsOf(config, s.subscription);
    let status: HealthStatus = "ok";
    const reasons: string[] = [];
    const flag = (level: HealthStatus, reason: string) => {
      status = worse(status, level);
      reasons.push(`subscription ${s.subscription} ${reason}`);
    };
    if (s.circuit === "open") flag("failing", "circuit is open");
    else if (s.circuit === "half-open") flag("degraded", "circuit is half-open");
    const over = (value: number, max: number, text: string) => {
      if (!(value > max)) return;
      const tenfold = value > 10 * max;
      flag(tenfold ? "failing" : "degraded", tenfold ? `${text} (over 10× the threshold)` : text);
    };
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
    return { subscription: s.subscription, status: status as HealthStatus, reasons };
  });
  return {
    status: checks.reduce<HealthStatus>((a, c) => worse(a, c.status), "ok"),
    checks,
    reasons: checks.flatMap((c) => c.reasons),
  };
}
