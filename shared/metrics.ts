import { BUCKET_LABELS, type Histogram } from "../sdk/histogram";

/**
 * Metrics primitives of the platform Worker and the PartitionLog: a Prometheus text exposition
 * renderer (format 0.0.4) and a small in-isolate counter registry. The latency histograms, the
 * `EVENTLINE_METRICS` switch and Analytics Engine writes are the consumer SDK's (sdk/histogram.ts,
 * sdk/consumer-metrics.ts), re-exported here for the platform.
 */

export * from "../sdk/consumer-metrics";
export * from "../sdk/histogram";

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
