import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { PartitionLog } from "../../durable-objects/partition-log";
import type { FeedRuns } from "../../durable-objects/partition-log/delivery/runs";
import type { Processor } from "../../durable-objects/processor";
import { partitionName } from "../../sdk/partition-name";
import { partitionFor } from "../../shared/partitioner";
import type { StoredEvent } from "../helpers";
import { expectAccepted, postBatch, request, waitFor } from "../helpers";
import { CURRENCIES, iso, json, minute, paid, topicEvents, type View, view } from "./fixtures";

/**
 * A processor reads its input topic's whole history (ADR 0058), not only what was appended after
 * it was declared. History that never went through the processor's internal topic is made here by
 * having the input partitions' relay drop the re-partition calls while it is posted, as if the
 * processor had not been declared yet: a new instance computes it when it starts, and a reset
 * recomputes it for an instance that started before it.
 */

const NAME = "revenue-per-minute";
const INPUT_PARTITIONS = 4;

/** Runs `fn` while the input topic's partitions drop every re-partition call (the processors do not see what is posted). */
async function unseen(fn: () => Promise<void>): Promise<void> {
  const saved: FeedRuns[] = [];
  for (let p = 0; p < INPUT_PARTITIONS; p++)
    await runInDurableObject(env.PARTITION_LOG.getByName(partitionName("orders", p)), (log: PartitionLog) => {
      const feed = log.testing.feed;
      saved[p] = feed;
      log.testing.feed = async (target, runs) => {
        if (target.stage !== "repartition") await feed(target, runs);
      };
    });
  try {
    await fn();
  } finally {
    for (let p = 0; p < INPUT_PARTITIONS; p++)
      await runInDurableObject(env.PARTITION_LOG.getByName(partitionName("orders", p)), (log: PartitionLog) => {
        const feed = saved[p];
        if (feed !== undefined) log.testing.feed = feed;
      });
  }
}

/** Waits until the input partitions' outboxes are empty (the relay handed everything on, or dropped it). */
async function relayed(): Promise<void> {
  for (let p = 0; p < INPUT_PARTITIONS; p++) {
    const log = env.PARTITION_LOG.getByName(partitionName("orders", p));
    const stats = await waitFor(
      () => log.stats(),
      (s) => Object.values(s.outbox).every((n) => n === 0),
    );
    expect(stats.outbox).toEqual(Object.fromEntries(Object.keys(stats.outbox).map((k) => [k, 0])));
  }
}

type Result = { key: string; windowStart: string; count: number; sum: number };
const resultsOf = (list: StoredEvent[]) => list.map((e) => ({ id: e.id, ...(e.data as Result) }));

/** The orders of one minute: per currency `n` orders of amount 1 … n. */
function minuteOf(tag: string, m: number, n: number) {
  return CURRENCIES.flatMap((c) => Array.from({ length: n }, (_, i) => paid(`${tag}-${c}-${i}`, c, i + 1, minute(m) + 1_000 + i * 100)));
}

/** Waits for the windows of `minutes` of `currencies`, and returns them with every result in the output topic. */
async function windowsOf(minutes: number[], currencies = CURRENCIES) {
  const wanted = currencies.flatMap((c) => minutes.map((m) => `${c}@${iso(minute(m))}`)).sort();
  const all = await waitFor(
    async () => resultsOf(await topicEvents("orders-revenue")),
    (list) => wanted.every((w) => list.some((r) => `${r.key}@${r.windowStart}` === w)),
    90_000,
  );
  const windows = all.filter((r) => wanted.includes(`${r.key}@${r.windowStart}`));
  expect(windows.map((r) => `${r.key}@${r.windowStart}`).sort()).toEqual(wanted);
  return { all, windows };
}

describe("backfill: a processor reads its input topic's history", () => {
  it("a new processor computes the history posted before it started, each window once", { timeout: 180_000 }, async () => {
    // Minutes 0 and 1: 3 orders per currency each, unseen by the processors.
    await unseen(async () => {
      await expectAccepted(await postBatch("orders", [...minuteOf("h0", 0, 3), ...minuteOf("h1", 1, 3)]));
      await relayed();
    });
    for (let i = 0; i < INPUT_PARTITIONS; i++) {
      const internal = await env.PARTITION_LOG.getByName(partitionName(`processor.${NAME}`, i)).stats();
      expect(internal.head, "the internal topic never saw the history").toBe(0);
    }
    // The first view starts the instances: each reads the 48 orders posted so far.
    const first = await view(NAME);
    for (const p of first.partitions) if (p.backfill !== null) expect(p.backfill.total).toBe(48);
    // Then live orders, which close minutes 0 and 1 everywhere.
    await expectAccepted(await postBatch("orders", minuteOf("live", 3, 1)));
    const { all, windows } = await windowsOf([0, 1]);
    for (const r of windows) expect({ count: r.count, sum: r.sum }).toEqual({ count: 3, sum: 6 });
    expect(new Set(all.map((r) => r.id)).size).toBe(all.length);
    const settled = await waitFor(
      () => view(NAME),
      (v) => v.partitions.every((p) => p.backfill === null && !p.catchingUp) && v.lag === 0,
    );
    expect(settled.backfill).toBeNull();
    // Every order was applied once: the 48 of the history and the 8 live ones.
    expect(settled.partitions.reduce((n, p) => n + p.inputsApplied, 0)).toBe(56);
  });

  it("a reset recomputes history the processor never saw; results already appended keep their ids", { timeout: 180_000 }, async () => {
    // Minute 5, unseen by the running processor: no result for it.
    await unseen(async () => {
      await expectAccepted(await postBatch("orders", minuteOf("h5", 5, 2)));
      await relayed();
    });
    await expectAccepted(await postBatch("orders", minuteOf("live7", 7, 1)));
    const before = resultsOf(await topicEvents("orders-revenue"));
    expect(before.filter((r) => r.windowStart === iso(minute(5)))).toEqual([]);

    const res = await request(`/v1/processors/${NAME}/reset`, { method: "POST" });
    const reset = await json<{ events: number; instances: { partition: number; rebuildThrough: number; inputThrough: number[] }[] }>(
      res,
      202,
    );
    // Every instance reads the input topic through its heads at the reset: all 80 orders so far.
    for (const i of reset.instances) expect(i.inputThrough.reduce((n, h) => n + h, 0)).toBe(80);
    expect(reset.events).toBe(80);
    const { all, windows } = await windowsOf([0, 1, 5]);
    for (const r of windows.filter((w) => w.windowStart === iso(minute(5))))
      expect({ count: r.count, sum: r.sum }).toEqual({ count: 2, sum: 3 });
    // Minute 0 and 1's results were appended again under their ids: duplicates, not second events.
    expect(new Set(all.map((r) => r.id)).size).toBe(all.length);
    for (const r of before) expect(all.find((a) => a.id === r.id)).toEqual(r);
    const settled = await waitFor(
      () => view(NAME),
      (v: View) => v.partitions.every((p) => p.backfill === null && !p.catchingUp && p.pendingOutputs === 0),
    );
    expect(settled.partitions.reduce((n, p) => n + p.inputsApplied, 0)).toBe(80);
  });

  it("a crash during the backfill resumes from its last step; inputs posted meanwhile are applied once", { timeout: 180_000 }, async () => {
    // Minutes 10 and 11, unseen; then one instance is reset and driven step by step, crashing twice.
    await unseen(async () => {
      await expectAccepted(await postBatch("orders", [...minuteOf("c10", 10, 3), ...minuteOf("c11", 11, 3)]));
      await relayed();
    });
    const instance = 0;
    const mine = CURRENCIES.filter((c) => partitionFor({ id: c, partitionkey: c }, INPUT_PARTITIONS) === instance);
    expect(mine.length).toBeGreaterThan(0);
    const stub = env.PROCESSOR.getByName(`${NAME}/${instance}`);
    const totals = { steps: 0, crashes: 0, rounds: 0 };
    const status = await runInDurableObject(stub, async (object: Processor) => {
      object.testing.backfillStep = 7;
      object.testing.beforeCommit = () => {
        // Steps 2 and 4 crash before their commit (an eviction mid-backfill).
        totals.steps++;
        if (totals.steps === 2 || totals.steps === 4) {
          totals.crashes++;
          throw new Error("crash during the backfill");
        }
      };
      const taken = await object.reset({ processor: NAME, instance });
      expect(taken.inputThrough.reduce((n, h) => n + h, 0)).toBe(128);
      for (; totals.rounds < 200; totals.rounds++) {
        const s = await object.status({ processor: NAME, instance });
        if (s.backfill === null && !s.catchingUp) return s;
        // Live orders arrive while the history is read: they wait in the internal topic, then are applied once.
        if (totals.rounds === 3) await expectAccepted(await postBatch("orders", minuteOf("during", 12, 1)));
        try {
          await object.alarm();
        } catch {
          object.testing.forget();
        }
      }
      throw new Error("the backfill did not finish");
    });
    expect(totals.crashes).toBe(2);
    // The history is the whole topic (16 orders per currency over this file's tests) and the order
    // posted during the backfill came through the internal topic: 17 per currency, each applied once.
    const applied = await waitFor(
      async () => (await runInDurableObject(stub, (o: Processor) => o.status({ processor: NAME, instance }))).counters.accepted,
      (n) => n === mine.length * 17,
    );
    expect(applied).toBe(mine.length * 17);
    expect(status.backfill).toBeNull();
    await runInDurableObject(stub, (object: Processor) => {
      object.testing.beforeCommit = () => {};
    });
    await expectAccepted(await postBatch("orders", minuteOf("close", 14, 1)));
    // Only the reset instance read minutes 10 and 11: its currencies' windows, and no one else's.
    const { all, windows } = await windowsOf([10, 11], mine);
    for (const r of windows) expect({ count: r.count, sum: r.sum }).toEqual({ count: 3, sum: 6 });
    const starts = [iso(minute(10)), iso(minute(11))];
    expect(all.filter((r) => starts.includes(r.windowStart) && !mine.includes(r.key))).toEqual([]);
    expect(new Set(all.map((r) => r.id)).size).toBe(all.length);
  });
});
