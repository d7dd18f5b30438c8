import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { PartitionLog } from "../../durable-objects/partition-log";
import type { ReplayJob, ReplayView } from "../../durable-objects/replay-job";
import { defineConsumer } from "../../sdk/consumer";
import { type DeliveryMessage, sequencesOf } from "../../sdk/messages";
import { testBindings } from "../bindings";
import { FakeMessage } from "../consumer/helpers";
import { event, expectAccepted, partitionKeyFor, postStructured, request, topicConfig, waitFor } from "../helpers";

/**
 * Replays deliver what the target has not handled (ADR 0035): events committed before the
 * subscription existed included, each once, in partition order for an ordered subscription, and
 * the job is `done` only once they are delivered.
 */

const TOPIC = "events";
const PARTITIONS = topicConfig(TOPIC).partitions;
const json = (body: unknown) => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

const batchOf = (messages: FakeMessage[]) =>
  ({ queue: "q", messages, ackAll() {}, retryAll() {}, metadata: {} }) as unknown as MessageBatch<unknown>;

describe("a replay to a subscription created after its events", () => {
  it("delivers every one of them once, and is done only when they are delivered", async () => {
    const name = "gap-after-hook";
    const type = "replay.gap.after";
    const key = partitionKeyFor(1, PARTITIONS, "gap-after");
    const published = [];
    for (let i = 0; i < 7; i++) published.push(...(await expectAccepted(await postStructured(TOPIC, event({ type, partitionkey: key })))));
    // The webhook subscription is created after all of them: none was routed to it.
    const created = await request(
      "/v1/subscriptions",
      json({ name, topic: TOPIC, filter: { type: [type] }, webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/${name}` } }),
    );
    expect(created.status).toBe(201);
    const res = await request(
      "/v1/replays",
      json({
        topic: TOPIC,
        partitions: [1],
        from: { sequence: published[0]?.sequence },
        to: { sequence: published.at(-1)?.sequence },
        subscription: name,
      }),
    );
    expect(res.status).toBe(201);
    const job = (await res.json()) as ReplayView;
    expect(job.settlement).toBe("watched");
    const done = await waitFor(
      async () => (await (await request(`/v1/replays/${job.id}`)).json()) as ReplayView,
      (v) => v.state !== "running",
      20_000,
    );
    // Done means delivered: the receiver has every event already when the job says so.
    const received = (await (await fetch(`${testBindings.WEBHOOK_SINK}/control/${name}`)).json()) as {
      headers: Record<string, string>;
      body: string;
    }[];
    expect(received.map((r) => (JSON.parse(r.body) as { id: string }).id)).toEqual(published.map((p) => p.id));
    expect(received.every((r) => r.headers["eventline-replay"] === job.id)).toBe(true);
    expect(done).toMatchObject({
      state: "done",
      sent: 7,
      handled: 7,
      alreadyHandled: 0,
      deadLettered: 0,
      held: 0,
      awaiting: 0,
    });
    expect(done.partitions[0]).toMatchObject({ partition: 1, handled: 7, awaiting: 0, done: true });
  });
});

describe("a subscription created mid-stream, then a replay from the start", () => {
  it("handles each event exactly once; an ordered subscription gets the replayed events in partition order, one run in flight at a time", async () => {
    const name = "gap-mid-ordered";
    const type = "replay.gap.mid";
    const partition = 2;
    const key = partitionKeyFor(partition, PARTITIONS, "gap-mid");
    const log = env.PARTITION_LOG.getByName(`${TOPIC}/${partition}`);
    // The partition's live messages for this subscription are captured: the test is its queue.
    const live: DeliveryMessage[] = [];
    await runInDurableObject(log, (instance: PartitionLog) => {
      const original = instance.testing.send;
      instance.testing.send = async (binding, bodies) => {
        live.push(...bodies.filter((b) => b.subscription === name));
        const others = bodies.filter((b) => b.subscription !== name);
        if (others.length > 0) await original(binding, others);
      };
    });
    const publish = async (n: number, pad = 0) => {
      const acks = [];
      for (let i = 0; i < n; i++) {
        const data = { i, pad: "x".repeat(pad) };
        acks.push(...(await expectAccepted(await postStructured(TOPIC, event({ type, partitionkey: key, data })))));
      }
      return acks;
    };
    const applied: string[] = [];
    const consumer = defineConsumer<Env>({
      subscription: name,
      db: (e) => e.DB,
      maxRetries: 3,
      ordering: "partition",
      handle: async (e) => {
        applied.push(e.id);
        return [];
      },
    });
    const deliver = async (bodies: DeliveryMessage[]) => {
      const messages = bodies.map((b) => new FakeMessage(b));
      await consumer.queue(batchOf(messages), env);
      expect(messages.every((m) => m.acked)).toBe(true);
    };

    // Before the subscription exists: large events, so a replay cuts them into runs of two.
    const before = await publish(4, 40_000);
    const existing = await runInDurableObject(log, (_: PartitionLog, state) =>
      state.storage.sql.exec<{ name: string; filter: string | null }>(`SELECT name, filter FROM runtime_routes`).toArray(),
    );
    const routes = existing.map((r) => ({ name: r.name, filter: r.filter === null ? null : JSON.parse(r.filter) }));
    await log.setRuntimeRoutes([...routes, { name, filter: { type: [type] } }]);
    try {
      // Routed and handled live before the replay.
      const settled = await publish(3);
      await waitFor(
        async () => live.flatMap(sequencesOf).length,
        (n) => n === 3,
        5_000,
      );
      await deliver(live.splice(0));
      // Routed while the replay runs, their messages still on their way.
      const inTransit = await publish(3);
      await waitFor(
        async () => live.flatMap(sequencesOf).length,
        (n) => n === 3,
        5_000,
      );
      const held = live.splice(0);

      const id = "rpl_00000000000000000000000000000035";
      const job = env.REPLAY_JOB.getByName(id);
      const sent: DeliveryMessage[][] = [];
      await runInDurableObject(job, (instance: ReplayJob) => {
        instance.testing.send = async (_binding, bodies) => {
          sent.push(structuredClone(bodies));
        };
      });
      const status = async () => (await job.status()) as unknown as ReplayView;
      await job.start({
        id,
        topic: TOPIC,
        partitions: [partition],
        from: { sequence: before[0]?.sequence ?? 1 },
        to: { sequence: inTransit.at(-1)?.sequence ?? 1 },
        subscription: name,
        subscriptionFilter: { type: [type] },
        binding: "WEBHOOK_DELIVERY",
        rate: 10_000,
        chain: false,
        settlement: "watched",
        ordering: "partition",
      });
      // One run in flight: however often the job ticks, it waits for the run to be settled.
      for (let i = 0; i < 3; i++) await runDurableObjectAlarm(job);
      const pending = () => sent.splice(0).flat();
      let batch = pending();
      expect(batch.map(sequencesOf)).toEqual([before.slice(0, 2).map((a) => a.sequence)]);
      const runs: number[][] = [];
      for (let i = 0; i < 10 && batch.length > 0; i++) {
        expect(batch).toHaveLength(1);
        runs.push(...batch.map(sequencesOf));
        await deliver(batch);
        await runDurableObjectAlarm(job);
        batch = pending();
      }
      expect(runs.flat()).toEqual([...before, ...settled].map((a) => a.sequence));
      // Replayed: the rest of the history, and the events it had settled (absorbed); the ones
      // still on their way were left to the log. Not done: those are not delivered yet.
      const waiting = await status();
      expect(waiting).toMatchObject({ state: "running", scanned: 10, sent: 7, held: 3, awaiting: 3 });
      await deliver(held);
      await runDurableObjectAlarm(job);
      expect(await status()).toMatchObject({
        state: "done",
        handled: 4 + 3,
        alreadyHandled: 3,
        deadLettered: 0,
        held: 3,
        awaiting: 0,
      });
      // Exactly once each; the replayed history in partition order.
      const ids = (acks: { id: string }[]) => acks.map((a) => a.id);
      expect(applied).toEqual([...ids(settled), ...ids(before), ...ids(inTransit)]);
    } finally {
      await log.setRuntimeRoutes(routes);
    }
  });
});
