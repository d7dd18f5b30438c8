import { z } from "zod";
import { emptyHistogram, type Histogram, summarize } from "../../shared/metrics";

/**
 * The recent window (docs/observability.md "Recent window", ADR 0044): the figures that health,
 * the dashboard's table and its charts share — error rate, rates and latency quantiles over the
 * last `windowSeconds` — computed as now − a snapshot of the same counters a window ago, like
 * Prometheus' `rate(x[5m])` and `histogram_quantile` over `increase(…[5m])`.
 *
 * Snapshots are kept in D1 (`metrics_snapshots`), one per entity (a subscription, or a partition)
 * and slot (a time bucket of windowSeconds ÷ 30, at least 1 s), written by the collection of
 * GET /v1/metrics and /v1/health and pruned beyond window + history: a bounded ring. This module is
 * pure (the D1 side is metrics-ring.ts): the same functions judge now and every point of the
 * history, so the badge, the table and the charts cannot disagree.
 */

export interface SubscriptionCounters {
  topic: string;
  handled: number;
  retried: number;
  deadLettered: number;
  duplicates: number;
  handlerLatency: Histogram;
  endToEndLatency: Histogram;
}

export interface PartitionCounters {
  appended: number;
  appendLatency: Histogram;
}

export interface Snapshot<T> {
  at: number;
  counters: T;
}

/** What the ring holds about one entity, as far as choosing its baseline needs. */
export interface EntityRing<T> {
  /** Its newest snapshot taken at or before the window's start (now − window). */
  before: Snapshot<T> | undefined;
  /** Its first (oldest) snapshot; undefined: never snapshotted. */
  first: Snapshot<T> | undefined;
}

/** Where a window starts: a snapshot, or zero counters at `at` (`counters` null); null: no window yet. */
export type Baseline<T> = { at: number; counters: T | null } | null;

/**
 * The start of an entity's window ending at `now`:
 * - its newest snapshot at or before now − window;
 * - else, when the ring is empty (`ringFirstAt` null), none: the window is empty (nothing is known
 *   about the past, and lifetime counters are not a recent figure);
 * - else, when the entity appeared after the ring began (created since, or never collected), zero
 *   counters at max(ring start, now − window): it had nothing before it was first seen;
 * - else its first snapshot: the ring is younger than a window, so the window is shorter.
 */
export function pickBaseline<T>(ring: EntityRing<T>, ringFirstAt: number | null, now: number, windowMs: number): Baseline<T> {
  if (ring.before !== undefined) return ring.before;
  if (ringFirstAt === null) return null;
  const cutoff = now - windowMs;
  if (ring.first === undefined || ring.first.at > ringFirstAt) return { at: Math.min(now, Math.max(ringFirstAt, cutoff)), counters: null };
  return ring.first;
}

/** Counters only grow; a smaller value means they were reset, and the whole value is new (as Prometheus' increase()). */
const increase = (now: number, before: number | undefined) => (before === undefined || now < before ? now : now - before);

function histogramIncrease(now: Histogram, before: Histogram | undefined): Histogram {
  if (before === undefined || now.count < before.count) return { buckets: [...now.buckets], sum: now.sum, count: now.count };
  const h = emptyHistogram();
  h.buckets = now.buckets.map((n, i) => Math.max(0, n - (before.buckets[i] ?? 0)));
  h.sum = Math.max(0, now.sum - before.sum);
  h.count = now.count - before.count;
  return h;
}

const perSecond = (n: number, seconds: number) => (seconds > 0 ? Number((n / seconds).toPrecision(6)) : 0);
const ratio = (part: number, whole: number) => (whole > 0 ? Number((part / whole).toPrecision(6)) : 0);

export interface RecentSubscription {
  /** How long the window actually spans (shorter while the ring is younger than a window; 0: no window yet). */
  seconds: number;
  delivered: number;
  handled: number;
  retried: number;
  deadLettered: number;
  /** (retried + deadLettered) ÷ delivered within the window; 0 without deliveries. */
  errorRate: number;
  handledPerSecond: number;
  handlerLatency: Histogram;
  endToEndLatency: Histogram;
}

export interface RecentPartition {
  seconds: number;
  appended: number;
  appendedPerSecond: number;
  appendLatency: Histogram;
}

/** What a window of `seconds` (0: none) of a baseline with no counters adds up to. */
function spanOf(baseline: Baseline<unknown>, now: number): number {
  return baseline === null ? 0 : Math.max(0, (now - baseline.at) / 1000);
}

export function recentSubscription(now: Snapshot<SubscriptionCounters>, baseline: Baseline<SubscriptionCounters>): RecentSubscription {
  const c = now.counters;
  if (baseline === null) {
    return {
      seconds: 0,
      delivered: 0,
      handled: 0,
      retried: 0,
      deadLettered: 0,
      errorRate: 0,
      handledPerSecond: 0,
      handlerLatency: emptyHistogram(),
      endToEndLatency: emptyHistogram(),
    };
  }
  const b = baseline.counters ?? undefined;
  const seconds = spanOf(baseline, now.at);
  const handled = increase(c.handled, b?.handled);
  const retried = increase(c.retried, b?.retried);
  const deadLettered = increase(c.deadLettered, b?.deadLettered);
  const delivered = handled + retried + deadLettered + increase(c.duplicates, b?.duplicates);
  return {
    seconds,
    delivered,
    handled,
    retried,
    deadLettered,
    errorRate: ratio(retried + deadLettered, delivered),
    handledPerSecond: perSecond(handled, seconds),
    handlerLatency: histogramIncrease(c.handlerLatency, b?.handlerLatency),
    endToEndLatency: histogramIncrease(c.endToEndLatency, b?.endToEndLatency),
  };
}

export function recentPartition(now: Snapshot<PartitionCounters>, baseline: Baseline<PartitionCounters>): RecentPartition {
  if (baseline === null) return { seconds: 0, appended: 0, appendedPerSecond: 0, appendLatency: emptyHistogram() };
  const b = baseline.counters ?? undefined;
  const seconds = spanOf(baseline, now.at);
  const appended = increase(now.counters.appended, b?.appended);
  return {
    seconds,
    appended,
    appendedPerSecond: perSecond(appended, seconds),
    appendLatency: histogramIncrease(now.counters.appendLatency, b?.appendLatency),
  };
}

/** The figures of the dashboard's charts: totals over what the caller sees. */
export interface RecentTotals {
  windowSeconds: number;
  appendedPerSecond: number;
  handledPerSecond: number;
  /** (Σ retried + Σ dead-lettered) ÷ Σ delivered over the subscriptions, within the window. */
  errorRate: number;
  /** The slowest subscription's end-to-end p50/p99 within the window, else the slowest partition's append; null without observations. */
  latency: { kind: "end-to-end" | "append"; p50: number; p99: number } | null;
}

function slowest(kind: "end-to-end" | "append", histograms: Histogram[]): RecentTotals["latency"] {
  const summaries = histograms.filter((h) => h.count > 0).map(summarize);
  if (summaries.length === 0) return null;
  return { kind, p50: Math.max(...summaries.map((s) => s.p50 ?? 0)), p99: Math.max(...summaries.map((s) => s.p99 ?? 0)) };
}

export function recentTotals(windowSeconds: number, subscriptions: RecentSubscription[], partitions: RecentPartition[]): RecentTotals {
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  return {
    windowSeconds,
    appendedPerSecond: Number(sum(partitions.map((p) => p.appendedPerSecond)).toPrecision(6)),
    handledPerSecond: Number(sum(subscriptions.map((s) => s.handledPerSecond)).toPrecision(6)),
    errorRate: ratio(sum(subscriptions.map((s) => s.retried + s.deadLettered)), sum(subscriptions.map((s) => s.delivered))),
    latency:
      slowest(
        "end-to-end",
        subscriptions.map((s) => s.endToEndLatency),
      ) ??
      slowest(
        "append",
        partitions.map((p) => p.appendLatency),
      ),
  };
}

// -------------------------------------------------------------------------------------------------
// Snapshot bodies as stored (parsed back, not cast)

const histogramSchema = z.object({ buckets: z.array(z.number()), sum: z.number(), count: z.number() });
const subscriptionBody = z.object({
  topic: z.string(),
  handled: z.number(),
  retried: z.number(),
  deadLettered: z.number(),
  duplicates: z.number(),
  handlerLatency: histogramSchema,
  endToEndLatency: histogramSchema,
});
const partitionBody = z.object({ appended: z.number(), appendLatency: histogramSchema });

export type EntityKind = "subscription" | "partition";

/** A stored body, or null when damaged (the entity is then treated as not snapshotted there). */
export function parseBody(kind: "subscription", text: string): SubscriptionCounters | null;
export function parseBody(kind: "partition", text: string): PartitionCounters | null;
export function parseBody(kind: EntityKind, text: string): SubscriptionCounters | PartitionCounters | null {
  try {
    const parsed = (kind === "subscription" ? subscriptionBody : partitionBody).safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** The slot length: windowSeconds ÷ 30, at least a second. */
export const slotMs = (windowSeconds: number) => Math.max(1000, Math.floor((windowSeconds * 1000) / 30));
