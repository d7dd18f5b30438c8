import { env } from "cloudflare:workers";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { defineConsumer, PermanentError, resolveFromLog } from "../../shared/consumer";
import { backoffCeiling, backoffSeconds, CircuitBreaker } from "../../shared/consumer-policy";
import type { Delivery } from "../../shared/messages";
import { event, expectAccepted, postStructured } from "../helpers";
import { createEffectsTable, delivery, effect, effects, FakeMessage, resetConsumerState } from "./helpers";

beforeAll(createEffectsTable);
beforeEach(resetConsumerState);

const deadLetters = async () =>
  (await env.DB.prepare("SELECT * FROM dead_letters ORDER BY dead_lettered_at").all<Record<string, unknown>>()).results;

describe("consumer SDK: retries and dead letters", () => {
  it("a poison message is dead-lettered after exactly maxRetries + 1 attempts, body intact; its batch-mates are handled once", async () => {
    let calls = 0;
    const consumer = defineConsumer<Env>({
      subscription: "test-sub",
      db: (e) => e.DB,
      maxRetries: 3,
      backoff: { baseSeconds: 2, capSeconds: 10 },
      circuitBreaker: { failureThreshold: 100, openSeconds: 1 },
      handle: async (event, { db, delivery: d }) => {
        calls++;
        if (event.type === "poison") throw new Error("cannot handle this");
        return [effect(db, event, d.sequence)];
      },
    });
    const poison = new FakeMessage(delivery({ event: { specversion: "1.0", id: "p-1", source: "/t", type: "poison", data: { x: 1 } } }));
    const good = [new FakeMessage(delivery()), new FakeMessage(delivery())];
    const batch = [poison, ...good];
    // One queue() call with all three, then redeliveries of what was retried.
    await consumer.queue(
      { queue: "q", messages: batch, ackAll() {}, retryAll() {}, metadata: {} } as unknown as MessageBatch<unknown>,
      env,
    );
    expect(good.every((m) => m.acked && m.retries.length === 0)).toBe(true);
    poison.attempts++;
    const rest = await poison.deliverUntilSettled(consumer);
    expect(poison.attempts).toBe(4);
    expect(rest).toEqual(["retried", "retried", "dead_lettered"]);
    expect(poison.retries).toHaveLength(3);
    expect(calls).toBe(2 + 4);

    const [letter] = await deadLetters();
    expect(letter).toMatchObject({ subscription: "test-sub", reason: "max_retries", attempts: 4, event_id: "p-1" });
    expect(JSON.parse(String(letter?.body))).toEqual(poison.body);
    expect(String(letter?.error)).toContain("cannot handle this");
    expect(Number(letter?.first_failure_at)).toBeLessThanOrEqual(Number(letter?.last_failure_at));
    expect((await effects()).map((e) => e.event_id).sort()).toEqual(good.map((m) => (m.body as { event: { id: string } }).event.id).sort());
  });

  it("backoff ceilings grow exponentially and stay under the cap; jittered delays stay under the ceiling", () => {
    const ceilings = [1, 2, 3, 4, 5, 6, 7, 8].map((a) => backoffCeiling(a, 2, 60));
    expect(ceilings).toEqual([2, 4, 8, 16, 32, 60, 60, 60]);
    for (let attempts = 1; attempts <= 20; attempts++) {
      for (let i = 0; i < 50; i++) {
        const d = backoffSeconds(attempts, 2, 60);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(backoffCeiling(attempts, 2, 60));
      }
    }
    expect(backoffSeconds(3, 2, 60, () => 0.999)).toBe(8);
    expect(backoffSeconds(3, 2, 60, () => 0)).toBe(0);
    expect(backoffCeiling(100, 1, 43_200)).toBe(43_200);
    // Mean delay grows with attempts (full jitter: mean = ceiling / 2).
    const mean = (a: number) => Array.from({ length: 2000 }, () => backoffSeconds(a, 2, 60)).reduce((s, x) => s + x, 0) / 2000;
    expect(mean(4)).toBeGreaterThan(mean(2));
  });

  it("the SDK's retry delays follow the policy", async () => {
    const consumer = defineConsumer<Env>({
      subscription: "test-sub",
      db: (e) => e.DB,
      maxRetries: 5,
      backoff: { baseSeconds: 4, capSeconds: 20 },
      circuitBreaker: { failureThreshold: 100, openSeconds: 1 },
      handle: async () => {
        throw new Error("down");
      },
    });
    const m = new FakeMessage(delivery());
    await m.deliverUntilSettled(consumer);
    expect(m.retries).toHaveLength(5);
    m.retries.forEach((delay, i) => {
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThanOrEqual(backoffCeiling(i + 1, 4, 20));
    });
  });

  it("permanent errors and schema failures skip the retries", async () => {
    const consumer = defineConsumer<Env, { n: number }>({
      subscription: "test-sub",
      db: (e) => e.DB,
      maxRetries: 5,
      schema: z.object({ n: z.number().int().positive() }),
      handle: async (event) => {
        if (event.data.n === 7) throw new PermanentError("seven is not allowed");
        return [];
      },
    });
    const permanent = new FakeMessage(
      delivery({ sequence: 7, event: { specversion: "1.0", id: "seven", source: "/t", type: "t", data: { n: 7 } } }),
    );
    const invalid = new FakeMessage(delivery({ event: { specversion: "1.0", id: "neg", source: "/t", type: "t", data: { n: -1 } } }));
    const garbage = new FakeMessage({ hello: "not a delivery" });
    expect(await permanent.deliverUntilSettled(consumer)).toEqual(["dead_lettered"]);
    expect(await invalid.deliverUntilSettled(consumer)).toEqual(["dead_lettered"]);
    expect(await garbage.deliverUntilSettled(consumer)).toEqual(["dead_lettered"]);
    const letters = await deadLetters();
    expect(letters.map((l) => l.reason).sort()).toEqual(["invalid_message", "permanent", "permanent"]);
    expect(letters.every((l) => l.attempts === 1)).toBe(true);
  });
});

describe("consumer SDK: exactly-once effects", () => {
  it("a crash after a partial effect, then redelivery, applies the effect once", async () => {
    let crash = true;
    const consumer = defineConsumer<Env>({
      subscription: "test-sub",
      db: (e) => e.DB,
      maxRetries: 3,
      handle: async (event, { db, delivery: d }) => {
        if (crash) {
          crash = false;
          // A partial effect outside the batch would be at-least-once; effects returned to the SDK
          // are not applied at all when the handler throws.
          throw new Error("crashed before ack");
        }
        return [effect(db, event, d.sequence), effect(db, { id: `${event.id}-second` }, d.sequence)];
      },
    });
    const m = new FakeMessage(delivery());
    expect(await m.deliverUntilSettled(consumer)).toEqual(["retried", "handled"]);
    expect(await effects()).toHaveLength(2);
  });

  it("effects committed but the ack lost (crash before ack): the redelivery is a no-op", async () => {
    const consumer = defineConsumer<Env>({
      subscription: "test-sub",
      db: (e) => e.DB,
      maxRetries: 3,
      handle: async (event, { db, delivery: d }) => [effect(db, event, d.sequence)],
    });
    const body = delivery();
    const first = new FakeMessage(body);
    first.ack = () => undefined; // the isolate died between the D1 commit and the ack
    expect(await consumer.process(first, env)).toBe("handled");
    const redelivered = new FakeMessage(body);
    redelivered.attempts = 2;
    expect(await consumer.process(redelivered, env)).toBe("duplicate");
    expect(redelivered.acked).toBe(true);
    expect((await effects()).filter((e) => e.sequence === body.sequence)).toHaveLength(1);
  });

  it("forced duplicate deliveries, sequential and concurrent, leave the read state unchanged", async () => {
    const consumer = defineConsumer<Env>({
      subscription: "test-sub",
      db: (e) => e.DB,
      maxRetries: 3,
      handle: async (event, { db, delivery: d }) => [effect(db, event, d.sequence)],
    });
    const body = delivery();
    expect(await new FakeMessage(body).deliverUntilSettled(consumer)).toEqual(["handled"]);
    const after = await effects();
    expect(await new FakeMessage(body).deliverUntilSettled(consumer)).toEqual(["duplicate"]);
    const concurrent = await Promise.all(Array.from({ length: 10 }, () => new FakeMessage(body).deliverUntilSettled(consumer)));
    expect(concurrent.flat().every((o) => o === "duplicate")).toBe(true);
    expect(await effects()).toEqual(after);

    // Concurrent first deliveries: exactly one commits its effects.
    const fresh = delivery();
    const outcomes = (await Promise.all(Array.from({ length: 8 }, () => new FakeMessage(fresh).deliverUntilSettled(consumer)))).flat();
    expect(outcomes.filter((o) => o === "handled")).toHaveLength(1);
    expect((await effects()).filter((e) => e.sequence === fresh.sequence)).toHaveLength(1);
  });
});

describe("consumer SDK: ordering mode partition", () => {
  it("out-of-order deliveries are applied in sequence order; older and duplicate sequences change nothing", async () => {
    const consumer = defineConsumer<Env>({
      subscription: "test-sub",
      db: (e) => e.DB,
      maxRetries: 50,
      ordering: "partition",
      handle: async (event, { db, delivery: d }) => [effect(db, event, d.sequence)],
    });
    // A filtered stream: sequences 2, 5, 6, 9 are this subscription's, chained by prev.
    const chain = [
      { sequence: 2, prev: 0 },
      { sequence: 5, prev: 2 },
      { sequence: 6, prev: 5 },
      { sequence: 9, prev: 6 },
    ].map((p) => delivery({ ...p, partition: 3 }));
    const arrival = [chain[3], chain[1], chain[2], chain[0]];
    const pending = arrival.map((body) => new FakeMessage(body));
    // Deliver in arrival order, redelivering whatever was deferred, until all are settled.
    for (let round = 0; round < 10 && pending.some((m) => !m.acked); round++) {
      for (const m of pending) {
        if (m.acked) continue;
        await consumer.process(m, env);
        m.attempts++;
      }
    }
    expect(pending.every((m) => m.acked)).toBe(true);
    expect((await effects()).map((e) => e.sequence)).toEqual([2, 5, 6, 9]);
    // Late duplicates of old sequences are acknowledged without effect.
    expect(await new FakeMessage(chain[1]).deliverUntilSettled(consumer)).toEqual(["duplicate"]);
    const cp = await env.DB.prepare("SELECT sequence FROM checkpoints WHERE subscription = 'test-sub' AND partition = 3").first<{
      sequence: number;
    }>();
    expect(cp?.sequence).toBe(9);
    expect(await effects()).toHaveLength(4);
  });

  it("ordering none: the checkpoint is the highest contiguous settled sequence", async () => {
    const consumer = defineConsumer<Env>({
      subscription: "test-sub",
      db: (e) => e.DB,
      maxRetries: 0,
      handle: async (event, { db, delivery: d }) => {
        if (event.type === "bad") throw new Error("nope");
        return [effect(db, event, d.sequence)];
      },
    });
    const chain = [1, 2, 3, 4, 5].map((s) =>
      delivery({
        sequence: s,
        prev: s - 1,
        partition: 1,
        event: { specversion: "1.0", id: `c-${s}`, source: "/t", type: s === 3 ? "bad" : "ok" },
      }),
    );
    const cp = async () =>
      (
        await env.DB.prepare("SELECT sequence FROM checkpoints WHERE subscription = 'test-sub' AND partition = 1").first<{
          sequence: number;
        }>()
      )?.sequence;
    await new FakeMessage(chain[0]).deliverUntilSettled(consumer);
    await new FakeMessage(chain[1]).deliverUntilSettled(consumer);
    await new FakeMessage(chain[3]).deliverUntilSettled(consumer);
    expect(await cp()).toBe(2);
    // Sequence 3 is dead-lettered (maxRetries 0): settled, so the checkpoint moves past it.
    expect(await new FakeMessage(chain[2]).deliverUntilSettled(consumer)).toEqual(["dead_lettered"]);
    expect(await cp()).toBe(4);
    await new FakeMessage(chain[4]).deliverUntilSettled(consumer);
    expect(await cp()).toBe(5);
  });
});

describe("consumer SDK: replayed messages", () => {
  const replay = { jobId: "rpl_test", chain: false };
  const checkpoint = async (partition: number) =>
    (
      await env.DB.prepare("SELECT sequence FROM checkpoints WHERE subscription = 'test-sub' AND partition = ?")
        .bind(partition)
        .first<{ sequence: number }>()
    )?.sequence ?? 0;

  it("an ordinary replay fills in only what the subscription has passed, and never stalls its order chain", async () => {
    const consumer = defineConsumer<Env>({
      subscription: "test-sub",
      db: (e) => e.DB,
      maxRetries: 5,
      ordering: "partition",
      handle: async (event, { db, delivery: d }) => [effect(db, event, d.sequence)],
    });
    const live = [1, 2, 3].map((sequence) => delivery({ sequence, prev: sequence - 1, partition: 5 }));
    expect(await new FakeMessage(live[0]).deliverUntilSettled(consumer)).toEqual(["handled"]);
    // Beyond the checkpoint: still on its way live, so the replay leaves it alone.
    expect(await new FakeMessage({ ...live[1], replay }).deliverUntilSettled(consumer)).toEqual(["skipped"]);
    // At or below it and already applied: a counted duplicate.
    expect(await new FakeMessage({ ...live[0], replay }).deliverUntilSettled(consumer)).toEqual(["duplicate"]);
    const stats = await env.DB.prepare("SELECT replay_duplicates FROM subscription_stats WHERE subscription = 'test-sub'").first();
    expect(stats).toEqual({ replay_duplicates: 1 });
    // The live chain goes on as if the replay had not happened.
    expect(await new FakeMessage(live[1]).deliverUntilSettled(consumer)).toEqual(["handled"]);
    expect(await new FakeMessage(live[2]).deliverUntilSettled(consumer)).toEqual(["handled"]);
    expect(await checkpoint(5)).toBe(3);
    // Passed but lost (its record gone, e.g. state restored from a backup): the replay applies it
    // outside the chain, and the checkpoint does not move back or sideways.
    await env.DB.prepare("DELETE FROM processed_events WHERE subscription = 'test-sub' AND sequence = 2 AND partition = 5").run();
    await env.DB.prepare("DELETE FROM test_effects WHERE sequence = 2").run();
    expect(await new FakeMessage({ ...live[1], replay }).deliverUntilSettled(consumer)).toEqual(["handled"]);
    expect((await effects()).map((e) => e.sequence)).toEqual([1, 3, 2]);
    expect(await checkpoint(5)).toBe(3);
  });

  it("a history replay (a run the log will never deliver live) is applied as it comes, outside the order chain, once", async () => {
    const consumer = defineConsumer<Env>({
      subscription: "test-sub",
      db: (e) => e.DB,
      maxRetries: 5,
      ordering: "partition",
      handle: async (event, { db, delivery: d }) => [effect(db, event, d.sequence)],
    });
    // The subscription began routing at 4: its live chain (4, 5) starts with prev 0.
    const live = [4, 5].map((sequence) => delivery({ sequence, prev: sequence === 4 ? 0 : 4, partition: 6 }));
    expect(await new FakeMessage(live[0]).deliverUntilSettled(consumer)).toEqual(["handled"]);
    // Events 1–3 were committed before it existed: a replay sends them as one run marked history.
    const history = [1, 2, 3].map((sequence) => delivery({ sequence, partition: 6 }));
    const run = (items: Delivery[]) => ({
      v: 2,
      subscription: "test-sub",
      topic: "events",
      partition: 6,
      prev: 0,
      replay: { jobId: "rpl_history", chain: false, history: true },
      events: items.map((d) => ({ sequence: d.sequence, committedAt: d.committedAt, event: d.event })),
    });
    const message = new FakeMessage(run(history));
    await consumer.queue(
      { queue: "q", messages: [message], ackAll() {}, retryAll() {}, metadata: {} } as unknown as MessageBatch<unknown>,
      env,
    );
    expect(message.acked).toBe(true);
    // Applied although beyond the checkpoint's chain, in the order they came; the chain is untouched.
    expect((await effects()).map((e) => e.sequence)).toEqual([4, 1, 2, 3]);
    expect(await checkpoint(6)).toBe(4);
    const records = await env.DB.prepare("SELECT sequence, prev FROM processed_events WHERE partition = 6 ORDER BY sequence").all();
    expect(records.results).toEqual([
      { sequence: 1, prev: -1 },
      { sequence: 2, prev: -1 },
      { sequence: 3, prev: -1 },
      { sequence: 4, prev: 0 },
    ]);
    // A second copy of the run (a resumed job) is absorbed; the live chain goes on.
    const again = new FakeMessage(run(history));
    await consumer.queue(
      { queue: "q", messages: [again], ackAll() {}, retryAll() {}, metadata: {} } as unknown as MessageBatch<unknown>,
      env,
    );
    expect(again.acked).toBe(true);
    expect(await new FakeMessage(live[1]).deliverUntilSettled(consumer)).toEqual(["handled"]);
    expect((await effects()).map((e) => e.sequence)).toEqual([4, 1, 2, 3, 5]);
    expect(await checkpoint(6)).toBe(5);
    const stats = await env.DB.prepare("SELECT replay_duplicates FROM subscription_stats WHERE subscription = 'test-sub'").first();
    expect(stats).toEqual({ replay_duplicates: 3 });
  });

  it("a replay with replays: always runs the handler again for an event already settled", async () => {
    let calls = 0;
    const consumer = defineConsumer<Env>({
      subscription: "test-sub",
      db: (e) => e.DB,
      maxRetries: 5,
      replays: "always",
      handle: async () => {
        calls++;
        return [];
      },
    });
    const body = delivery({ sequence: 1, prev: 0, partition: 6 });
    expect(await new FakeMessage(body).deliverUntilSettled(consumer)).toEqual(["handled"]);
    expect(await new FakeMessage({ ...body, replay }).deliverUntilSettled(consumer)).toEqual(["handled"]);
    expect(await new FakeMessage(body).deliverUntilSettled(consumer)).toEqual(["duplicate"]);
    expect(calls).toBe(2);
  });
});

describe("circuit breaker", () => {
  it("opens after N consecutive failures, holds messages without calling the handler, then probes", async () => {
    let now = 1_000_000;
    const breaker = new CircuitBreaker("s", { failureThreshold: 3, openSeconds: 10 }, () => now);
    for (let i = 0; i < 2; i++) await breaker.failure();
    expect(breaker.state).toBe("closed");
    await breaker.failure();
    expect(breaker.state).toBe("open");
    expect(breaker.shouldHold()).toBe(10);
    now += 4_000;
    expect(breaker.shouldHold()).toBe(6);
    now += 6_000;
    expect(breaker.shouldHold()).toBe(0);
    expect(breaker.state).toBe("half_open");
    expect(breaker.shouldHold()).toBeGreaterThan(0);
    await breaker.failure();
    expect(breaker.state).toBe("open");
    now += 10_000;
    expect(breaker.shouldHold()).toBe(0);
    await breaker.success();
    expect(breaker.state).toBe("closed");
    expect(breaker.shouldHold()).toBe(0);
  });

  it("while open, the SDK retries without calling handle and records the state", async () => {
    let calls = 0;
    const consumer = defineConsumer<Env>({
      subscription: "test-sub",
      db: (e) => e.DB,
      maxRetries: 100,
      circuitBreaker: { failureThreshold: 2, openSeconds: 30 },
      handle: async () => {
        calls++;
        throw new Error("dependency down");
      },
    });
    await consumer.process(new FakeMessage(delivery()), env);
    await consumer.process(new FakeMessage(delivery()), env);
    expect(consumer.breaker.state).toBe("open");
    const held = new FakeMessage(delivery());
    expect(await consumer.process(held, env)).toBe("deferred");
    expect(held.retries[0]).toBeGreaterThan(0);
    expect(calls).toBe(2);
    const row = await env.DB.prepare("SELECT state, consecutive_failures FROM circuit_state WHERE subscription = 'test-sub'").first();
    expect(row).toEqual({ state: "open", consecutive_failures: 2 });
  });

  it("a half-open probe that turns out to be a duplicate lets the next message probe", async () => {
    let failing = true;
    const consumer = defineConsumer<Env>({
      subscription: "test-sub",
      db: (e) => e.DB,
      maxRetries: 100,
      circuitBreaker: { failureThreshold: 1, openSeconds: 1 },
      handle: async (event, { db, delivery: d }) => {
        if (failing) throw new Error("down");
        return [effect(db, event, d.sequence)];
      },
    });
    failing = false;
    const done = delivery();
    expect(await consumer.process(new FakeMessage(done), env)).toBe("handled");
    failing = true;
    expect(await consumer.process(new FakeMessage(delivery()), env)).toBe("retried");
    expect(consumer.breaker.state).toBe("open");
    failing = false;
    await new Promise((r) => setTimeout(r, 1100));
    // The probe is a redelivery of an event already handled: no verdict on the dependency.
    expect(await consumer.process(new FakeMessage(done), env)).toBe("duplicate");
    expect(await consumer.process(new FakeMessage(delivery()), env)).toBe("handled");
    expect(consumer.breaker.state).toBe("closed");
  });
});

describe("consumer SDK: an id reused in another partition", () => {
  it("is not applied twice, and its position still settles so the checkpoint moves on", async () => {
    const consumer = defineConsumer<Env>({
      subscription: "test-sub",
      db: (e) => e.DB,
      maxRetries: 3,
      handle: async (event, { db, delivery: d }) => [effect(db, event, d.sequence)],
    });
    const same = { specversion: "1.0", id: "reused", source: "/t", type: "t" };
    expect(await consumer.process(new FakeMessage(delivery({ partition: 1, sequence: 1, prev: 0, event: same })), env)).toBe("handled");
    expect(await consumer.process(new FakeMessage(delivery({ partition: 2, sequence: 1, prev: 0, event: same })), env)).toBe("duplicate");
    expect(await consumer.process(new FakeMessage(delivery({ partition: 2, sequence: 2, prev: 1 })), env)).toBe("handled");
    expect((await effects()).filter((e) => e.event_id === "reused")).toHaveLength(1);
    const cp = await env.DB.prepare("SELECT sequence FROM checkpoints WHERE subscription = 'test-sub' AND partition = 2").first<{
      sequence: number;
    }>();
    expect(cp?.sequence).toBe(2);
  });

  it("every delivery of it records its attempt, also a redelivery whose settle batch the settled position refuses", async () => {
    const consumer = defineConsumer<Env>({
      subscription: "reused-attempts",
      db: (e) => e.DB,
      maxRetries: 3,
      handle: async (event, { db, delivery: d }) => [effect(db, event, d.sequence)],
    });
    const same = { specversion: "1.0", id: "reused-attempts", source: "/t", type: "t" };
    const at = (partition: number) => delivery({ subscription: "reused-attempts", partition, sequence: 1, prev: 0, event: same });
    expect(await consumer.process(new FakeMessage(at(1)), env)).toBe("handled");
    const reused = new FakeMessage(at(2));
    expect(await consumer.process(reused, env)).toBe("duplicate");
    reused.attempts++;
    expect(await consumer.process(reused, env)).toBe("duplicate");
    // Two copies in one batch: the second settle of the position fails, as above.
    const copies = [new FakeMessage(at(3)), new FakeMessage(at(3))];
    const batch = { queue: "q", messages: copies, ackAll() {}, retryAll() {}, metadata: {} } as unknown as MessageBatch<unknown>;
    await consumer.queue(batch, env);
    expect(copies.every((m) => m.acked)).toBe(true);
    const attempts = await env.DB.prepare(
      "SELECT partition, attempt, outcome FROM delivery_attempts WHERE subscription = 'reused-attempts' ORDER BY partition, attempt, id",
    ).all();
    // The first-run success writes none: its settlement stands for it (ADR 0036).
    expect(attempts.results).toEqual([
      { partition: 2, attempt: 1, outcome: "duplicate" },
      { partition: 2, attempt: 2, outcome: "duplicate" },
      { partition: 3, attempt: 1, outcome: "duplicate" },
      { partition: 3, attempt: 1, outcome: "duplicate" },
    ]);
  });
});

describe("consumer SDK: redriven dead letters", () => {
  /** The redrive route's message for a letter (its body, marked as a redrive of it). */
  const redriveOf = (letter: Record<string, unknown>) => ({ ...JSON.parse(String(letter.body)), redrive: { deadLetterId: letter.id } });
  const brokenUntilFixed = (replays: "once" | "always" = "once") => {
    const state = { broken: true };
    const consumer = defineConsumer<Env>({
      subscription: "test-sub",
      db: (e) => e.DB,
      maxRetries: 3,
      replays,
      handle: async (event, { db, delivery: d }) => {
        if (state.broken) throw new PermanentError("still broken");
        return [effect(db, event, d.sequence)];
      },
    });
    return { consumer, state };
  };
  /** As the redrive route does (the letter leaves the DLQ once the queue took its message), then two copies of that message. */
  const redriveTwice = async (consumer: ReturnType<typeof brokenUntilFixed>["consumer"]) => {
    const [letter] = await deadLetters();
    if (letter === undefined) throw new Error("no dead letter");
    await env.DB.prepare("DELETE FROM dead_letters WHERE id = ?").bind(letter.id).run();
    const message = redriveOf(letter);
    const first = await consumer.process(new FakeMessage(message), env);
    return { letter, outcomes: [first, await consumer.process(new FakeMessage(message), env)] };
  };

  it("a redriven letter that fails again goes back to the DLQ once; fixed, the next redrive applies it once", async () => {
    const { consumer, state } = brokenUntilFixed();
    const original = delivery({ partition: 4, sequence: 1, prev: 0 });
    expect(await consumer.process(new FakeMessage(original), env)).toBe("dead_lettered");
    const { letter, outcomes } = await redriveTwice(consumer);
    // The second copy of that redrive message changes nothing.
    expect(outcomes).toEqual(["dead_lettered", "duplicate"]);
    const again = await deadLetters();
    expect(again.map((l) => [l.reason, l.sequence, l.event_id])).toEqual([["permanent", 1, original.event?.id]]);
    expect(again[0]?.id).not.toBe(letter.id);

    state.broken = false;
    const [second] = again;
    if (second === undefined) throw new Error("no dead letter");
    await env.DB.prepare("DELETE FROM dead_letters WHERE id = ?").bind(second.id).run();
    expect(await consumer.process(new FakeMessage(redriveOf(second)), env)).toBe("handled");
    expect(await consumer.process(new FakeMessage(redriveOf(second)), env)).toBe("duplicate");
    expect((await effects()).map((e) => e.event_id)).toEqual([original.event?.id]);
    expect(await deadLetters()).toEqual([]);
  });

  it("a redriven letter that fails before the route has removed the original still ends as one letter", async () => {
    const { consumer } = brokenUntilFixed();
    expect(await consumer.process(new FakeMessage(delivery({ partition: 5, sequence: 1, prev: 0 })), env)).toBe("dead_lettered");
    const [letter] = await deadLetters();
    if (letter === undefined) throw new Error("no dead letter");
    expect(await consumer.process(new FakeMessage(redriveOf(letter)), env)).toBe("dead_lettered");
    await env.DB.prepare("DELETE FROM dead_letters WHERE id = ?").bind(letter.id).run();
    expect((await deadLetters()).map((l) => l.reason)).toEqual(["permanent"]);
  });

  it("a redriven letter of a replay (replays: always) that fails again is recorded once; a second copy is a duplicate", async () => {
    const { consumer, state } = brokenUntilFixed("always");
    state.broken = false;
    const live = delivery({ partition: 7, sequence: 1, prev: 0 });
    expect(await consumer.process(new FakeMessage(live), env)).toBe("handled");
    state.broken = true;
    const replayed = { ...live, replay: { jobId: "job-1", chain: false } };
    expect(await consumer.process(new FakeMessage(replayed), env)).toBe("dead_lettered");
    expect((await redriveTwice(consumer)).outcomes).toEqual(["dead_lettered", "duplicate"]);
    expect((await deadLetters()).map((l) => l.reason)).toEqual(["permanent"]);
  });

  it("a redelivery of an event already handled that now fails a permanent check is a duplicate, not a dead letter", async () => {
    const handles = (schema?: z.ZodType) =>
      defineConsumer<Env>({
        subscription: "test-sub",
        db: (e) => e.DB,
        maxRetries: 3,
        ...(schema !== undefined && { schema }),
        handle: async (event, { db, delivery: d }) => [effect(db, event, d.sequence)],
      });
    const d = delivery({ partition: 6, sequence: 1, prev: 0 });
    expect(await handles().process(new FakeMessage(d), env)).toBe("handled");
    // Deployed since with a data schema the event does not meet: the check runs before the
    // duplicate check, and must not claim a dead letter it does not write.
    expect(await handles(z.object({ n: z.string() })).process(new FakeMessage(d), env)).toBe("duplicate");
    expect(await deadLetters()).toEqual([]);
    expect((await effects()).map((e) => e.event_id)).toEqual([d.event?.id]);
  });
});

describe("consumer SDK: events sent by reference", () => {
  it("resolves an event that travelled as a reference from its partition log", async () => {
    const stored = event({ id: "by-ref", type: "big.thing", data: { payload: "x".repeat(1000) } });
    const [ack] = await expectAccepted(await postStructured("events", stored));
    const consumer = defineConsumer<Env>({
      subscription: "test-sub",
      db: (e) => e.DB,
      maxRetries: 3,
      resolveRef: resolveFromLog((e) => e.PARTITION_LOG),
      handle: async (ev, { db, delivery: d }) => {
        expect(ev).toMatchObject({ id: "by-ref", type: "big.thing", data: { payload: "x".repeat(1000) } });
        return [effect(db, ev, d.sequence)];
      },
    });
    const ref = { ...delivery({ partition: ack?.partition ?? -1, sequence: ack?.sequence ?? -1, prev: 0 }), ref: true as const };
    delete ref.event;
    expect(await consumer.process(new FakeMessage(ref), env)).toBe("handled");
    expect((await effects()).filter((e) => e.event_id === "by-ref")).toHaveLength(1);

    const gone = { ...ref, sequence: 999_999 };
    expect(await consumer.process(new FakeMessage(gone), env)).toBe("dead_lettered");
    const letter = await env.DB.prepare("SELECT reason, error FROM dead_letters WHERE sequence = 999999").first<{
      reason: string;
      error: string;
    }>();
    expect(letter?.reason).toBe("permanent");
    expect(letter?.error).toContain("no longer in the partition log");
  });
});
