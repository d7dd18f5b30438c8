import { BUCKET_LABELS, emptyHistogram, type Histogram, merge, mergeInto, observe, unobserve } from "./histogram";

/**
 * The consumer SDK's metrics: the `EVENTLINE_METRICS` switch, Analytics Engine writes that never
 * throw, and ConsumerMetrics (latency histograms and counts written to D1 with the SDK's batches).
 */

// -------------------------------------------------------------------------------------------------
// The switch and Analytics Engine

/** False when `EVENTLINE_METRICS` is "off" in `env` (any object with the platform's vars). */
export function metricsEnabled(env: unknown): boolean {
  return typeof env !== "object" || env === null || Reflect.get(env, "EVENTLINE_METRICS") !== "off";
}

export interface DataPoint {
  indexes?: string[];
  blobs?: string[];
  doubles?: number[];
}

/**
 * One Analytics Engine data point to the `METRICS` binding (dataset `eventline_metrics`), if the
 * env has it and metrics are on. Fire and forget: it never awaits and never throws.
 */
export function writeDataPoint(env: unknown, point: DataPoint): void {
  if (!metricsEnabled(env) || typeof env !== "object" || env === null) return;
  const dataset = Reflect.get(env, "METRICS") as { writeDataPoint?: (p: DataPoint) => void } | undefined;
  if (typeof dataset?.writeDataPoint !== "function") return;
  try {
    dataset.writeDataPoint(point);
  } catch {
    // metrics never fail the work they measure
  }
}

// -------------------------------------------------------------------------------------------------
// Consumer SDK latency histograms

export type ConsumerOutcome = "handled" | "duplicate" | "retried" | "dead_lettered" | "deferred" | "skipped" | "parked";

/**
 * What a consumer has observed and not yet written to D1 (handler and end-to-end latencies, and
 * deliveries that ended as duplicates), per isolate. Observations are aggregated and ride along in
 * the D1 batches the SDK writes anyway (`take()` → one multi-row upsert into `latency_histograms`,
 * plus one `subscription_stats` upsert for duplicates); what no batch carried goes with the last
 * batch of the `queue()` invocation. A batch that fails gives its share back (`restore()`).
 * Constructed with `enabled` false (EVENTLINE_METRICS off) it records and writes nothing, so
 * callers need not ask the switch before each call.
 */
export class ConsumerMetrics {
  private handler = emptyHistogram();
  private endToEnd = emptyHistogram();
  private duplicates = 0;
  /** For the Analytics Engine data point of each `queue()` batch. */
  private analytics = { outcomes: new Map<ConsumerOutcome, number>(), handler: emptyHistogram(), endToEnd: emptyHistogram() };

  constructor(
    readonly subscription: string,
    readonly enabled = true,
  ) {}

  observeHandler(seconds: number): void {
    if (!this.enabled) return;
    observe(this.handler, seconds);
    observe(this.analytics.handler, seconds);
  }

  /** A delivery ended; duplicates are counted toward `subscription_stats.duplicates`. */
  settled(outcome: ConsumerOutcome): void {
    if (!this.enabled) return;
    this.analytics.outcomes.set(outcome, (this.analytics.outcomes.get(outcome) ?? 0) + 1);
    if (outcome === "duplicate") this.duplicates++;
  }

  /** A delivery of an already-settled event that is handled again (replays to webhooks): a duplicate for the counters. */
  redelivered(): void {
    if (this.enabled) this.duplicates++;
  }

  /**
   * Everything pending as D1 statements for a batch about to be written, plus `endToEnd` (seconds)
   * for the event(s) this batch settles: they count only if that batch commits, so they are not given back.
   */
  take(db: D1Database, endToEnd?: number | readonly number[]): { statements: D1PreparedStatement[]; restore: () => void } {
    if (!this.enabled) return { statements: [], restore: () => {} };
    const handler = this.handler;
    const e2e = this.endToEnd;
    const duplicates = this.duplicates;
    this.handler = emptyHistogram();
    this.endToEnd = emptyHistogram();
    this.duplicates = 0;
    const ownE2e = emptyHistogram();
    const own = endToEnd === undefined ? [] : typeof endToEnd === "number" ? [endToEnd] : endToEnd;
    for (const seconds of own) {
      observe(ownE2e, seconds);
      observe(this.analytics.endToEnd, seconds);
    }
    const statements = histogramStatements(db, this.subscription, [
      ["handler", handler],
      ["end_to_end", merge(e2e, ownE2e)],
    ]);
    if (duplicates > 0) {
      statements.push(
        db
          .prepare(
            `INSERT INTO subscription_stats (subscription, duplicates, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (subscription) DO UPDATE SET duplicates = duplicates + excluded.duplicates, updated_at = excluded.updated_at`,
          )
          .bind(this.subscription, duplicates, Date.now()),
      );
    }
    return {
      statements,
      restore: () => {
        mergeInto(this.handler, handler);
        mergeInto(this.endToEnd, e2e);
        this.duplicates += duplicates;
        for (const seconds of own) unobserve(this.analytics.endToEnd, seconds); // its batch did not commit
      },
    };
  }

  /**
   * End of a `queue()` batch: its Analytics Engine data point (messages, outcomes, latency sums
   * and counts since the last report). Never throws.
   */
  report(env: unknown, messages: number): void {
    if (!this.enabled) return;
    const { outcomes, handler, endToEnd } = this.analytics;
    this.analytics = { outcomes: new Map(), handler: emptyHistogram(), endToEnd: emptyHistogram() };
    const n = (o: ConsumerOutcome) => outcomes.get(o) ?? 0;
    writeDataPoint(env, {
      indexes: [this.subscription],
      blobs: ["consume", this.subscription],
      doubles: [
        messages,
        n("handled"),
        n("retried"),
        n("dead_lettered"),
        n("duplicate"),
        n("deferred"),
        n("skipped"),
        handler.sum,
        handler.count,
        endToEnd.sum,
        endToEnd.count,
        // Appended, so the earlier doubles keep their positions for existing queries.
        n("parked"),
      ],
    });
  }
}

/**
 * One upsert for the non-empty buckets of every histogram (`value = value + excluded.value`): the
 * subscription is bound once and the metric and `le` values are the fixed constants above, so a
 * statement binds at most 1 + 2 × 18 parameters, within D1's 100.
 */
export function histogramStatements(db: D1Database, subscription: string, histograms: [string, Histogram][]): D1PreparedStatement[] {
  const rows: string[] = [];
  const values: number[] = [];
  for (const [metric, h] of histograms) {
    if (h.count === 0) continue;
    if (!/^[a-z_]+$/.test(metric)) throw new Error(`invalid histogram metric ${metric}`);
    const row = (le: string, value: number) => {
      values.push(value);
      rows.push(`(?1, '${metric}', '${le}', ?${values.length + 1})`);
    };
    h.buckets.forEach((n, i) => {
      if (n > 0) row(BUCKET_LABELS[i] as string, n);
    });
    row("sum", h.sum);
    row("count", h.count);
  }
  if (rows.length === 0) return [];
  return [
    db
      .prepare(
        `INSERT INTO latency_histograms (subscription, metric, le, value) VALUES ${rows.join(", ")}
         ON CONFLICT (subscription, metric, le) DO UPDATE SET value = value + excluded.value`,
      )
      .bind(subscription, ...values),
  ];
}
