import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { PartitionLog } from "../../durable-objects/partition-log";
import shipped from "../../eventline.config";
import { defineConsumer } from "../../sdk/consumer";
import type { DataPoint } from "../../shared/metrics";
import { delivery, FakeMessage } from "../consumer/helpers";
import { ADMIN_KEY, event, STRUCTURED } from "../helpers";
import { testApp } from "../security/helpers";
import { metrics, topicOf } from "./metrics-helpers";

/**
 * EVENTLINE_METRICS=off: the Worker, the partitions and the consumer SDK record nothing, and
 * handle just the same. Split from metrics.test.ts (GET /v1/metrics and /v1/health against a
 * scripted run).
 */

afterEach(() => vi.restoreAllMocks());

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
      // (`recent` is the window of those same counters: it moves with the head alone.)
      expect({ ...same, recent: same?.recent.appendLatency }).toEqual({
        ...partition,
        head: partition.head + 1,
        appended: partition.appended + 1,
        recent: partition.recent.appendLatency,
      });
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
