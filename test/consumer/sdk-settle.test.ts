import { env } from "cloudflare:workers";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Consumer, type ConsumerOptions, defineConsumer, PermanentError } from "../../sdk/consumer";
import type { Delivery } from "../../sdk/messages";
import { batchOf, counting } from "./counting";
import { createEffectsTable, delivery, effect, effects, FakeMessage, resetConsumerState } from "./helpers";

/**
 * Batch settlement (ADR 0036): `queue()` commits every live, new, in-order event of a batch in one
 * `db.batch()` after one prefetch, whatever the batch's size; what fails or conflicts costs only
 * itself. Round trips are counted through a D1 proxy (test/consumer/counting.ts), so a regression to
 * settling message by message fails here.
 */

beforeAll(createEffectsTable);
beforeEach(async () => {
  await resetConsumerState();
  await env.DB.prepare("DELETE FROM delivery_attempts WHERE subscription = 'test-sub'").run();
});

type Options = Partial<ConsumerOptions<Env, unknown>>;

/** A consumer whose handler writes one effect per event: `permanent` events are poison, `flaky` ones fail (retried). */
function consumerOn(db: D1Database, ordering: "none" | "partition", extra: Options = {}) {
  const calls: string[] = [];
  const consumer: Consumer<Env> = defineConsumer<Env>({
    subscription: "test-sub",
    db: () => db,
    maxRetries: 5,
    ordering,
    handle: async (event, { db: d1, delivery: d }) => {
      calls.push(event.id);
      if (event.type === "permanent") throw new PermanentError("poison");
      if (event.type === "flaky") throw new Error("dependency down");
      return [effect(d1, event, d.sequence)];
    },
    ...extra,
  });
  return { consumer, calls };
}

function chain(partition: number, n: number, type = "test.thing"): Delivery[] {
  return Array.from({ length: n }, (_, i) =>
    delivery({
      partition,
      sequence: i + 1,
      prev: i,
      event: { specversion: "1.0", id: `p${partition}-${i + 1}`, source: "/settle", type, data: {} },
    }),
  );
}

const withType = (d: Delivery, type: string): Delivery => ({ ...d, event: { ...d.event, type } });
const count = async (sql: string) => (await env.DB.prepare(sql).first<{ n: number }>())?.n ?? 0;
const handledCount = () => count("SELECT handled AS n FROM subscription_stats WHERE subscription = 'test-sub'");
const checkpoint = (partition: number) =>
  count(`SELECT sequence AS n FROM checkpoints WHERE subscription = 'test-sub' AND partition = ${partition}`);

describe("batch settlement: round trips", () => {
  it.each(["none", "partition"] as const)("ordering %s: a batch of 1, 10 or 100 new events costs two round trips", async (ordering) => {
    for (const [size, partition] of [
      [1, 20],
      [10, 21],
      [100, 22],
    ] as const) {
      const d1 = counting(env.DB);
      const { consumer } = consumerOn(d1.db, ordering);
      // Spread over four partitions, shuffled: Queues keeps no order.
      const bodies = Array.from({ length: 4 }, (_, k) => chain(partition * 10 + k, Math.ceil(size / 4)))
        .flat()
        .slice(0, size);
      const messages = bodies.reverse().map((d) => new FakeMessage(d));
      await consumer.queue(batchOf(messages), env);
      expect(messages.every((m) => m.acked && m.retries.length === 0)).toBe(true);
      expect(d1.single).toEqual([]);
      expect(d1.batches, `round trips for ${size} events`).toBe(2);
    }
    expect(await effects()).toHaveLength(111);
    expect(await handledCount()).toBe(111);
  });

  it("a queue batch of runs holding 1,200 events commits in slices of 500; a slice that fails stops the later ones (ordered)", async () => {
    const d1 = counting(env.DB);
    const { consumer } = consumerOn(d1.db, "partition");
    const run = (from: number, partition = 90) => ({
      v: 2,
      subscription: "test-sub",
      topic: "events",
      partition,
      prev: from,
      events: Array.from({ length: 100 }, (_, i) => ({
        sequence: from + i + 1,
        committedAt: Date.now(),
        event: { specversion: "1.0", id: `p${partition}-${from + i + 1}`, source: "/settle", type: "test.thing", data: {} },
      })),
    });
    const runs = Array.from({ length: 12 }, (_, k) => new FakeMessage(run(k * 100)));
    await consumer.queue(batchOf(runs), env);
    expect(runs.every((m) => m.acked)).toBe(true);
    expect(d1.batches).toBe(1 + 3);
    expect(await checkpoint(90)).toBe(1200);

    // The second slice's commit fails (D1 unavailable): the first stays, the third is not
    // committed ahead of the second, and the failure reaches Queues (messages unacked → redelivered).
    const again = consumerOn(d1.db, "partition").consumer;
    const next = Array.from({ length: 12 }, (_, k) => new FakeMessage(run(k * 100, 91)));
    d1.batches = 0;
    d1.failBatch = 2;
    const failed = await again.queue(batchOf(next), env).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(String(failed)).toContain("injected failure");
    expect(await checkpoint(91)).toBe(500);
    expect(await count("SELECT COUNT(*) AS n FROM test_effects WHERE event_id LIKE 'p91-%'")).toBe(500);
    expect(next.slice(0, 5).every((m) => m.acked)).toBe(true);
    expect(next.slice(5).some((m) => m.acked)).toBe(false);
  });

  it("settlement 'event' settles message by message, and each handler reads what the one before wrote", async () => {
    const d1 = counting(env.DB);
    const seen: number[] = [];
    const { consumer } = consumerOn(d1.db, "partition", {
      settlement: "event",
      handle: async (event, { db, delivery: d }) => {
        seen.push((await db.prepare("SELECT COUNT(*) AS n FROM test_effects").first<{ n: number }>())?.n ?? -1);
        return [effect(db, event, d.sequence)];
      },
    });
    const messages = chain(30, 5).map((d) => new FakeMessage(d));
    await consumer.queue(batchOf(messages), env);
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    expect(d1.batches).toBe(1 + 5);
  });
});

describe("batch settlement: what fails costs only itself", () => {
  it.each(["none", "partition"] as const)(
    "ordering %s: a duplicate, a poisoned event, a failing event and a conflicting record; everything else is handled exactly once",
    async (ordering) => {
      const d1 = counting(env.DB);
      const ours = consumerOn(d1.db, ordering);
      const other = consumerOn(env.DB, ordering);
      const main = chain(40, 8);
      main[2] = withType(main[2] as Delivery, "permanent"); // sequence 3: poison
      const [already] = chain(41, 1) as [Delivery];
      const flaky = withType(chain(42, 1)[0] as Delivery, "flaky");
      const [conflicting, afterConflict] = chain(43, 2) as [Delivery, Delivery];
      expect(await other.consumer.process(new FakeMessage(already), env)).toBe("handled");
      // Settled by another invocation right after our prefetch: our commit is refused for it.
      d1.afterBatch = async (n) => {
        if (n === 0) expect(await other.consumer.process(new FakeMessage(conflicting), env)).toBe("handled");
      };

      const messages = [...main, already, flaky, conflicting, afterConflict].reverse().map((d) => new FakeMessage(d));
      await ours.consumer.queue(batchOf(messages), env);

      const byId = new Map(messages.map((m) => [String((m.body as Delivery).event?.id), m]));
      const flakyMessage = byId.get("p42-1") as FakeMessage;
      expect(flakyMessage.acked).toBe(false);
      expect(flakyMessage.retries).toHaveLength(1);
      for (const [id, m] of byId) if (id !== "p42-1") expect(m.acked, id).toBe(true);

      // Every effect once: the seven good events of partition 40, the one applied before, the
      // conflicting one (by the other invocation) and its successor.
      const applied = (await effects()).map((e) => e.event_id).sort();
      expect(applied).toEqual(["p40-1", "p40-2", "p40-4", "p40-5", "p40-6", "p40-7", "p40-8", "p41-1", "p43-1", "p43-2"].sort());
      // The handler ran once per event it was given, the refused commit's conflicting event aside.
      expect(ours.calls.filter((id) => id === "p41-1")).toEqual([]);
      expect(ours.calls.filter((id) => id === "p40-3")).toEqual(["p40-3"]);
      const letters = await env.DB.prepare("SELECT event_id, reason, attempts FROM dead_letters").all();
      expect(letters.results).toEqual([{ event_id: "p40-3", reason: "permanent", attempts: 1 }]);
      expect(await checkpoint(40)).toBe(8);
      expect(await checkpoint(43)).toBe(2);
      // 7 + 1 (our commits) + 2 (the other's) handled; the duplicate and the retry are not.
      expect(await handledCount()).toBe(10);
    },
  );

  it("ordered: a poisoned event in the middle of a run does not apply its successors before it is settled", async () => {
    const order: string[] = [];
    const { consumer } = consumerOn(env.DB, "partition", {
      handle: async (event, { db, delivery: d }) => {
        order.push(event.id);
        if (event.type === "flaky") throw new Error("dependency down");
        return [effect(db, event, d.sequence)];
      },
    });
    const run = chain(44, 6);
    run[1] = withType(run[1] as Delivery, "flaky");
    const messages = run.map((d) => new FakeMessage(d));
    await consumer.queue(batchOf(messages), env);
    // 1 is handled; 2 fails and is retried; 3–6 wait behind it (deferred), never run.
    expect(order).toEqual(["p44-1", "p44-2"]);
    expect(messages.map((m) => m.acked)).toEqual([true, false, false, false, false, false]);
    expect(messages.slice(1).every((m) => m.retries.length === 1)).toBe(true);
    expect((await effects()).map((e) => e.event_id)).toEqual(["p44-1"]);
    expect(await checkpoint(44)).toBe(1);
  });
});

describe("batch settlement: replays", () => {
  it("a rebuild's chained replay and a history run settle in one commit too; an older job's unchained replay does not", async () => {
    const d1 = counting(env.DB);
    const { consumer, calls } = consumerOn(d1.db, "partition");
    const replay = (d: Delivery, mark: { chain: boolean; history?: boolean }) => ({ ...d, replay: { jobId: "rpl_test", ...mark } });
    // A rebuild: the live chain from the start.
    await consumer.queue(batchOf(chain(80, 20).map((d) => new FakeMessage(replay(d, { chain: true })))), env);
    expect(d1.batches).toBe(2);
    expect(await checkpoint(80)).toBe(20);
    // History (never delivered live): outside the chain, applied in order, checkpoint untouched.
    d1.batches = 0;
    const history = chain(81, 20).map((d) => ({ ...replay(d, { chain: false, history: true }), prev: 0 }));
    await consumer.queue(batchOf(history.map((d) => new FakeMessage(d))), env);
    expect(d1.batches).toBe(2);
    expect(calls.filter((id) => id.startsWith("p81-"))).toEqual(Array.from({ length: 20 }, (_, i) => `p81-${i + 1}`));
    expect(await checkpoint(81)).toBe(0);
    // The same history again: every event already settled, absorbed as duplicates, nothing run.
    calls.length = 0;
    await consumer.queue(batchOf(history.map((d) => new FakeMessage(d))), env);
    expect(calls).toEqual([]);
    expect(await effects()).toHaveLength(40);
    // An older job's unchained replay (no history mark) keeps the per-message rule: beyond the
    // checkpoint it is left to the live chain (acked, not applied).
    const [old] = chain(82, 1) as [Delivery];
    const message = new FakeMessage(replay(old, { chain: false }));
    await consumer.queue(batchOf([message]), env);
    expect(message.acked).toBe(true);
    expect(calls).toEqual([]);
  });
});

describe("batch settlement: the circuit breaker", () => {
  it("counts a batch's failures as consecutive only where no success ran between them", async () => {
    const breaker = { circuitBreaker: { failureThreshold: 5, openSeconds: 30 } };
    // Ordering none: every handler runs; 10 of 30 fail, each between successes.
    const mixed = consumerOn(env.DB, "none", breaker);
    const bodies = chain(70, 30).map((d, i) => (i % 3 === 1 ? withType(d, "flaky") : d));
    await mixed.consumer.queue(batchOf(bodies.map((d) => new FakeMessage(d))), env);
    expect(mixed.consumer.breaker.state).toBe("closed");
    expect(await effects()).toHaveLength(20);

    // Six failures in a row (nothing between them) open it, as they would message by message.
    const failing = consumerOn(env.DB, "none", breaker);
    await failing.consumer.queue(batchOf(chain(71, 6, "flaky").map((d) => new FakeMessage(d))), env);
    expect(failing.consumer.breaker.state).toBe("open");
  });
});

describe("batch settlement: records", () => {
  it("a first-run success writes no attempt record and is counted; a success after a failure keeps its record", async () => {
    const { consumer } = consumerOn(env.DB, "none");
    await consumer.queue(batchOf(chain(50, 5).map((d) => new FakeMessage(d))), env);
    expect(await count("SELECT COUNT(*) AS n FROM delivery_attempts WHERE subscription = 'test-sub'")).toBe(0);
    expect(await handledCount()).toBe(5);
    // Each event's settlement keeps its own time (the benchmark's commit → handled reads it).
    expect(await count("SELECT COUNT(*) AS n FROM processed_events WHERE subscription = 'test-sub' AND processed_at > 0")).toBe(5);

    const second = new FakeMessage(chain(51, 1)[0]);
    second.attempts = 2;
    await consumer.queue(batchOf([second]), env);
    const rows = await env.DB.prepare("SELECT partition, attempt, outcome FROM delivery_attempts WHERE subscription = 'test-sub'").all();
    expect(rows.results).toEqual([{ partition: 51, attempt: 2, outcome: "handled" }]);
  });
});

describe("batch settlement: handleBatch", () => {
  it("applies the batch's events in one call and one commit; a throw falls back to handle, so only the poison pays", async () => {
    const d1 = counting(env.DB);
    const sets: string[][] = [];
    const handled: string[] = [];
    const { consumer } = consumerOn(d1.db, "partition", {
      handleBatch: async (items) => {
        sets.push(items.map((i) => i.event.id));
        if (items.some((i) => i.event.type === "permanent")) throw new Error("one of the set is bad");
        // One statement for the whole set, as a projection that aggregates would write.
        const values = items.map(() => "(?, ?, ?)").join(", ");
        const params = items.flatMap((i) => [i.event.id, i.ctx.delivery.sequence, Date.now()]);
        return [env.DB.prepare(`INSERT INTO test_effects (event_id, sequence, applied_at) VALUES ${values}`).bind(...params)];
      },
      handle: async (event, { db, delivery: d }) => {
        handled.push(event.id);
        if (event.type === "permanent") throw new PermanentError("poison");
        return [effect(db, event, d.sequence)];
      },
    });
    await consumer.queue(batchOf(chain(60, 10).map((d) => new FakeMessage(d))), env);
    expect(sets).toEqual([Array.from({ length: 10 }, (_, i) => `p60-${i + 1}`)]);
    expect(handled).toEqual([]);
    expect(d1.batches).toBe(2);
    expect(await effects()).toHaveLength(10);

    const poisoned = chain(61, 4);
    poisoned[2] = withType(poisoned[2] as Delivery, "permanent");
    const messages = poisoned.map((d) => new FakeMessage(d));
    await consumer.queue(batchOf(messages), env);
    expect(messages.every((m) => m.acked)).toBe(true);
    expect(handled).toEqual(["p61-1", "p61-2", "p61-3", "p61-4"]);
    expect((await effects()).filter((e) => e.event_id.startsWith("p61-")).map((e) => e.event_id)).toEqual(["p61-1", "p61-2", "p61-4"]);
    expect(await count("SELECT COUNT(*) AS n FROM dead_letters WHERE event_id = 'p61-3'")).toBe(1);
    expect(await checkpoint(61)).toBe(4);
  });
});
