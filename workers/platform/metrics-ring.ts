import { parsePartitionName, partitionName } from "../../sdk/partition-name";
import type { EventlineConfig } from "../../shared/config";
import {
  type EntityKind,
  type EntityRing,
  type PartitionCounters,
  parseBody,
  pickBaseline,
  type RecentPartition,
  type RecentSubscription,
  type RecentTotals,
  recentPartition,
  recentSubscription,
  recentTotals,
  type Snapshot,
  type SubscriptionCounters,
  slotMs,
} from "./metrics-window";

/**
 * The D1 side of the recent window (metrics-window.ts): the bounded ring of counter snapshots in
 * `metrics_snapshots` — the baselines a collection needs, the snapshots it adds (one per entity
 * and slot, INSERT OR IGNORE, so concurrent collections agree) and the history the charts read.
 */

export interface Baselines {
  ringFirstAt: number | null;
  subscriptions: Map<string, EntityRing<SubscriptionCounters> & { newestSlot: number }>;
  partitions: Map<string, EntityRing<PartitionCounters> & { newestSlot: number }>;
}

interface BaseRow {
  kind: string;
  name: string;
  newest: number;
  first_slot: number;
  slot: number;
  at: number;
  body: string;
}

/**
 * Per entity, its newest snapshot at or before `cutoff` (else its first), in one statement; and
 * the ring's start. Both go in the collection's D1 batch.
 */
export function baselineStatements(db: D1Database, cutoff: number): D1PreparedStatement[] {
  return [
    db
      .prepare(
        `WITH e AS (SELECT kind, name, COALESCE(MAX(CASE WHEN at <= ?1 THEN slot END), MIN(slot)) AS base, MIN(slot) AS first_slot, MAX(slot) AS newest
           FROM metrics_snapshots GROUP BY kind, name)
         SELECT e.kind, e.name, e.newest, e.first_slot, m.slot, m.at, m.body
         FROM e JOIN metrics_snapshots m ON m.kind = e.kind AND m.name = e.name AND m.slot = e.base`,
      )
      .bind(cutoff),
    db.prepare(`SELECT MIN(at) AS at FROM metrics_snapshots WHERE slot = (SELECT MIN(slot) FROM metrics_snapshots)`),
  ];
}

export function readBaselines(baseRows: unknown[], firstRows: unknown[], cutoff: number): Baselines {
  const out: Baselines = {
    ringFirstAt: (firstRows[0] as { at: number | null } | undefined)?.at ?? null,
    subscriptions: new Map(),
    partitions: new Map(),
  };
  for (const row of baseRows as BaseRow[]) {
    const entry = <T>(counters: T | null) => {
      const snapshot: Snapshot<T> | undefined = counters === null ? undefined : { at: row.at, counters };
      return {
        newestSlot: row.newest,
        before: row.at <= cutoff ? snapshot : undefined,
        // The first is only consulted when there is no `before`, and then the row is the first.
        first: row.slot === row.first_slot ? snapshot : undefined,
      };
    };
    if (row.kind === "subscription") out.subscriptions.set(row.name, entry(parseBody("subscription", row.body)));
    else if (row.kind === "partition") out.partitions.set(row.name, entry(parseBody("partition", row.body)));
  }
  return out;
}

export interface Collected {
  subscriptions: { name: string; counters: SubscriptionCounters }[];
  partitions: { topic: string; partition: number; counters: PartitionCounters }[];
}

export interface Recent {
  subscriptions: Map<string, RecentSubscription>;
  partitions: Map<string, RecentPartition>;
  totals: RecentTotals;
}

/** The window ending `now` of everything collected, against the ring's baselines. */
export function recentOf(collected: Collected, baselines: Baselines, now: number, windowSeconds: number): Recent {
  const windowMs = windowSeconds * 1000;
  const none = { before: undefined, first: undefined };
  const subscriptions = new Map(
    collected.subscriptions.map((s) => {
      const ring = baselines.subscriptions.get(s.name) ?? none;
      return [s.name, recentSubscription({ at: now, counters: s.counters }, pickBaseline(ring, baselines.ringFirstAt, now, windowMs))];
    }),
  );
  const partitions = new Map(
    collected.partitions.map((p) => {
      const name = partitionName(p.topic, p.partition);
      const ring = baselines.partitions.get(name) ?? none;
      return [name, recentPartition({ at: now, counters: p.counters }, pickBaseline(ring, baselines.ringFirstAt, now, windowMs))];
    }),
  );
  return { subscriptions, partitions, totals: recentTotals(windowSeconds, [...subscriptions.values()], [...partitions.values()]) };
}

/** Slots the ring keeps: window + history, and two spare. */
const ringSlots = (config: EventlineConfig) =>
  Math.ceil(((config.metrics.windowSeconds + config.metrics.historySeconds) * 1000) / slotMs(config.metrics.windowSeconds)) + 2;

/**
 * This slot's snapshots of what was collected (entities already snapshotted in it are left out),
 * and the prune of slots older than window + history.
 */
export function snapshotStatements(
  db: D1Database,
  config: EventlineConfig,
  collected: Collected,
  baselines: Baselines,
  now: number,
): D1PreparedStatement[] {
  const slotLength = slotMs(config.metrics.windowSeconds);
  // The slot's start in ms: comparable whatever slot length wrote a row.
  const slot = Math.floor(now / slotLength) * slotLength;
  const insert = (kind: EntityKind, name: string, body: unknown) =>
    db
      .prepare(`INSERT OR IGNORE INTO metrics_snapshots (slot, kind, name, at, body) VALUES (?, ?, ?, ?, ?)`)
      .bind(slot, kind, name, now, JSON.stringify(body));
  const statements: D1PreparedStatement[] = [];
  for (const s of collected.subscriptions) {
    if ((baselines.subscriptions.get(s.name)?.newestSlot ?? -1) < slot) statements.push(insert("subscription", s.name, s.counters));
  }
  for (const p of collected.partitions) {
    const name = partitionName(p.topic, p.partition);
    if ((baselines.partitions.get(name)?.newestSlot ?? -1) < slot) statements.push(insert("partition", name, p.counters));
  }
  if (statements.length === 0) return [];
  statements.push(db.prepare(`DELETE FROM metrics_snapshots WHERE slot < ?`).bind(slot - ringSlots(config) * slotLength));
  return statements;
}

// -------------------------------------------------------------------------------------------------
// History

export interface HistorySample extends RecentTotals {
  at: string;
}

interface RingRow {
  slot: number;
  kind: string;
  name: string;
  at: number;
  body: string;
}

type Series<T> = Map<string, (Snapshot<T> & { slot: number })[]>;

/** An entity's snapshot at (or last before) `slot` and the baseline of its window. */
function windowAt<T>(snaps: (Snapshot<T> & { slot: number })[], slot: number, ringFirstAt: number | null, windowMs: number) {
  const end = snaps.findLast((s) => s.slot <= slot);
  if (end === undefined) return undefined;
  const ring = { before: snaps.findLast((s) => s.at <= end.at - windowMs), first: snaps[0] };
  return { end, baseline: pickBaseline(ring, ringFirstAt, end.at, windowMs) };
}

/**
 * The windowed totals at every slot of the last `historySeconds` that holds a snapshot, over the
 * entities `visible` admits: each entity's own snapshot at (or last before) the slot, against its
 * baseline chosen as for now (pickBaseline). Oldest first.
 */
export async function readHistory(
  db: D1Database,
  config: EventlineConfig,
  visible: (kind: EntityKind, name: string, topic: string) => boolean,
  now: number,
): Promise<HistorySample[]> {
  const { windowSeconds, historySeconds } = config.metrics;
  const windowMs = windowSeconds * 1000;
  const slotLength = slotMs(windowSeconds);
  const from = (Math.floor(now / slotLength) - ringSlots(config)) * slotLength;
  const { results } = await db
    .prepare(`SELECT slot, kind, name, at, body FROM metrics_snapshots WHERE slot >= ? ORDER BY slot, at`)
    .bind(from)
    .all<RingRow>();
  const ringFirstAt = results[0]?.at ?? null;
  const subscriptions: Series<SubscriptionCounters> = new Map();
  const partitions: Series<PartitionCounters> = new Map();
  const add = <T>(series: Series<T>, row: RingRow, counters: T) =>
    series.set(row.name, [...(series.get(row.name) ?? []), { at: row.at, slot: row.slot, counters }]);
  for (const row of results) {
    if (row.kind === "subscription") {
      const counters = parseBody("subscription", row.body);
      if (counters !== null && visible("subscription", row.name, counters.topic)) add(subscriptions, row, counters);
    } else if (row.kind === "partition") {
      const counters = parseBody("partition", row.body);
      const topic = parsePartitionName(row.name)?.topic;
      if (counters !== null && topic !== undefined && visible("partition", row.name, topic)) add(partitions, row, counters);
    }
  }
  const slots = new Map<number, number>();
  for (const row of results) if (row.at >= now - historySeconds * 1000) slots.set(row.slot, Math.max(slots.get(row.slot) ?? 0, row.at));
  const samples: HistorySample[] = [];
  for (const [slot, at] of [...slots].sort((a, b) => a[0] - b[0])) {
    const subs: RecentSubscription[] = [];
    const parts: RecentPartition[] = [];
    for (const snaps of subscriptions.values()) {
      const w = windowAt(snaps, slot, ringFirstAt, windowMs);
      if (w !== undefined) subs.push(recentSubscription(w.end, w.baseline));
    }
    for (const snaps of partitions.values()) {
      const w = windowAt(snaps, slot, ringFirstAt, windowMs);
      if (w !== undefined) parts.push(recentPartition(w.end, w.baseline));
    }
    samples.push({ at: new Date(at).toISOString(), ...recentTotals(windowSeconds, subs, parts) });
  }
  return samples;
}
