/**
 * Fixed-bucket latency histograms (seconds) and their quantile estimates: what the consumer SDK
 * records per subscription and the platform renders (shared/metrics.ts).
 */

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
