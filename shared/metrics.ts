/**
 * Metrics primitives shared by the platform Worker, the PartitionLog and the consumer SDK:
 * fixed-bucket latency histograms (seconds), quantile estimates, a Prometheus text exposition
 * renderer (format 0.0.4), a small in-isolate counter registry, the `EVENTLINE_METRICS` switch and
 * Analytics Engine writes that never throw. Pure apart from the D1 statements `ConsumerMetrics`
 * builds.
 */

/** Upper bounds of the latency buckets, in seconds; a last `+Inf` bucket follows them. */
export const LATENCY_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** `le` of each bucket as text (the `latency_histograms.le` values and the Prometheus labels). */
export const BUCKET_LABELS: readonly string[] = [...LATENCY_BUCKETS.map(String), "+Inf"];

/**
 * A histogram over LATENCY_BUCKETS. `buckets[i]` counts the observations in bucket i alone (not
 * cumulative): those ≤ LATENCY_BUCKETS[i] and > the bound before it; the last entry is `+Inf`.
 */
export interface Histogram {
  buckets: number[];
  sum: number;
  count: number;
}

export interface LatencySummary {
  count: number;
  /** Seconds. */
  sum: number;
  /** Estimates in seconds (linear interpolation within the bucket); null when nothing was observed. */
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export function emptyHistogram(): Histogram {
  return { buckets: new Array<number>(BUCKET_LABELS.length).fill(0), sum: 0, count: 0 };
}

/** Index of the bucket an observation of `seconds` falls in. */
export function bucketIndex(seconds: number): number {
  for (let i = 0; i < LATENCY_BUCKETS.length; i++) if (seconds <= (LATENCY_BUCKETS[i] as number)) return i;
  return LATENCY_BUCKETS.length;
}

/** Adds one observation (negative or non-finite values count as 0 and +Inf respectively). */
export function observe(h: Histogram, seconds: number): void {
  const value = Number.isNaN(seconds) ? 0 : Math.max(0, seconds);
  const i = bucketIndex(value);
  h.buckets[i] = (h.buckets[i] ?? 0) + 1;
  if (Number.isFinite(value)) h.sum += value;
  h.count++;
}

/** Takes back one observation made with `observe(h, seconds)`. */
export function unobserve(h: Histogram, seconds: number): void {
  const value = Number.isNaN(seconds) ? 0 : Math.max(0, seconds);
  const i = bucketIndex(value);
  h.buckets[i] = Math.max(0, (h.buckets[i] ?? 0) - 1);
  if (Number.isFinite(value)) h.sum -= value;
  h.count = Math.max(0, h.count - 1);
}

/** `into` += `from`, in place; returns `into`. */
export function mergeInto(into: Histogram, from: Histogram): Histogram {
  for (let i = 0; i < into.buckets.length; i++) into.buckets[i] = (into.buckets[i] ?? 0) + (from.buckets[i] ?? 0);
  into.sum += from.sum;
  into.count += from.count;
  return into;
}

/** A new histogram holding both. */
export function merge(a: Histogram, b: Histogram): Histogram {
  return mergeInto(mergeInto(emptyHistogram(), a), b);
}

/**
 * The q-quantile (0 ≤ q ≤ 1), estimated like Prometheus' histogram_quantile: find the bucket that
 * holds the rank q·count and interpolate linearly between its bounds (the first bucket's lower
 * bound is 0). A rank in the `+Inf` bucket answers the highest finite bound. Null when empty.
 */
export function quantile(h: Histogram, q: number): number | null {
  if (h.count <= 0) return null;
  const rank = Math.min(1, Math.max(0, q)) * h.count;
  let below = 0;
  for (let i = 0; i < h.buckets.length; i++) {
    const n = h.buckets[i] ?? 0;
    if (n > 0 && below + n >= rank) {
      if (i >= LATENCY_BUCKETS.length) return LATENCY_BUCKETS[LATENCY_BUCKETS.length - 1] as number;
      const lower = i === 0 ? 0 : (LATENCY_BUCKETS[i - 1] as number);
      const upper = LATENCY_BUCKETS[i] as number;
      return lower + (upper - lower) * ((rank - below) / n);
    }
    below += n;
  }
  return LATENCY_BUCKETS[LATENCY_BUCKETS.length - 1] as number;
}

/** Quantile estimates rounded to 6 significant digits; count and sum exactly as kept (as Prometheus shows them). */
export function summarize(h: Histogram): LatencySummary {
  const q = (p: number) => {
    const v = quantile(h, p);
    return v === null ? null : Number(v.toPrecision(6));
  };
  return { count: h.count, sum: h.sum, p50: q(0.5), p95: q(0.95), p99: q(0.99) };
}

/**
 * A histogram from stored rows (`latency_histograms`: one row per `le` with that bucket's own
 * count, plus `sum` and `count`). Unknown `le` values are ignored; `count` is the stored one.
 */
export function histogramFromRows(rows: readonly { le: string; value: number }[]): Histogram {
  const h = emptyHistogram();
  for (const row of rows) {
    if (row.le === "sum") h.sum = row.value;
    else if (row.le === "count") h.count = row.value;
    else {
      const i = BUCKET_LABELS.indexOf(row.le);
      if (i >= 0) h.buckets[i] = row.value;
    }
  }
  return h;
}

/** A histogram from its JSON form (as the PartitionLog persists it); empty when malformed. */
export function parseHistogram(text: string | null | undefined): Histogram {
  const h = emptyHistogram();
  if (text === null || text === undefined || text === "") return h;
  try {
    const raw = JSON.parse(text) as Partial<Histogram>;
    if (Array.isArray(raw.buckets) && raw.buckets.length === h.buckets.length && raw.buckets.every((n) => typeof n === "number")) {
      h.buckets = raw.buckets;
      h.sum = typeof raw.sum === "number" ? raw.sum : 0;
      h.count = typeof raw.count === "number" ? raw.count : h.buckets.reduce((a, b) => a + b, 0);
    }
  } catch {
    // a damaged record restarts the histogram rather than failing the partition
  }
  return h;
}

// -------------------------------------------------------------------------------------------------
// Prometheus text exposition format 0.0.4

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export type Labels = Record<string, string>;
export type MetricType = "counter" | "gauge" | "histogram";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A label value as the format wants it: `\` → `\\`, `"` → `\"`, newline → `\n`. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** HELP text: `\` → `\\`, newline → `\n`. */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}

function labelText(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  return `{${entries.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(",")}}`;
}

/** Identity of a series within a family: its labels, order-independent. */
function seriesKey(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

interface Family {
  name: string;
  help: string;
  type: MetricType;
  series: Map<string, { labels: Labels; value: number | Histogram }>;
}

/**
 * Builds an exposition: families in the order they are declared, each with `# HELP` and `# TYPE`
 * once, series in the order they are added. Histograms are written as cumulative `_bucket{le}`
 * series (`+Inf` equal to `_count`), `_sum` and `_count`. Adding the same series (name + labels)
 * twice, a counter not named `…_total`, or a bad name throws: the output never repeats a series.
 */
export class Exposition {
  private readonly families = new Map<string, Family>();

  private family(name: string, type: MetricType, help: string): Family {
    const existing = this.families.get(name);
    if (existing !== undefined) {
      if (existing.type !== type) throw new Error(`metric ${name} declared as ${existing.type} and ${type}`);
      return existing;
    }
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`);
    if (type === "counter" && !name.endsWith("_total")) throw new Error(`counter ${name} must end in _total`);
    const family: Family = { name, help, type, series: new Map() };
    this.families.set(name, family);
    return family;
  }

  private add(family: Family, labels: Labels, value: number | Histogram): this {
    for (const key of Object.keys(labels)) {
      if (!LABEL_NAME.test(key) || key.startsWith("__") || (family.type === "histogram" && key === "le")) {
        throw new Error(`invalid label name ${JSON.stringify(key)} on ${family.name}`);
      }
    }
    const key = seriesKey(labels);
    if (family.series.has(key)) throw new Error(`duplicate series ${family.name}${labelText(labels)}`);
    family.series.set(key, { labels, value });
    return this;
  }

  /** Declares a family (so it is listed even before, or without, samples of its own). */
  declare(name: string, type: MetricType, help: string): this {
    this.family(name, type, help);
    return this;
  }

  counter(name: string, help: string, labels: Labels, value: number): this {
    return this.add(this.family(name, "counter", help), labels, value);
  }

  gauge(name: string, help: string, labels: Labels, value: number): this {
    return this.add(this.family(name, "gauge", help), labels, value);
  }

  histogram(name: string, help: string, labels: Labels, value: Histogram): this {
    return this.add(this.family(name, "histogram", help), labels, value);
  }

  /** The text; families without series are left out. */
  render(): string {
    const lines: string[] = [];
    for (const family of this.families.values()) {
      if (family.series.size === 0) continue;
      lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
      for (const { labels, value } of family.series.values()) {
        if (typeof value === "number") {
          lines.push(`${family.name}${labelText(labels)} ${formatValue(value)}`);
          continue;
        }
        let cumulative = 0;
        for (let i = 0; i < BUCKET_LABELS.length; i++) {
          cumulative += value.buckets[i] ?? 0;
          // `+Inf` is the count by definition, whatever the stored buckets add up to.
          const n = i === BUCKET_LABELS.length - 1 ? value.count : cumulative;
          lines.push(`${family.name}_bucket${labelText({ ...labels, le: BUCKET_LABELS[i] as string })} ${formatValue(n)}`);
        }
        lines.push(`${family.name}_sum${labelText(labels)} ${formatValue(value.sum)}`);
        lines.push(`${family.name}_count${labelText(labels)} ${formatValue(value.count)}`);
      }
    }
    return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
  }
}

// -------------------------------------------------------------------------------------------------
// In-isolate counters

/**
 * Counters kept in one isolate's memory (the Worker's rejects). On Cloudflare every isolate has
 * its own, and isolates come and go, so these are partial counts since the isolate started;
 * Analytics Engine holds the total.
 */
export class CounterRegistry {
  private readonly values = new Map<string, { name: string; labels: Labels; value: number }>();

  inc(name: string, labels: Labels, by = 1): void {
    const key = `${name}${seriesKey(labels)}`;
    const entry = this.values.get(key);
    if (entry === undefined) this.values.set(key, { name, labels: { ...labels }, value: by });
    else entry.value += by;
  }

  get(name: string, labels: Labels): number {
    return this.values.get(`${name}${seriesKey(labels)}`)?.value ?? 0;
  }

  /** Every series of `name`, in the order first counted. */
  list(name: string): { labels: Labels; value: number }[] {
    return [...this.values.values()].filter((v) => v.name === name).map(({ labels, value }) => ({ labels: { ...labels }, value }));
  }

  reset(): void {
    this.values.clear();
  }
}

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
