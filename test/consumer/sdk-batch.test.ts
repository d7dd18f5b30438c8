import { env } from "cloudflare:workers";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { type Consumer, defineConsumer, PermanentError } from "../../sdk/consumer";
import type { Delivery } from "../../sdk/messages";
import { batchOf, counting } from "./counting";
import { createEffectsTable, delivery, effect, effects, FakeMessage, resetConsumerState } from "./helpers";

/**
 * `queue()` reads a batch's idempotency records and checkpoints up front in one round trip, then
 * settles what it can of the batch in one more (batch settlement, ADR 0036); the rest goes message
 * by message. These tests count D1 round trips through a proxy, and check the cases where what was
 * read up front is stale by the time a message is processed. test/consumer/sdk-settle.test.ts has
 * the batch commit's own cases (splits, failures, handleBatch).
 */

beforeAll(createEffectsTable);
beforeEach(resetConsumerState);

/** A consumer on `db` whose handler writes one effect row per event, counting its calls. */
function recording(db: D1Database, ordering: "none" | "partition", extra: { schema?: z.ZodType<unknown> } = {}) {
  const calls: string[] = [];
  const consumer: Consumer<Env> = defineConsumer<Env>({
    subscription: "test-sub",
    db: () => db,
    maxRetries: 50,
    ordering,
    ...extra,
    handle: async (event, { db: d1, delivery: d }) => {
      calls.push(event.id);
      if (event.type === "permanent") throw new PermanentError("not today");
      return [effect(d1, event, d.sequence)];
    },
  });
  return { consumer, calls };
}

/** `n` events chained by `prev` in one partition, starting after `from`. */
function chain(partition: number, from: number, n: number, topic = "events"): Delivery[] {
  return Array.from({ length: n }, (_, i) => delivery({ topic, partition, sequence: from + i + 1, prev: from + i }));
}

function shuffled<T>(items: T[]): T[] {
  return items
    .map((item, i) => ({ item, key: (i * 7919) % items.length }))
    .sort((a, b) => a.key - b.key)
    .map(({ item }) => item);
}

const settled = (messages: FakeMessage[]) => messages.every((m) => m.acked && m.retries.length === 0);
const sequencesOf = async () => (await effects()).map((e) => e.sequence);
const checkpoint = async (partition: number) =>
  (
    await env.DB.prepare("SELECT sequence FROM checkpoints WHERE subscription = 'test-sub' AND partition = ?")
      .bind(partition)
      .first<{ sequence: number }>()
  )?.sequence;

describe("consumer SDK batches: D1 round trips", () => {
  it("an ordered batch of 20 costs one prefetch plus one settle batch (per-message path: 3 round trips each)", async () => {
    const d1 = counting(env.DB);
    const { consumer } = recording(d1.db, "partition");
    const messages = shuffled(chain(5, 0, 20)).map((d) => new FakeMessage(d));
    await consumer.queue(batchOf(messages), env);
    expect(settled(messages)).toBe(true);
    expect(await sequencesOf()).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(d1.single).toEqual([]);
    expect(d1.batches).toBe(2);

    // The same work through process(), one message at a time: idempotency and checkpoint SELECTs.
    const before = { single: d1.single.length, batches: d1.batches };
    for (const d of chain(5, 20, 20)) expect(await consumer.process(new FakeMessage(d), env)).toBe("handled");
    expect(d1.single.length - before.single).toBe(2 * 20);
    expect(d1.batches - before.batches).toBe(20);
    expect(await checkpoint(5)).toBe(40);
  });

  it("ordering none: one prefetch, then one settle batch for the whole batch", async () => {
    const d1 = counting(env.DB);
    const { consumer } = recording(d1.db, "none");
    const messages = [...chain(1, 0, 10), ...chain(2, 0, 10)].map((d) => new FakeMessage(d));
    await consumer.queue(batchOf(messages), env);
    expect(settled(messages)).toBe(true);
    expect(await effects()).toHaveLength(20);
    expect(d1.single).toEqual([]);
    expect(d1.batches).toBe(2);
  });

  it("a full batch (100 messages, 50 partitions, 30 events seen before) is prefetched in chunks, in one round trip", async () => {
    const d1 = counting(env.DB);
    const { consumer, calls } = recording(d1.db, "partition");
    const bodies = Array.from({ length: 50 }, (_, p) => chain(100 + p, 0, 2)).flat();
    const seenBefore = bodies.filter((d) => d.sequence === 1 && d.partition < 130);
    for (const d of seenBefore) expect(await consumer.process(new FakeMessage(d), env)).toBe("handled");
    calls.length = 0;
    d1.single.length = 0;
    d1.batches = 0;

    const messages = shuffled(bodies).map((d) => new FakeMessage(d));
    await consumer.queue(batchOf(messages), env);
    expect(settled(messages)).toBe(true);
    expect(calls).toHaveLength(100 - 30);
    expect(await effects()).toHaveLength(100);
    expect(d1.single).toEqual([]);
    // Prefetch, the commit of the 70 new events, and the duplicates' attempt records.
    expect(d1.batches).toBe(3);
    for (let p = 100; p < 150; p++) expect(await checkpoint(p)).toBe(2);
  });

  it("if the prefetch fails, each message reads for itself and settles as usual", async () => {
    const d1 = counting(env.DB);
    d1.failBatch = 0;
    const { consumer } = recording(d1.db, "partition");
    const messages = chain(6, 0, 5).map((d) => new FakeMessage(d));
    await consumer.queue(batchOf(messages), env);
    expect(settled(messages)).toBe(true);
    expect(await sequencesOf()).toEqual([1, 2, 3, 4, 5]);
    expect(d1.single).toHaveLength(2 * 5);
  });

  it("when the end-of-invocation batch fails, the metrics it carried are given back and written by the next batch", async () => {
    const d1 = counting(env.DB);
    const { consumer } = recording(d1.db, "none");
    const duplicates = async () =>
      (await env.DB.prepare("SELECT duplicates FROM subscription_stats WHERE subscription = 'test-sub'").first<{ duplicates: number }>())
        ?.duplicates ?? 0;
    const first = delivery({ partition: 3, sequence: 1 });
    expect(await consumer.process(new FakeMessage(first), env)).toBe("handled");
    // A second copy settles without a batch of its own: its attempt record and the duplicate count
    // wait for the invocation's last batch (after the prefetch), which fails.
    d1.failBatch = d1.batches + 1;
    const copy = new FakeMessage(first);
    await consumer.queue(batchOf([copy]), env);
    expect(copy.acked).toBe(true);
    expect(d1.batches).toBe(d1.failBatch + 1);
    expect(await duplicates()).toBe(0);
    await consumer.queue(batchOf([new FakeMessage(delivery({ partition: 3, sequence: 2 }))]), env);
    expect(await duplicates()).toBe(1);
  });

  it("a message whose settlement fails does not cut the others short: queue() fails only once every message settled", async () => {
    const d1 = counting(env.DB);
    d1.failBatch = 2; // after the prefetch and the batch commit: the failing message's retry record
    const consumer = defineConsumer<Env>({
      subscription: "test-sub",
      db: () => d1.db,
      maxRetries: 50,
      ordering: "none",
      handle: async (event, { db, delivery: d }) => {
        if (event.type === "fails") throw new Error("dependency down");
        return [effect(db, event, d.sequence)];
      },
    });
    const event = (id: string, type: string) => ({ specversion: "1.0", id, source: "/test", type, data: {} });
    const failing = new FakeMessage(delivery({ partition: 1, sequence: 1, event: event("evt-fails", "fails") }));
    const other = new FakeMessage(delivery({ partition: 2, sequence: 1, event: event("evt-other", "test.thing") }));
    let error: unknown;
    await consumer.queue(batchOf([failing, other]), env).catch((e: unknown) => {
      error = e;
    });
    // The failure is still reported (Queues retries what was not acked)…
    expect(String(error)).toContain("injected failure");
    expect(failing.acked || failing.retries.length > 0).toBe(false);
    // …and the other message was applied and acked all the same.
    expect(other.acked).toBe(true);
    expect((await effects()).map((e) => e.event_id)).toEqual(["evt-other"]);
  });
});

describe("consumer SDK batches: stale prefetch", () => {
  it.each(["none", "partition"] as const)(
    "ordering %s: an event prefetched as not seen but settled meanwhile by another invocation ends as a duplicate, applied once",
    async (ordering) => {
      const d1 = counting(env.DB);
      const ours = recording(d1.db, ordering);
      const other = recording(env.DB, ordering);
      const [body] = chain(7, 0, 1) as [Delivery];
      d1.afterBatch = async (n) => {
        if (n === 0) expect(await other.consumer.process(new FakeMessage(body), env)).toBe("handled");
      };
      const message = new FakeMessage(body);
      await ours.consumer.queue(batchOf([message]), env);
      // Our handler ran on the prefetched "not seen"; the processed_events insert refused the
      // second settle, so its effects were rolled back and the message acked.
      expect(ours.calls).toHaveLength(1);
      expect(other.calls).toHaveLength(1);
      expect(settled([message])).toBe(true);
      expect(await effects()).toHaveLength(1);
      const stats = await env.DB.prepare("SELECT handled FROM subscription_stats WHERE subscription = 'test-sub'").first();
      expect(stats).toEqual({ handled: 1 });
      expect(d1.single).toEqual([]);
    },
  );

  it("a predecessor settled by another invocation after the prefetch: the checkpoint is read again, and the batch applies", async () => {
    const d1 = counting(env.DB);
    const ours = recording(d1.db, "partition");
    const other = recording(env.DB, "partition");
    const [first, ...rest] = chain(8, 0, 3) as [Delivery, ...Delivery[]];
    d1.afterBatch = async (n) => {
      if (n === 0) expect(await other.consumer.process(new FakeMessage(first), env)).toBe("handled");
    };
    const messages = rest.map((d) => new FakeMessage(d));
    await ours.consumer.queue(batchOf(messages), env);
    expect(settled(messages)).toBe(true);
    expect(await sequencesOf()).toEqual([1, 2, 3]);
    // One re-read, by the first message that would have waited; the second knew from the settle.
    expect(d1.single).toHaveLength(1);
    expect(d1.single[0]).toContain("FROM checkpoints");
    expect(await checkpoint(8)).toBe(3);
  });

  it("a real gap still defers, after one re-read, and never applies out of order", async () => {
    const d1 = counting(env.DB);
    const { consumer, calls } = recording(d1.db, "partition");
    const [, second, third] = chain(9, 0, 3) as [Delivery, Delivery, Delivery];
    const messages = [new FakeMessage(third), new FakeMessage(second)];
    await consumer.queue(batchOf(messages), env);
    expect(messages.every((m) => !m.acked && m.retries.length === 1)).toBe(true);
    expect(calls).toEqual([]);
    expect(d1.single).toHaveLength(2);
    expect(d1.single.every((sql) => sql.includes("FROM checkpoints"))).toBe(true);
  });

  it("the checkpoint read back with a settle follows the walk past events settled out of order", async () => {
    const d1 = counting(env.DB);
    const { consumer } = recording(d1.db, "partition", { schema: z.object({ n: z.number() }) });
    const [one, two, three, four] = chain(10, 0, 4) as [Delivery, Delivery, Delivery, Delivery];
    expect(await consumer.process(new FakeMessage(one), env)).toBe("handled");
    // Sequence 3 fails validation (permanent) before its predecessor arrives: settled ahead.
    const bad = { ...three, event: { ...three.event, data: { n: "three" } } };
    expect(await consumer.process(new FakeMessage(bad), env)).toBe("dead_lettered");
    expect(await checkpoint(10)).toBe(1);
    d1.single.length = 0;

    const messages = [new FakeMessage(four), new FakeMessage(two)];
    await consumer.queue(batchOf(messages), env);
    expect(settled(messages)).toBe(true);
    expect(await sequencesOf()).toEqual([1, 2, 4]);
    // Settling 2 moved the checkpoint to 3 (over the dead letter); 4 applied without a read.
    expect(d1.single).toEqual([]);
    expect(await checkpoint(10)).toBe(4);
  });

  it("an id already handled in another partition, in a batch: not applied, and its successor still applies", async () => {
    const d1 = counting(env.DB);
    const { consumer, calls } = recording(d1.db, "partition");
    const same = { specversion: "1.0", id: "reused-in-batch", source: "/t", type: "t" };
    expect(await consumer.process(new FakeMessage(delivery({ partition: 11, sequence: 1, prev: 0, event: same })), env)).toBe("handled");
    calls.length = 0;
    const messages = [
      new FakeMessage(delivery({ partition: 12, sequence: 2, prev: 1 })),
      new FakeMessage(delivery({ partition: 12, sequence: 1, prev: 0, event: same })),
    ];
    await consumer.queue(batchOf(messages), env);
    expect(settled(messages)).toBe(true);
    expect(calls).toHaveLength(1);
    expect((await effects()).filter((e) => e.event_id === "reused-in-batch")).toHaveLength(1);
    expect(await checkpoint(12)).toBe(2);
  });
});

describe("consumer SDK batches: duplicates and redrives within one batch", () => {
  it.each(["none", "partition"] as const)("ordering %s: the same event twice in one batch is applied once", async (ordering) => {
    const { consumer, calls } = recording(env.DB, ordering);
    const [a, b, c] = chain(13, 0, 3) as [Delivery, Delivery, Delivery];
    const messages = [a, b, b, c, a].map((d) => new FakeMessage(d));
    await consumer.queue(batchOf(messages), env);
    expect(settled(messages)).toBe(true);
    expect((await effects()).map((e) => e.sequence).sort()).toEqual([1, 2, 3]);
    // Ordered, copies are taken one after the other and the second is known as a duplicate.
    if (ordering === "partition") expect(calls).toHaveLength(3);
    expect(await checkpoint(13)).toBe(3);
  });

  it("a redrive of a dead-lettered event is re-applied from the prefetched record; a second copy in the batch is a duplicate", async () => {
    const d1 = counting(env.DB);
    const { consumer, calls } = recording(d1.db, "partition");
    const [body] = chain(14, 0, 1) as [Delivery];
    const poison = { ...body, event: { ...body.event, type: "permanent" } };
    expect(await consumer.process(new FakeMessage(poison), env)).toBe("dead_lettered");
    const letter = await env.DB.prepare("SELECT id FROM dead_letters").first<{ id: string }>();
    const redrive = { ...body, redrive: { deadLetterId: letter?.id ?? "" } };
    calls.length = 0;
    d1.single.length = 0;

    const messages = [new FakeMessage(redrive), new FakeMessage(redrive)];
    await consumer.queue(batchOf(messages), env);
    expect(settled(messages)).toBe(true);
    expect(calls).toHaveLength(1);
    expect(await effects()).toHaveLength(1);
    expect(d1.single).toEqual([]);
    const record = await env.DB.prepare("SELECT outcome FROM processed_events WHERE partition = 14").all();
    expect(record.results).toEqual([{ outcome: "handled" }]);
  });
});
