import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { PartitionLog } from "../../durable-objects/partition-log";
import { defineConsumer } from "../../sdk/consumer";
import { type DeliveryMessage, sequencesOf } from "../../sdk/messages";
import { testBindings } from "../bindings";
import { delivery, FakeMessage } from "../consumer/helpers";
import { event, expectAccepted, partitionKeyFor, postBatch, postStructured, request, topicConfig, waitFor } from "../helpers";

/**
 * The log drives delivery (ADR 0030): a message the queue loses after the relay's sendBatch is
 * not an event lost. These tests drop messages after the queue "accepted" them (the partition's
 * `send` seam resolves without sending) and shorten the redelivery timeout.
 */

const PARTITIONS = topicConfig("events").partitions;
const REDELIVERY_MS = 3_000;

/** Makes `partition`'s relay lose every message while `drop()` says so; returns how many it lost. */
async function loseMessages(partition: number, drop: (bodies: DeliveryMessage[]) => boolean) {
  const lost: number[] = [];
  await runInDurableObject(env.PARTITION_LOG.getByName(`events/${partition}`), (instance: PartitionLog) => {
    const original = instance.testing.send;
    instance.testing.redeliveryMs = REDELIVERY_MS;
    instance.testing.send = async (binding, bodies) => {
      if (drop(bodies)) {
        lost.push(...bodies.flatMap(sequencesOf));
        return; // accepted, then lost in transit
      }
      await original(binding, bodies);
    };
  });
  return lost;
}

const settledRows = async (subscription: string, ids: string[]) =>
  (
    await env.DB.prepare(
      `SELECT event_id, outcome, sequence FROM processed_events WHERE subscription = ? AND event_id IN (${ids.map(() => "?").join(",")})`,
    )
      .bind(subscription, ...ids)
      .all<{ event_id: string; outcome: string; sequence: number }>()
  ).results;

const stats = (partition: number) => env.PARTITION_LOG.getByName(`events/${partition}`).stats();

describe("log-driven redelivery", () => {
  it("messages lost after sendBatch are sent again: every event handled exactly once, no operator action", async () => {
    const key = partitionKeyFor(1, PARTITIONS, "lost-unordered");
    let dropping = true;
    const lost = await loseMessages(1, (bodies) => dropping && bodies.every((b) => b.subscription === "activity"));
    const events = Array.from({ length: 12 }, (_, i) => event({ id: `lost-${i}`, type: "redelivery.lost", partitionkey: key }));
    for (const e of events) await expectAccepted(await postStructured("events", e));
    await waitFor(
      async () => lost.length,
      (n) => n >= 12,
      5_000,
    );
    dropping = false;
    expect(new Set(lost).size).toBe(12);
    // Before the timeout: the status tells the truth about where they are.
    expect((await stats(1)).inTransit?.activity ?? 0).toBeGreaterThanOrEqual(12);
    const sequence = lost[0] ?? 0;
    const trace = (await (await request(`/v1/topics/events/partitions/1/events/${sequence}/trace`)).json()) as {
      subscriptions: { subscription: string; state: string; delivery?: { sends: number } }[];
    };
    expect(trace.subscriptions.find((t) => t.subscription === "activity")).toMatchObject({ state: "in_transit", delivery: { sends: 1 } });
    const status = (await (await request("/v1/subscriptions/activity")).json()) as { partitions: { partition: number; lag: number }[] };
    expect(status.partitions.find((p) => p.partition === 1)?.lag).toBeGreaterThanOrEqual(12);

    const ids = events.map((e) => String(e.id));
    const rows = await waitFor(
      () => settledRows("activity", ids),
      (r) => r.length === 12,
    );
    expect(rows.map((r) => r.outcome)).toEqual(Array(12).fill("handled"));
    // Exactly once: the projection counted each event one time.
    const applied = await env.DB.prepare(
      "SELECT events FROM event_type_activity WHERE topic = 'events' AND type = 'redelivery.lost'",
    ).first<{
      events: number;
    }>();
    expect(applied?.events).toBe(12);
    const after = await waitFor(
      () => stats(1),
      (s) => (s.inTransit.activity ?? 0) === 0,
    );
    // The log sent them again and then saw them acknowledged (the rows are gone).
    expect(after.redelivered.activity ?? 0).toBeGreaterThanOrEqual(12);
    expect(after.inTransit.activity ?? 0).toBe(0);
    expect(after.outbox.activity ?? 0).toBe(0);
    const letters = await env.DB.prepare("SELECT COUNT(*) AS n FROM dead_letters WHERE event_id LIKE 'lost-%'").first<{ n: number }>();
    expect(letters?.n).toBe(0);
    const handled = (await (await request(`/v1/topics/events/partitions/1/events/${sequence}/trace`)).json()) as typeof trace;
    expect(handled.subscriptions.find((t) => t.subscription === "activity")?.state).toBe("handled");
  });

  it("an ordered subscription whose predecessor was lost keeps going: the gap is repaired, nothing is dead-lettered", async () => {
    const name = "redeliver-ordered";
    const created = await request("/v1/subscriptions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        name,
        topic: "events",
        ordering: "partition",
        maxRetries: 2,
        filter: { type: ["redelivery.ordered"] },
        webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/${name}` },
      }),
    });
    expect(created.status).toBe(201);
    const key = partitionKeyFor(2, PARTITIONS, "lost-ordered");
    // The first event's message is lost; its successors travel normally and must wait for it.
    let first = true;
    const lost = await loseMessages(2, (bodies) => {
      if (!first || !bodies.some((b) => b.subscription === name)) return false;
      first = false;
      return true;
    });
    const events = Array.from({ length: 6 }, (_, i) => event({ id: `ordered-${i}`, type: "redelivery.ordered", partitionkey: key }));
    const acks = [];
    for (const e of events) acks.push(...(await expectAccepted(await postStructured("events", e))));
    expect(lost).toEqual([acks[0]?.sequence]);

    const ids = events.map((e) => String(e.id));
    const rows = await waitFor(
      () => settledRows(name, ids),
      (r) => r.length === 6,
    );
    expect(rows.map((r) => r.outcome)).toEqual(Array(6).fill("handled"));
    // Received in commit order (a copy the log sent again may arrive twice: webhooks are
    // at-least-once and carry a stable webhook-id; the first arrival of each is in order).
    const received = (await (await fetch(`${testBindings.WEBHOOK_SINK}/control/${name}`)).json()) as { body: string }[];
    const order = [...new Set(received.map((r) => String((JSON.parse(r.body) as { id: string }).id)))];
    expect(order).toEqual(ids);
    const letters = await env.DB.prepare("SELECT COUNT(*) AS n FROM dead_letters WHERE subscription = ?").bind(name).first<{ n: number }>();
    expect(letters?.n).toBe(0);
    const checkpoint = await env.DB.prepare(
      "SELECT sequence FROM checkpoints WHERE subscription = ? AND topic = 'events' AND partition = 2",
    )
      .bind(name)
      .first<{ sequence: number }>();
    expect(checkpoint?.sequence).toBe(acks.at(-1)?.sequence);
  });

  it("a message waiting for its predecessor longer than its queue allows is parked (acked), never dead-lettered", async () => {
    // maxRetries 2 of the queue's 4: two deliveries may be spent waiting, the third parks it.
    const consumer = defineConsumer<Env>({
      subscription: "parking",
      db: (e) => e.DB,
      ordering: "partition",
      maxRetries: 2,
      queueMaxRetries: 4,
      handle: async () => [],
    });
    const waiting = new FakeMessage(delivery({ subscription: "parking", sequence: 7, prev: 6 }));
    expect(await waiting.deliverUntilSettled(consumer)).toEqual(["deferred", "deferred", "parked"]);
    expect(waiting.acked).toBe(true);
    const letters = await env.DB.prepare("SELECT COUNT(*) AS n FROM dead_letters WHERE subscription = 'parking'").first<{ n: number }>();
    expect(letters?.n).toBe(0);
    // When the log sends it again after its predecessor, it is handled.
    await new FakeMessage(delivery({ subscription: "parking", sequence: 6, prev: 0 })).deliverUntilSettled(consumer);
    expect(await new FakeMessage(waiting.body).deliverUntilSettled(consumer)).toEqual(["handled"]);
  });

  it("a dead letter's attempts counts handler runs, not deliveries spent waiting for a predecessor", async () => {
    const consumer = defineConsumer<Env>({
      subscription: "letter-runs",
      db: (e) => e.DB,
      ordering: "partition",
      maxRetries: 1,
      backoff: { baseSeconds: 1, capSeconds: 1 },
      handle: async (event) => {
        if (event.id.startsWith("poison")) throw new Error("always fails");
        return [];
      },
    });
    const poison = new FakeMessage(
      delivery({
        subscription: "letter-runs",
        sequence: 3,
        prev: 2,
        event: { specversion: "1.0", id: "poison-3", source: "/t", type: "t" },
      }),
    );
    // Two deliveries spent waiting for sequence 2, then it arrives.
    expect(await consumer.process(poison, env)).toBe("deferred");
    poison.attempts++;
    expect(await consumer.process(poison, env)).toBe("deferred");
    await new FakeMessage(delivery({ subscription: "letter-runs", sequence: 2, prev: 0 })).deliverUntilSettled(consumer);
    poison.attempts++;
    expect(await poison.deliverUntilSettled(consumer)).toEqual(["retried", "dead_lettered"]);
    expect(poison.attempts).toBe(4);
    const letter = await env.DB.prepare("SELECT attempts FROM dead_letters WHERE subscription = 'letter-runs'").first<{
      attempts: number;
    }>();
    expect(letter?.attempts).toBe(2);
  });

  it("the relay sends runs: consecutive events of a partition in one message, cut by count and inline bytes", async () => {
    const partition = 3;
    const key = partitionKeyFor(partition, PARTITIONS, "runs");
    const sent: DeliveryMessage[] = [];
    await runInDurableObject(env.PARTITION_LOG.getByName(`events/${partition}`), (instance: PartitionLog) => {
      const original = instance.testing.send;
      instance.testing.send = async (binding, bodies) => {
        sent.push(...bodies.filter((b) => b.subscription === "activity"));
        await original(binding, bodies);
      };
    });
    const small = Array.from({ length: 30 }, (_, i) => event({ id: `run-${i}`, type: "runs.small", partitionkey: key }));
    const acks = await expectAccepted(await postBatch("events", small));
    // Three events of ~40 KB: two fit the 96 KB of inline text a run may carry, the third starts the next run.
    const large = Array.from({ length: 3 }, (_, i) =>
      event({ id: `run-large-${i}`, type: "runs.large", partitionkey: key, data: { pad: "x".repeat(40_000) } }),
    );
    const largeAcks = await expectAccepted(await postBatch("events", large));
    const ids = [...small, ...large].map((e) => String(e.id));
    const rows = await waitFor(
      () => settledRows("activity", ids),
      (r) => r.length === ids.length,
    );
    expect(rows.every((r) => r.outcome === "handled")).toBe(true);
    const runs = sent.filter((b) => b.v === 2);
    expect(runs).toHaveLength(sent.length);
    const first = runs.find((r) => r.events[0]?.sequence === acks[0]?.sequence);
    expect(first?.events.map((e) => e.sequence)).toEqual(acks.map((a) => a.sequence));
    const largeRuns = runs.filter((r) => (r.events[0]?.sequence ?? 0) >= (largeAcks[0]?.sequence ?? 0));
    expect(largeRuns.map((r) => r.events.map((e) => e.sequence))).toEqual([
      [largeAcks[0]?.sequence, largeAcks[1]?.sequence],
      [largeAcks[2]?.sequence],
    ]);
    // Chained: each run names the last event before it.
    expect(largeRuns[1]?.prev).toBe(largeAcks[1]?.sequence);
  });

  it("health names a subscription stalled on events the log had to send again; it clears once they are handled", async () => {
    const key = partitionKeyFor(0, PARTITIONS, "stalled");
    let dropping = true;
    const lost = await loseMessages(0, (bodies) => dropping && bodies.every((b) => b.subscription === "activity"));
    const events = Array.from({ length: 3 }, (_, i) => event({ id: `stalled-${i}`, type: "redelivery.stalled", partitionkey: key }));
    await expectAccepted(await postBatch("events", events));
    // Still dropping: the log sends them again after its timeout, and they are lost again.
    await waitFor(
      async () => lost.length,
      (n) => n >= 6,
      15_000,
    );
    type Health = { reasons: string[] };
    const health = await waitFor(
      async () => (await (await request("/v1/health")).json()) as Health,
      (h) => h.reasons.some((r) => r.startsWith("subscription activity stalled")),
      10_000,
    );
    expect(health.reasons).toContainEqual(
      expect.stringMatching(/^subscription activity stalled: 3 events sent again by the partition log/),
    );
    dropping = false;
    const ids = events.map((e) => String(e.id));
    await waitFor(
      () => settledRows("activity", ids),
      (r) => r.length === 3,
    );
    const cleared = await waitFor(
      async () => (await (await request("/v1/health")).json()) as Health,
      (h) => !h.reasons.some((r) => r.includes("stalled")),
    );
    expect(cleared.reasons.filter((r) => r.includes("stalled"))).toEqual([]);
  });
});
