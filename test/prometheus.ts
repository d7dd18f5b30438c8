import parsePrometheusTextFormat, { type ParsedFamily } from "parse-prometheus-text-format";
import { expect } from "vitest";

/**
 * Reads a Prometheus text exposition with the standard parser (parse-prometheus-text-format) and
 * checks the format's rules. The parser folds every labelled series of a histogram into one (it
 * only supports unlabelled histograms), so histograms are assembled from its parse of each
 * sample line instead.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedHistogram {
  labels: Record<string, string>;
  /** Cumulative counts by `le`, in bound order (`+Inf` last). */
  buckets: [string, number][];
  sum: number;
  count: number;
}

export interface Exposition {
  families: ParsedFamily[];
  samples: Sample[];
  /** Histogram series of each histogram family, keyed by family name. */
  histograms: Map<string, ParsedHistogram[]>;
  /** The value of the sample `name` with exactly `labels`; undefined when absent. */
  value(name: string, labels: Record<string, string>): number | undefined;
}

const seriesKey = (name: string, labels: Record<string, string>) =>
  JSON.stringify([name, Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))]);

/** A sample value as the format writes it (`+Inf`, `-Inf`, `NaN` or a Go float). */
const numberOf = (text: string) => (text === "+Inf" ? Number.POSITIVE_INFINITY : text === "-Inf" ? Number.NEGATIVE_INFINITY : Number(text));

const boundOrder = (le: string) => (le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le));

/** Parses `text`, asserting: HELP and TYPE on every family, no duplicate series, `_total` counters, cumulative buckets, `+Inf` = `_count`. */
export function parseExposition(text: string): Exposition {
  const families = parsePrometheusTextFormat(text);
  const names = families.map((f) => f.name);
  expect(new Set(names).size, "each family appears once").toBe(names.length);
  for (const family of families) {
    expect(family.help, `HELP of ${family.name}`).not.toBe("");
    expect(["COUNTER", "GAUGE", "HISTOGRAM"], `TYPE of ${family.name}`).toContain(family.type);
    expect(text.match(new RegExp(`^# HELP ${family.name} `, "gm")), `one HELP line for ${family.name}`).toHaveLength(1);
    expect(text.match(new RegExp(`^# TYPE ${family.name} `, "gm")), `one TYPE line for ${family.name}`).toHaveLength(1);
    if (family.type === "COUNTER") expect(family.name).toMatch(/_total$/);
  }

  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const [family] = parsePrometheusTextFormat(`${line}\n`);
    const sample = family?.metrics[0];
    if (family === undefined || sample?.value === undefined) throw new Error(`unparsable sample line: ${line}`);
    samples.push({ name: family.name, labels: sample.labels ?? {}, value: numberOf(sample.value) });
  }
  const keys = samples.map((s) => seriesKey(s.name, s.labels));
  const repeated = keys.filter((k, i) => keys.indexOf(k) !== i);
  expect(repeated, "duplicate series").toEqual([]);
  const byKey = new Map(samples.map((s) => [seriesKey(s.name, s.labels), s.value]));

  const histograms = new Map<string, ParsedHistogram[]>();
  for (const family of families.filter((f) => f.type === "HISTOGRAM")) {
    const series = new Map<string, ParsedHistogram>();
    for (const s of samples) {
      const suffix = s.name.slice(family.name.length);
      if (!s.name.startsWith(family.name) || !["_bucket", "_sum", "_count"].includes(suffix)) continue;
      const { le, ...labels } = s.labels;
      const key = seriesKey("", labels);
      const h = series.get(key) ?? { labels, buckets: [], sum: Number.NaN, count: Number.NaN };
      series.set(key, h);
      if (suffix === "_bucket") h.buckets.push([le ?? "", s.value]);
      else if (suffix === "_sum") h.sum = s.value;
      else h.count = s.value;
    }
    for (const h of series.values()) {
      h.buckets.sort(([a], [b]) => boundOrder(a) - boundOrder(b));
      const counts = h.buckets.map(([, n]) => n);
      expect(counts, `${family.name} buckets are cumulative`).toEqual([...counts].sort((a, b) => a - b));
      expect(h.buckets.at(-1)?.[0], `${family.name} ends with +Inf`).toBe("+Inf");
      expect(h.buckets.at(-1)?.[1], `${family.name} +Inf = _count`).toBe(h.count);
      expect(Number.isNaN(h.sum), `${family.name} has _sum`).toBe(false);
    }
    histograms.set(family.name, [...series.values()]);
  }
  return { families, samples, histograms, value: (name, labels) => byKey.get(seriesKey(name, labels)) };
}
