import { env } from "cloudflare:workers";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Consumer, defineConsumer } from "../../sdk/consumer";
import type { Delivery, Run } from "../../sdk/messages";
import { recordDlqBatch } from "../../workers/platform/consumers/dead-letters";
import { createEffectsTable, delivery, effect, effects, FakeMessage, resetConsumerState } from "./helpers";

/**
 * Message v2 carries a run of consecutive events of one partition (ADR 0030, "Runs per message").
 * The SDK settles a run event by event: a poisoned event is retried and dead-lettered alone, the
 * rest of the run is handled once; old one-event messages are still understood beside runs.
 */

beforeAll(createEffectsTable);
beforeEach(resetConsumerState);

/** A run of `sequences` (consecutive in the chain) after `prev`, with ids `<prefix>-<sequence>`. */
function run(subscription: string, prefix: string, prev: number, sequences: number[]): Run {
  return {
    v: 2,
    subscription,
    topic: "events",
    partition: 0,
    prev,
    events: sequences.map((sequence) => ({
      sequence,
      committedAt: Date.now(),
      event: { specversion: "1.0", id: `${prefix}-${sequence}`, source: "/runs", type: "runs.test", data: { sequence } },
    })),
  };
}

const batchOf = (messages: FakeMessage[]) =>
  ({ queue: "q", messages, ackAll() {}, retryAll() {}, metadata: {} }) as unknown as MessageBatch<unknown>;

/** Delivers `messages` in batches as Queues would, again and again while some are retried, until all are acked. */
async function deliverAll(consumer: Consumer<Env>, messages: FakeMessage[], max = 20): Promise<number> {
  let deliveries = 0;
  let pending = messages;
  while (pending.length > 0 && deliveries < max) {
    const before = pending.map((m) => m.retries.length);
    await consumer.queue(batchOf(pending), env);
    deliveries++;
    pending = pending.filter((m, i) => {
      if (m.acked) return false;
      expect(m.retries.length, "neither acked nor retried").toBe((before[i] ?? 0) + 1);
      m.attempts++;
      return true;
    });
  }
  return deliveries;
}

function consumerWith(subscription: string, ordering: "none" | "partition", runs: Map<string, number>): Consumer<Env> {
  return defineConsumer<Env>({
    subscription,
    db: (e) => e.DB,
    ordering,
    maxRetries: 2,
    backoff: { baseSeconds: 1, capSeconds: 1 },
    handle: async (event, { db, delivery: d }) => {
      runs.set(event.id, (runs.get(event.id) ?? 0) + 1);
      if (event.id.endsWith("-13")) throw new Error("poison");
      return [effect(db, event, d.sequence)];
    },
  });
}

describe("runs per message", () => {
  for (const ordering of ["none", "partition"] as const) {
    it(`a run crossing a poisoned event (ordering ${ordering}): the rest handled once, the poison retried and dead-lettered alone`, async () => {
      const runs = new Map<string, number>();
      const name = `runs-${ordering}`;
      const consumer = consumerWith(name, ordering, runs);
      const message = new FakeMessage(run(name, name, 0, [11, 12, 13, 14, 15]));
      const deliveries = await deliverAll(consumer, [message]);
      // maxRetries 2: the poison's handler runs three times, so the run is delivered three times.
      expect(deliveries).toBe(3);
      expect(message.acked).toBe(true);
      expect(runs.get(`${name}-13`)).toBe(3);
      for (const s of [11, 12, 14, 15]) expect(runs.get(`${name}-${s}`), `event ${s}`).toBe(1);
      expect((await effects()).map((e) => e.event_id).sort()).toEqual([11, 12, 14, 15].map((s) => `${name}-${s}`));
      const letters = await env.DB.prepare("SELECT event_id, attempts, reason, body FROM dead_letters WHERE subscription = ?")
        .bind(name)
        .all<{ event_id: string; attempts: number; reason: string; body: string }>();
      expect(letters.results).toHaveLength(1);
      expect(letters.results[0]).toMatchObject({ event_id: `${name}-13`, attempts: 3, reason: "max_retries" });
      // The letter holds the event alone, as a one-event message a redrive can send.
      expect(JSON.parse(letters.results[0]?.body ?? "{}")).toMatchObject({ v: 1, sequence: 13, prev: 12 });
      const checkpoint = await env.DB.prepare("SELECT sequence FROM checkpoints WHERE subscription = ?")
        .bind(name)
        .first<{ sequence: number }>();
      // The whole run is settled (13 as a dead letter), so the checkpoint walked to its end.
      expect(checkpoint?.sequence).toBe(15);
      const settled = await env.DB.prepare("SELECT sequence, outcome FROM processed_events WHERE subscription = ? ORDER BY sequence")
        .bind(name)
        .all<{ sequence: number; outcome: string }>();
      expect(settled.results).toEqual([
        { sequence: 11, outcome: "handled" },
        { sequence: 12, outcome: "handled" },
        { sequence: 13, outcome: "dead_lettered" },
        { sequence: 14, outcome: "handled" },
        { sequence: 15, outcome: "handled" },
      ]);
    });
  }

  it("old (one event) and new (run) message shapes in one batch, and a copy of the run: each event handled once, in order", async () => {
    const runs = new Map<string, number>();
    const name = "runs-mixed";
    const consumer = consumerWith(name, "partition", runs);
    const single: Delivery = delivery({
      subscription: name,
      sequence: 1,
      prev: 0,
      event: { specversion: "1.0", id: `${name}-1`, source: "/runs", type: "runs.test" },
    });
    const messages = [
      new FakeMessage(run(name, name, 2, [3, 4])),
      new FakeMessage(single),
      new FakeMessage(run(name, name, 1, [2])),
      new FakeMessage(run(name, name, 2, [3, 4])),
    ];
    await deliverAll(consumer, messages);
    expect(messages.every((m) => m.acked)).toBe(true);
    expect([...runs.entries()].sort()).toEqual([1, 2, 3, 4].map((s) => [`${name}-${s}`, 1]));
    expect((await effects()).map((e) => e.sequence)).toEqual([1, 2, 3, 4]);
    const checkpoint = await env.DB.prepare("SELECT sequence FROM checkpoints WHERE subscription = ?")
      .bind(name)
      .first<{ sequence: number }>();
    expect(checkpoint?.sequence).toBe(4);
  });

  it("a run that is not a valid delivery is dead-lettered once as invalid", async () => {
    const consumer = consumerWith("runs-invalid", "none", new Map());
    const broken = new FakeMessage({ ...run("runs-invalid", "x", 5, [6, 7]), prev: 9 });
    await deliverAll(consumer, [broken]);
    expect(broken.acked).toBe(true);
    const letters = await env.DB.prepare("SELECT reason FROM dead_letters WHERE subscription = 'runs-invalid'").all<{ reason: string }>();
    expect(letters.results).toEqual([{ reason: "invalid_message" }]);
  });

  it("a run moved to the DLQ is recorded event by event; events already settled are not letters", async () => {
    const name = "runs-dlq";
    const consumer = consumerWith(name, "none", new Map());
    await deliverAll(consumer, [new FakeMessage(run(name, name, 0, [1]))]);
    const moved = new FakeMessage(run(name, name, 0, [1, 2, 3]));
    moved.attempts = 4;
    await recordDlqBatch(batchOf([moved]), env, name);
    expect(moved.acked).toBe(true);
    const letters = await env.DB.prepare("SELECT event_id, sequence, body FROM dead_letters WHERE subscription = ? ORDER BY sequence")
      .bind(name)
      .all<{ event_id: string; sequence: number; body: string }>();
    expect(letters.results.map((l) => [l.event_id, l.sequence])).toEqual([
      [`${name}-2`, 2],
      [`${name}-3`, 3],
    ]);
    expect(JSON.parse(letters.results[1]?.body ?? "{}")).toMatchObject({ v: 1, sequence: 3, prev: 2 });
  });
});
