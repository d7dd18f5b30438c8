import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { PartitionLog } from "../../durable-objects/partition-log";
import shipped from "../../eventline.config";
import { defineConsumer } from "../../sdk/consumer";
import type { DataPoint } from "../../shared/metrics";
import { delivery, FakeMessage } from "../consumer/helpers";
import { type Ack, ADMIN_KEY, event, partitionKeyFor, request, STRUCTURED } from "../helpers";
import { testApp } from "../security/helpers";

/**
 * EVENTLINE_METRICS=off: the Worker, the partitions and the consumer SDK record nothing, and
 * handle just the same. Split from metrics.test.ts (GET /v1/metrics and /v1/health against a
 * scripted run).
 */

afterEach(() => vi.restoreAllMocks());

interface Latency {
  count: number;
  sum: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}
interface PartitionJson {
  partition: number;
  head: number;
  appended: number;
  bytes: number;
  duplicates: number;
  appendLatency: Latency;
  archived: { first: number; last: number; segments: number; bytes: number } | null;
}
interface SubscriptionJson {
  subscription: string;
  topic: string;
  kind: "worker" | "webhook";
  delivered: number;
  handled: number;
  retried: number;
  deadLettered: number;
  dlqDepth: number;
  circuit: "closed" | "open" | "half-open";
  errorRate: number;
  handlerLatency: Latency;
  endToEndLatency: Latency;
  lag: { partition: number; events: number; seconds: number | null }[];
}
interface ReplayJson {
  id: string;
  topic: string;
  subscription: string;
  state: string;
  sent: number;
  scanned: number;
  eventsPerSecond: number;
  progress: number | null;
}
interface MetricsJson {
  generatedAt: string;
  topics: { topic: string; partitions: PartitionJson[]; rejects: Record<string, number> }[];
  subscriptions: SubscriptionJson[];
  replays: ReplayJson[];
  encryption?: { rotation: Record<string, unknown> } & Record<string, unknown>;
}

async function metrics(): Promise<MetricsJson> {
  const res = await request("/v1/metrics");
  const text = await res.text();
  expect(res.status, text).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  return JSON.parse(text) as MetricsJson;
}
const topicOf = (m: MetricsJson, name: string) => {
  const t = m.topics.find((x) => x.topic === name);
  if (t === undefined) throw new Error(`no topic ${name} in the metrics`);
  return t;
};
const _subOf = (m: MetricsJson, name: string) => {
  const s = m.subscriptions.find((x) => x.subscription === name);
  if (s === undefined) throw new Error(`no subscription ${name} in the metrics`);
  return s;
};
const _sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const _utf8 = new TextEncoder();

/** Stored bodies of a partition, exactly as the log holds them. */
const _storedBodies = async (topic: string, partition: number) =>
  (await env.PARTITION_LOG.getByName(`${topic}/${partition}`).read(1, 1000)).events;

const KEYS = [0, 1, 2, 3].map((p) => partitionKeyFor(p, 4, "metrics"));
const _mk = (p: number, i: number, over: Record<string, unknown> = {}) =>
  event({ id: `m-${p}-${i}`, type: "metrics.test", partitionkey: KEYS[p], data: { p, i, note: "héllo wörld 😀" }, ...over });
const _POISON = "m-0-0";
const _FLAKY = "m-1-0";

/** What the script did, per partition of `events`: successful append calls and duplicates. */
const truth = { calls: [0, 0, 0, 0], duplicates: [0, 0, 0, 0] };
function _account(acks: Ack[]): Ack[] {
  for (const p of new Set(acks.map((a) => a.partition))) truth.calls[p] = (truth.calls[p] ?? 0) + 1;
  for (const a of acks) if (a.duplicate) truth.duplicates[a.partition] = (truth.duplicates[a.partition] ?? 0) + 1;
  return acks;
}

describe("EVENTLINE_METRICS=off", () => {
  const recorder = () => {
    const points: DataPoint[] = [];
    return { points, dataset: { writeDataPoint: (p: DataPoint) => points.push(p) } as unknown as AnalyticsEngineDataset };
  };
  const post = (app: ReturnType<typeof testApp>, body: unknown, overrides: Partial<Env>, contentType = STRUCTURED) =>
    app.call(
      "/v1/topics/customers/events",
      { method: "POST", headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": contentType }, body: JSON.stringify(body) },
      overrides,
    );
  const customer = (id: string) => event({ id, type: "customer.noted", partitionkey: "metrics-off", data: { tier: "gold" } });

  it("the Worker and the partition record nothing new: no bytes, duplicates, latency, rejects or Analytics Engine points", async () => {
    const app = testApp(shipped);
    const on = recorder();
    // Metrics on: the accepted request and the reject each write an Analytics Engine point.
    expect((await post(app, customer("off-0"), { METRICS: on.dataset })).status).toBe(202);
    expect((await post(app, {}, { METRICS: on.dataset }, "application/xml")).status).toBe(415);
    expect(on.points.map((p) => p.blobs?.[0])).toEqual(["append", "reject"]);
    expect(on.points[0]).toEqual({ indexes: ["customers"], blobs: ["append", "customers"], doubles: [1, 1, 0, 1, expect.any(Number)] });
    expect(on.points[1]).toEqual({ indexes: ["customers"], blobs: ["reject", "customers", "415", "unsupported_media_type"], doubles: [1] });
    const before = topicOf(await metrics(), "customers");
    const [partition] = before.partitions.filter((p) => p.head > 0);
    if (partition === undefined) throw new Error("the event went nowhere");
    expect(partition.bytes).toBeGreaterThan(0);
    expect(before.rejects).toMatchObject({ 415: expect.any(Number) });

    const stub = env.PARTITION_LOG.getByName(`customers/${partition.partition}`);
    await runInDurableObject(stub, (instance: PartitionLog) => {
      instance.testing.metricsOn = false;
    });
    try {
      const off = recorder();
      const overrides = { EVENTLINE_METRICS: "off", METRICS: off.dataset } as unknown as Partial<Env>;
      expect((await post(app, customer("off-1"), overrides)).status).toBe(202);
      expect((await post(app, customer("off-0"), overrides)).status).toBe(202); // a duplicate
      expect((await post(app, {}, overrides, "application/xml")).status).toBe(415);
      expect((await post(app, { specversion: "1.0" }, overrides)).status).toBe(400);
      expect(off.points).toEqual([]);
      const after = topicOf(await metrics(), "customers");
      const same = after.partitions[partition.partition];
      // The log itself moved (appended is its head); nothing else did.
      expect(same).toEqual({ ...partition, head: partition.head + 1, appended: partition.appended + 1 });
      expect(after.rejects).toEqual(before.rejects);
    } finally {
      await runInDurableObject(stub, (instance: PartitionLog) => {
        instance.testing.metricsOn = true;
      });
    }
  });

  it("the consumer SDK writes no latency histograms, duplicate counts or data points; with metrics on it does", async () => {
    const consumer = defineConsumer<Env>({ subscription: "metrics-sdk", db: (e) => e.DB, maxRetries: 3, handle: async () => [] });
    const batchOf = (messages: FakeMessage[]) =>
      ({ queue: "q", messages, ackAll() {}, retryAll() {}, metadata: {} }) as unknown as MessageBatch<unknown>;
    const at = (sequence: number) =>
      new FakeMessage(delivery({ subscription: "metrics-sdk", topic: "metrics-sdk", partition: 0, sequence, prev: sequence - 1 }));
    const histograms = async () =>
      (
        await env.DB.prepare(
          "SELECT metric, le, value FROM latency_histograms WHERE subscription = 'metrics-sdk' ORDER BY metric, le",
        ).all<{
          metric: string;
          le: string;
          value: number;
        }>()
      ).results;
    const stats = () => env.DB.prepare("SELECT handled, duplicates FROM subscription_stats WHERE subscription = 'metrics-sdk'").first();

    const off = recorder();
    const offEnv = { ...env, EVENTLINE_METRICS: "off", METRICS: off.dataset } as unknown as Env;
    const first = [at(1), at(2), at(3)];
    await consumer.queue(batchOf([...first, first[0] as FakeMessage]), offEnv);
    expect(first.every((m) => m.acked)).toBe(true);
    expect(await histograms()).toEqual([]);
    expect(await stats()).toEqual({ handled: 3, duplicates: 0 });
    expect(off.points).toEqual([]);

    const on = recorder();
    const onEnv = { ...env, METRICS: on.dataset } as unknown as Env;
    const second = [at(4), at(5), at(6)];
    await consumer.queue(batchOf([...second, first[1] as FakeMessage]), onEnv);
    const rows = await histograms();
    const value = (metric: string, le: string) => rows.find((r) => r.metric === metric && r.le === le)?.value;
    expect(value("handler", "count")).toBe(3);
    expect(value("end_to_end", "count")).toBe(3);
    expect(await stats()).toEqual({ handled: 6, duplicates: 1 });
    expect(on.points).toEqual([
      {
        indexes: ["metrics-sdk"],
        blobs: ["consume", "metrics-sdk"],
        doubles: [4, 3, 0, 0, 1, 0, 0, expect.any(Number), 3, expect.any(Number), 3, 0],
      },
    ]);
  });
});
