import { env } from "cloudflare:workers";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { defineConsumer, PermanentError, resolveFromLog } from "../../sdk/consumer";
import type { Delivery } from "../../sdk/messages";
import { event, expectAccepted, postStructured } from "../helpers";
import { createEffectsTable, delivery, effect, effects, FakeMessage, resetConsumerState } from "./helpers";

/**
 * The consumer SDK with messages that are not plain live deliveries: replayed messages (history,
 * ordinary, `replays: always`), ids reused in another partition, redriven dead letters, and events
 * sent by reference.
 */

beforeAll(createEffectsTable);
beforeEach(resetConsumerState);

const deadLetters = async () =>
  (await env.DB.prepare("SELECT * FROM dead_letters ORDER BY dead_lettered_at").all<Record<string, unknown>>()).results;

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

describe("consumer SDK: an id reused in another partition", () => {
  const recordsEffects = (subscription: string) =>
    defineConsumer<Env>({
      subscription,
      db: (e) => e.DB,
      maxRetries: 3,
      handle: async (event, { db, delivery: d }) => [effect(db, event, d.sequence)],
    });

  it("is not applied twice, and its position still settles so the checkpoint moves on", async () => {
    const consumer = recordsEffects("test-sub");
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
    const consumer = recordsEffects("reused-attempts");
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
