import { env } from "cloudflare:workers";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { defineConsumer, PermanentError } from "../../sdk/consumer";
import { backoffCeiling, backoffSeconds, CircuitBreaker } from "../../sdk/consumer-policy";
import { createEffectsTable, delivery, effect, effects, FakeMessage, resetConsumerState } from "./helpers";

/**
 * The consumer SDK, message by message (`process`): retries and dead letters, exactly-once effects,
 * ordering, the circuit breaker. Replays, redrives, reused ids and events by reference are in
 * sdk-replays-redrives.test.ts; batch settlement in sdk-settle.test.ts and sdk-batch.test.ts.
 */

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
