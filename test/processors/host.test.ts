import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { PartitionLog } from "../../durable-objects/partition-log";
import type { Processor } from "../../durable-objects/processor";
import type { Run } from "../../sdk/messages";
import { partitionName } from "../../sdk/partition-name";
import { partitionFor } from "../../shared/partitioner";
import type { Repartitioned } from "../../shared/processors";
import { expectAccepted, expectProblem, postBatch, waitFor } from "../helpers";

/**
 * The Processor host's fault cases, one by one (the property test mixes them at random):
 * a crash between the state commit and the output append, a redelivered run, a gap in the
 * internal topic read back from the log, a rebuild from the archive after a reset, and the
 * output topic written only by its processor.
 */

const NAME = "revenue-per-minute";
const minute = (n: number) => Date.UTC(2026, 2, 1, 9, n);

async function outputIds(prefix: string): Promise<string[]> {
  const ids: string[] = [];
  for (let p = 0; p < 2; p++) {
    const page = await env.PARTITION_LOG.getByName(partitionName("orders-revenue", p)).read(1, 1000);
    for (const text of page.events) {
      const e = JSON.parse(text) as { id: string; subject: string };
      if (e.subject.startsWith(prefix)) ids.push(e.id);
    }
  }
  return ids.sort();
}

function input(
  seq: number,
  key: string,
  time: number,
  amount: number,
): { sequence: number; committedAt: number; event: Record<string, unknown> } {
  const data: Repartitioned = {
    partition: 0,
    sequence: seq,
    committedAt: 1_000 + seq,
    id: `${key}-${seq}`,
    key,
    eventTime: time,
    value: { "/data/amount": amount },
  };
  return { sequence: seq, committedAt: data.committedAt, event: { id: `orders/0/${seq}`, data } };
}

const run = (instance: number, events: ReturnType<typeof input>[]): Run => ({
  v: 2,
  subscription: `processor:${NAME}`,
  topic: `processor.${NAME}`,
  partition: instance,
  prev: (events[0]?.sequence ?? 1) - 1,
  events,
});

async function tryFeed(stub: DurableObjectStub<Processor>, instance: number, runs: Run[]): Promise<string | null> {
  try {
    await stub.feed({ processor: NAME, instance, runs });
    return null;
  } catch (err) {
    return String(err);
  }
}

describe("a crash between the state commit and the output append", () => {
  it("loses no result and appends none twice", async () => {
    const stub = env.PROCESSOR.getByName(`${NAME}/1`);
    // Input partitions 1-3 never deliver here: they hold the watermark until idle (10 s of processing time).
    const events = [input(1, "crash-EUR", minute(0), 10), input(2, "crash-EUR", minute(0) + 5_000, 5), input(3, "crash-USD", minute(5), 1)];
    await runInDurableObject(stub, (p: Processor) => {
      p.testing.now = () => 1_000;
      p.testing.beforeFlush = async () => {
        throw new Error("crash before the output append");
      };
    });
    expect(await tryFeed(stub, 1, [run(1, events)])).toBeNull();
    // Processing time moves 20 s on: every input is idle, the watermark reaches 09:04:30, minute 0 closes.
    await runInDurableObject(stub, async (p: Processor) => {
      p.testing.now = () => 21_000;
      await p.alarm();
    });
    const before = await stub.status({ processor: NAME, instance: 1 });
    expect(before.pendingOutputs).toBe(1);
    expect(before.lastOutputError).toContain("crash before the output append");
    expect(await outputIds("crash-")).toEqual([]);
    // The process dies (memory gone); the next alarm hands the committed result on.
    await runInDurableObject(stub, async (p: Processor) => {
      p.testing.beforeFlush = async () => {};
      p.testing.forget();
      await p.alarm();
    });
    expect(await outputIds("crash-")).toEqual([`${NAME}:crash-EUR:${minute(0)}:final`]);
    // The relay sends the same run again (its acknowledgement was lost): nothing changes.
    expect(await tryFeed(stub, 1, [run(1, events)])).toBeNull();
    await runInDurableObject(stub, async (p: Processor) => {
      await p.alarm();
    });
    expect(await outputIds("crash-")).toEqual([`${NAME}:crash-EUR:${minute(0)}:final`]);
    const after = await stub.status({ processor: NAME, instance: 1 });
    expect(after).toMatchObject({ pendingOutputs: 0, lastOutputError: null, applied: 3 });
    expect(after.counters.finals).toBe(1);
    // Hand the instance back to its real partition (the later tests feed it through the log).
    await runInDurableObject(stub, (p: Processor) => {
      p.testing.now = () => Date.now();
    });
    await stub.reset({ processor: NAME, instance: 1 });
  });
});

describe("after a reset", () => {
  it("the instance reads its partition of the internal topic back from the log", async () => {
    // Events reach processor.revenue-per-minute through the real path; then a run is sent that skips ahead.
    const at = minute(30);
    const paid = (id: string, currency: string, amount: number, time: number) => ({
      specversion: "1.0",
      id,
      source: "/test/gap",
      type: "orders.paid",
      time: new Date(time).toISOString(),
      datacontenttype: "application/json",
      data: { orderId: id, amount, currency },
    });
    await expectAccepted(await postBatch("orders", [paid("g1", "GAP", 7, at), paid("g2", "GAP", 8, at + 1000)]));
    // Both events (one batch: one input run, one key) are in the instance of the key's partition.
    const q = partitionFor({ id: "g1", partitionkey: "GAP" }, 4);
    const stub = env.PROCESSOR.getByName(`${NAME}/${q}`);
    const applied = await waitFor(
      () => stub.status({ processor: NAME, instance: q }),
      (s) => s.counters.accepted >= 2,
    );
    expect(applied.counters.accepted).toBe(2);
    expect(applied.applied).toBeGreaterThanOrEqual(1);
    await stub.reset({ processor: NAME, instance: q });
    const status = await waitFor(
      () => stub.status({ processor: NAME, instance: q }),
      (s) => s.applied >= applied.applied && s.openWindows >= 1,
    );
    expect(status.counters.accepted).toBe(2);
    expect(status.keys).toBe(1);
  });
});

describe("rebuild from the archive", () => {
  it("after the input and internal topics are archived and trimmed, a reset recomputes the same results under the same ids", async () => {
    const t = minute(40);
    const events = ["A", "B", "C", "D"].flatMap((c, i) =>
      [0, 1].map((k) => ({
        specversion: "1.0",
        id: `arch-${c}-${k}`,
        source: "/test/archive",
        type: "orders.paid",
        time: new Date(t + i * 1000 + k).toISOString(),
        datacontenttype: "application/json",
        data: { orderId: `arch-${c}-${k}`, amount: 10 * (i + 1), currency: `AR${c}` },
      })),
    );
    // A later minute on every input partition closes minute 40 once idle.
    const closers = Array.from({ length: 12 }, (_, i) => ({
      ...events[0],
      id: `arch-close-${i}`,
      time: new Date(minute(45)).toISOString(),
      data: { orderId: `arch-close-${i}`, amount: 1, currency: `ZZ${String.fromCharCode(65 + i)}` },
    }));
    await expectAccepted(await postBatch("orders", [...events, ...closers]));
    const first = await waitFor(
      () => outputIds("AR"),
      (ids) => ids.length === 4,
      50_000,
    );
    // Archive and trim both topics: from now on their events exist only in R2, where the backfill reads the input's (ADR 0058).
    for (const topic of ["orders", `processor.${NAME}`])
      for (let q = 0; q < 4; q++) {
        const log = env.PARTITION_LOG.getByName(partitionName(topic, q));
        await runInDurableObject(log, (instance: PartitionLog) => {
          instance.testing.retentionMs = 0;
        });
        await log.archiveNow();
        const stats = await log.stats();
        expect(stats.count).toBe(0);
        if (topic === "orders") expect(stats.archived?.last ?? 0).toBe(stats.head);
      }
    const before = await Promise.all(
      [0, 1, 2, 3].map((q) => env.PROCESSOR.getByName(`${NAME}/${q}`).status({ processor: NAME, instance: q })),
    );
    for (let q = 0; q < 4; q++) await env.PROCESSOR.getByName(`${NAME}/${q}`).reset({ processor: NAME, instance: q });
    const rebuilt = await waitFor(
      () => Promise.all([0, 1, 2, 3].map((q) => env.PROCESSOR.getByName(`${NAME}/${q}`).status({ processor: NAME, instance: q }))),
      (all) => all.every((s, q) => s.applied === before[q]?.applied && s.backfill === null && !s.catchingUp && s.pendingOutputs === 0),
      50_000,
    );
    expect(rebuilt.map((s) => s.counters.accepted)).toEqual(before.map((s) => s.counters.accepted));
    // Same ids: the output topic holds each result once.
    expect(await outputIds("AR")).toEqual(first);
  }, 120_000);
});

describe("the output topic", () => {
  it("is written by its processor alone", async () => {
    const problem = await expectProblem(
      await postBatch("orders-revenue", [
        { specversion: "1.0", id: "forged", source: "/eventline/processors/revenue-per-minute", type: "x" },
      ]),
      403,
    );
    expect(problem.detail).toContain("orders-revenue");
  });
});

describe("an event time far ahead of its commit", () => {
  it("is a future_time dead letter and moves no watermark", async () => {
    const future = {
      specversion: "1.0",
      id: "future-1",
      source: "/test/future",
      type: "orders.paid",
      time: "2999-01-01T00:00:00Z",
      datacontenttype: "application/json",
      data: { orderId: "future-1", amount: 1, currency: "FUT" },
    };
    await expectAccepted(await postBatch("orders", [future]));
    const row = await waitFor(
      () =>
        env.DB.prepare(`SELECT reason, error FROM dead_letters WHERE subscription = ? AND event_id = ?`)
          .bind(`processor:${NAME}`, "future-1")
          .first<{ reason: string; error: string }>(),
      (r) => r !== null,
    );
    expect(row?.reason).toBe("future_time");
    expect(row?.error).toContain("watermark.maxAhead");
    const statuses = await Promise.all(
      [0, 1, 2, 3].map((q) => env.PROCESSOR.getByName(`${NAME}/${q}`).status({ processor: NAME, instance: q })),
    );
    for (const s of statuses) for (const input of s.inputs) expect(input.watermark ?? 0).toBeLessThan(Date.UTC(2999, 0, 1) - 60_000);
  });
});
