import type { Context } from "hono";
import type { PartitionMetrics } from "../../durable-objects/partition-log";
import { partitionName } from "../../sdk/partition-name";
import { type EventlineConfig, findTopic } from "../../shared/config";
import { EventlineError } from "../../shared/errors";
import { CounterRegistry, type Histogram, histogramFromRows, metricsEnabled, writeDataPoint } from "../../shared/metrics";
import { isGlobalAdmin } from "../../shared/security/grants";
import { lagEvents } from "../../shared/subscriptions";
import { canSee, may } from "./auth/access";
import type { Principal } from "./auth/identity";
import type { AppEnv } from "./context";
import { collectEncryptionStatus, type EncryptionStatus } from "./encryption-status";
import { partitionStub, partitionUnavailable } from "./ingest/append";
import { baselineStatements, type Collected, readBaselines, recentOf, snapshotStatements } from "./metrics-ring";
import type { RecentPartition, RecentSubscription, RecentTotals } from "./metrics-window";
import { collectProcessors, type ProcessorModel } from "./processor-metrics";
import { listSubscriptionViews } from "./subscription-registry";

/**
 * GET /v1/metrics and GET /v1/health: what the components keep about themselves, collected in one
 * pass — each partition's counters and append latency (PartitionLog.metrics), the subscriptions'
 * counters, DLQ depth, circuit and latency histograms (D1), the replay jobs' last views (D1), and
 * the Worker's in-isolate reject counters — then served as JSON or Prometheus text, or judged
 * against the subscriptions' health thresholds. docs/observability.md "Metrics and health" documents
 * every name.
 */

// -------------------------------------------------------------------------------------------------
// Worker-level counts

/**
 * Counters of this isolate (ingest rejects by topic and status). On Cloudflare each isolate counts
 * only what it served since it started, so these are partial; the Analytics Engine dataset holds
 * the total (one `reject` data point per rejected request).
 */
export const workerCounters = new CounterRegistry();
const REJECTS = "eventline_rejects_total";
const INGEST_PATH = /^\/v1\/topics\/([^/]+)\/events$/;

/** Counts an ingest request answered with an error (4xx/5xx), for a configured topic. */
export function recordIngestReject(c: Context<AppEnv>, status: number, code: string): void {
  if (c.req.method !== "POST" || !metricsEnabled(c.env)) return;
  const match = INGEST_PATH.exec(c.req.path);
  const config = c.get("config");
  if (match?.[1] === undefined || config === undefined) return;
  let topic: string;
  try {
    topic = decodeURIComponent(match[1]);
  } catch {
    return;
  }
  // Unknown topics are not counted: their names are the caller's, so they would be unbounded.
  if (findTopic(config, topic) === undefined) return;
  workerCounters.inc(REJECTS, { topic, status: String(status) });
  writeDataPoint(c.env, { indexes: [topic], blobs: ["reject", topic, String(status), code], doubles: [1] });
}

/** The Analytics Engine data point of an accepted ingest request (written after the events are committed; never blocks). */
export function recordIngestAccepted(
  env: Env,
  topic: string,
  acks: readonly { partition: number; duplicate: boolean }[],
  durationMs: number,
): void {
  if (!metricsEnabled(env)) return;
  let duplicates = 0;
  const partitions = new Set<number>();
  for (const ack of acks) {
    if (ack.duplicate) duplicates++;
    partitions.add(ack.partition);
  }
  writeDataPoint(env, {
    indexes: [topic],
    blobs: ["append", topic],
    doubles: [acks.length, acks.length - duplicates, duplicates, partitions.size, durationMs],
  });
}

// -------------------------------------------------------------------------------------------------
// The model

export type CircuitName = "closed" | "open" | "half-open";

/** A partition's metrics as the partition reports them (PartitionLog.metrics), with its number. */
export type PartitionModel = Omit<PartitionMetrics, "routed" | "committedAt" | "unacknowledged"> & {
  partition: number;
  /** Events ever appended: the head (sequences are contiguous from 1 and never reused). */
  appended: number;
  /** Over the recent window (metrics-window.ts). */
  recent: RecentPartition;
};

export interface TopicModel {
  topic: string;
  partitions: PartitionModel[];
  /** Rejected ingest requests by HTTP status (this isolate's counts). */
  rejects: Record<string, number>;
  /** Written only by the platform (the audit log): no producer can append to it. */
  internal: boolean;
}

export interface LagModel {
  partition: number;
  /** Events not yet handled (0 when caught up). */
  events: number;
  /** Age of the oldest event not yet handled, seconds; 0 when caught up, null when unknown. */
  seconds: number | null;
  /**
   * Of the events not yet handled, those the partition log already sent again after its redelivery
   * timeout (ADR 0030), and the most times one was sent: more than 0 means the subscription is
   * stalled there, not merely behind.
   */
  redelivered: number;
  maxSends: number;
}

export interface SubscriptionModel {
  subscription: string;
  topic: string;
  kind: "worker" | "webhook";
  delivered: number;
  handled: number;
  retried: number;
  deadLettered: number;
  dlqDepth: number;
  circuit: CircuitName;
  /** (retried + deadLettered) ÷ delivered over the lifetime counters. */
  errorRate: number;
  handlerLatency: Histogram;
  endToEndLatency: Histogram;
  lag: LagModel[];
  /** The same counters over the recent window: what health judges and the dashboard shows. */
  recent: RecentSubscription;
}

export interface ReplayModel {
  id: string;
  topic: string;
  subscription: string;
  state: string;
  sent: number;
  scanned: number;
  eventsPerSecond: number;
  progress: number | null;
}

export interface MetricsModel {
  generatedAt: string;
  topics: TopicModel[];
  subscriptions: SubscriptionModel[];
  replays: ReplayModel[];
  /** The stream processors of the input topics the caller may consume (processor-metrics.ts). */
  processors: ProcessorModel[];
  /** Totals over the recent window, as the dashboard's charts plot them (GET /v1/metrics/history). */
  recent: RecentTotals;
  /** Field encryption, for global admins only (as GET /v1/encryption): data keys per KEK version, the KEK rotation. */
  encryption?: EncryptionStatus;
}

interface StatsRow {
  subscription: string;
  handled: number;
  retried: number;
  dead_lettered: number;
  duplicates: number;
}

/** The replay view kept in D1 (`replay_jobs.view`), as far as metrics read it. */
type ReplayViewRow = Omit<ReplayModel, "progress"> & { total: number };

const circuitName = (state: string | undefined): CircuitName =>
  state === "open" ? "open" : state === "half_open" ? "half-open" : "closed";
const cpKey = (subscription: string, topic: string, partition: number) => JSON.stringify([subscription, topic, partition]);

/**
 * Everything GET /v1/metrics reports that `principal` may see (topics it holds any grant on, the
 * subscriptions of topics it may consume and the replays of topics it may replay, as their own
 * routes decide): one D1 batch, the subscription list, then one RPC per partition.
 * For `health`, only what evaluateHealth reads (lag, counters, circuits): DLQ depths, latency
 * histograms and replays are not read (they stay 0 and empty), sparing D1 a count of every dead letter.
 */
export async function collectMetrics(
  env: Env,
  config: EventlineConfig,
  principal: Principal,
  purpose: "metrics" | "health" = "metrics",
): Promise<MetricsModel> {
  const db = env.DB;
  // Alongside the rest (16 KeyVault RPCs); left out while EVENTLINE_KEKS is unusable (its 503 is GET /v1/encryption's).
  const encryption =
    purpose === "metrics" && isGlobalAdmin(principal.grants)
      ? collectEncryptionStatus(env).catch((err: unknown) => {
          if (err instanceof EventlineError && err.code === "unavailable") return undefined;
          throw err;
        })
      : Promise.resolve(undefined);
  // Awaited at the end; until then a rejection is not unhandled.
  void encryption.catch(() => undefined);
  const now = Date.now();
  const cutoff = now - config.metrics.windowSeconds * 1000;
  const processors = collectProcessors(env, config, principal, now);
  void processors.catch(() => undefined);
  const [views, results] = await Promise.all([
    listSubscriptionViews(db),
    db.batch([
      db.prepare("SELECT subscription, topic, partition, sequence FROM checkpoints"),
      db.prepare("SELECT subscription, handled, retried, dead_lettered, duplicates FROM subscription_stats"),
      db.prepare("SELECT subscription, state FROM circuit_state"),
      db.prepare("SELECT subscription, metric, le, value FROM latency_histograms"),
      ...baselineStatements(db, cutoff),
      ...(purpose === "health"
        ? []
        : [
            db.prepare("SELECT subscription, COUNT(*) AS n FROM dead_letters GROUP BY subscription"),
            db.prepare("SELECT view FROM replay_jobs ORDER BY created_at DESC LIMIT 100"),
          ]),
    ]),
  ]);
  // In statement order; a statement not run (health) gives no rows.
  const [
    checkpointRows = [],
    statsRows = [],
    circuitRows = [],
    latencyRows = [],
    baseRows = [],
    firstRows = [],
    dlqRows = [],
    replayRows = [],
  ] = results.map((r) => r.results);
  const baselines = readBaselines(baseRows, firstRows, cutoff);
  const rows = <T>(list: unknown[]) => list as T[];
  const checkpoints = new Map(
    rows<{ subscription: string; topic: string; partition: number; sequence: number }>(checkpointRows).map((r) => [
      cpKey(r.subscription, r.topic, r.partition),
      r.sequence,
    ]),
  );
  const stats = new Map(rows<StatsRow>(statsRows).map((r) => [r.subscription, r]));
  const circuits = new Map(rows<{ subscription: string; state: string }>(circuitRows).map((r) => [r.subscription, r.state]));
  const dlq = new Map(rows<{ subscription: string; n: number }>(dlqRows).map((r) => [r.subscription, r.n]));
  const histogramRows = new Map<string, { le: string; value: number }[]>();
  for (const r of rows<{ subscription: string; metric: string; le: string; value: number }>(latencyRows)) {
    const key = JSON.stringify([r.subscription, r.metric]);
    histogramRows.set(key, [...(histogramRows.get(key) ?? []), r]);
  }
  const histogram = (subscription: string, metric: string) =>
    histogramFromRows(histogramRows.get(JSON.stringify([subscription, metric])) ?? []);

  const topics = config.topics.filter((t) => canSee(principal, t.name, config));
  const visibleTopics = new Set(topics.map((t) => t.name));
  const subscriptions = views.filter((s) => visibleTopics.has(s.topic) && may(config, principal, "consume", s.topic));

  // Per partition: counters, and the commit time of each subscription's checkpoint + 1.
  const partitionMetrics = await Promise.all(
    topics.map((topic) =>
      Promise.all(
        Array.from({ length: topic.partitions }, async (_, partition) => {
          const asked = [
            ...new Set(
              subscriptions.filter((s) => s.topic === topic.name).map((s) => (checkpoints.get(cpKey(s.name, s.topic, partition)) ?? 0) + 1),
            ),
          ];
          const given = Object.fromEntries(
            subscriptions
              .filter((s) => s.topic === topic.name)
              .map((s) => [s.name, checkpoints.get(cpKey(s.name, s.topic, partition)) ?? 0]),
          );
          try {
            return await partitionStub(env, topic.name, partition).metrics(asked, given);
          } catch (err) {
            throw partitionUnavailable(err, `reading the metrics of ${topic.name}/${partition}`, 5);
          }
        }),
      ),
    ),
  );
  const byTopic = new Map(topics.map((t, i) => [t.name, partitionMetrics[i] ?? []]));

  const topicModels: (Omit<TopicModel, "partitions"> & { partitions: Omit<PartitionModel, "recent">[] })[] = topics.map((topic) => ({
    topic: topic.name,
    partitions: (byTopic.get(topic.name) ?? []).map((m, partition) => ({
      partition,
      head: m.head,
      appended: m.head,
      bytes: m.bytes,
      duplicates: m.duplicates,
      appendLatency: m.appendLatency,
      archived: m.archived,
    })),
    rejects: Object.fromEntries(
      workerCounters
        .list(REJECTS)
        .filter((c) => c.labels.topic === topic.name)
        .sort((a, b) => Number(a.labels.status) - Number(b.labels.status))
        .map((c) => [c.labels.status as string, c.value]),
    ),
    internal: topic.internal === true,
  }));

  const subscriptionModels: Omit<SubscriptionModel, "recent">[] = subscriptions.map((sub) => {
    const s = stats.get(sub.name);
    const handled = s?.handled ?? 0;
    const retried = s?.retried ?? 0;
    const deadLettered = s?.dead_lettered ?? 0;
    const delivered = handled + retried + deadLettered + (s?.duplicates ?? 0);
    const lag = (byTopic.get(sub.topic) ?? []).map((m, partition): LagModel => {
      const checkpoint = checkpoints.get(cpKey(sub.name, sub.topic, partition)) ?? 0;
      const pending = m.unacknowledged[sub.name];
      const events = lagEvents(checkpoint, m.head, m.routed[sub.name], pending?.events);
      // The oldest event routed to it and not acknowledged; else (state from before ADR 0030) the one after the checkpoint.
      const at = pending?.oldestAt ?? m.committedAt[checkpoint + 1];
      const seconds = events === 0 ? 0 : at === undefined || at === null ? null : Math.max(0, Math.round(now - at) / 1000);
      const redelivered = events === 0 ? 0 : (pending?.resent ?? 0);
      return { partition, events, seconds, redelivered, maxSends: redelivered === 0 ? 0 : (pending?.maxSends ?? 0) };
    });
    return {
      subscription: sub.name,
      topic: sub.topic,
      kind: sub.kind,
      delivered,
      handled,
      retried,
      deadLettered,
      dlqDepth: dlq.get(sub.name) ?? 0,
      circuit: circuitName(circuits.get(sub.name)),
      errorRate: delivered === 0 ? 0 : (retried + deadLettered) / delivered,
      handlerLatency: histogram(sub.name, "handler"),
      endToEndLatency: histogram(sub.name, "end_to_end"),
      lag,
    };
  });

  const replays: ReplayModel[] = [];
  for (const row of rows<{ view: string }>(replayRows)) {
    let view: ReplayViewRow;
    try {
      view = JSON.parse(row.view) as ReplayViewRow;
    } catch {
      continue;
    }
    if (!may(config, principal, "replay", view.topic)) continue;
    replays.push({
      id: view.id,
      topic: view.topic,
      subscription: view.subscription,
      state: view.state,
      sent: view.sent,
      scanned: view.scanned,
      eventsPerSecond: view.eventsPerSecond,
      progress: view.total > 0 ? Math.min(1, view.scanned / view.total) : view.state === "done" ? 1 : null,
    });
  }

  // The recent window: now against the ring's baselines; this slot's snapshots join the ring.
  const collected: Collected = {
    subscriptions: subscriptionModels.map((s) => ({
      name: s.subscription,
      counters: {
        topic: s.topic,
        handled: s.handled,
        retried: s.retried,
        deadLettered: s.deadLettered,
        duplicates: stats.get(s.subscription)?.duplicates ?? 0,
        handlerLatency: s.handlerLatency,
        endToEndLatency: s.endToEndLatency,
      },
    })),
    partitions: topicModels.flatMap((t) =>
      t.partitions.map((p) => ({
        topic: t.topic,
        partition: p.partition,
        counters: { appended: p.appended, appendLatency: p.appendLatency },
      })),
    ),
  };
  const recent = recentOf(collected, baselines, now, config.metrics.windowSeconds);
  const writes = snapshotStatements(db, config, collected, baselines, now);
  if (writes.length > 0) await db.batch(writes);

  const keys = await encryption;
  const processorModels = await processors;
  return {
    generatedAt: new Date(now).toISOString(),
    topics: topicModels.map((t) => ({
      ...t,
      partitions: t.partitions.map((p) => ({ ...p, recent: recentFor(recent.partitions, partitionName(t.topic, p.partition)) })),
    })),
    subscriptions: subscriptionModels.map((s) => ({ ...s, recent: recentFor(recent.subscriptions, s.subscription) })),
    replays,
    processors: processorModels,
    recent: recent.totals,
    ...(keys === undefined ? {} : { encryption: keys }),
  };
}

/** An entity's window as recentOf computed it (every collected entity has one). */
function recentFor<T>(map: Map<string, T>, name: string): T {
  const found = map.get(name);
  if (found === undefined) throw new Error(`no recent window for ${name}`);
  return found;
}
