import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { PartitionLog } from "../../durable-objects/partition-log";
import type { ReplayJob, ReplaySpecInput, ReplayView } from "../../durable-objects/replay-job";
import { type Delivery, type DeliveryMessage, runDeliveries } from "../../sdk/messages";
import { testBindings } from "../bindings";
import { allAcknowledged, event, expectAccepted, expectProblem, partitionKeyFor, postBatch, request, waitFor } from "../helpers";

const TOPIC = "events";

const keyFor = (partition: number, salt: string) => partitionKeyFor(partition, 4, salt);

async function publish(partition: number, types: string[], salt: string) {
  const key = keyFor(partition, salt);
  return expectAccepted(
    await postBatch(
      TOPIC,
      types.map((type, i) => event({ type, partitionkey: key, data: { i, salt } })),
    ),
  );
}

interface Sent {
  binding: string;
  bodies: DeliveryMessage[];
}

/** The per-event deliveries of what was sent (a replay sends runs). */
const eventsOf = (sent: Sent[]): Delivery[] => sent.flatMap((s) => s.bodies.flatMap((b) => (b.v === 2 ? runDeliveries(b) : [b])));

/** A ReplayJob whose sends are recorded (and optionally fail once, after being recorded). */
async function recordedJob(id: string, failOnce?: number) {
  const stub = env.REPLAY_JOB.getByName(id);
  const sent: Sent[] = [];
  let calls = 0;
  await runInDurableObject(stub, (job: ReplayJob) => {
    job.testing.send = async (binding, bodies) => {
      sent.push({ binding, bodies: structuredClone(bodies) });
      calls++;
      // Sent, then the job "crashes" before it records its progress.
      if (calls === failOnce) throw new Error("simulated crash after a send");
    };
  });
  return { stub, sent };
}

/** The job's view (the RPC type of a deep filter pattern does not narrow to ReplayView by itself). */
const statusOf = async (stub: DurableObjectStub<ReplayJob>) => (await stub.status()) as unknown as ReplayView | null;

async function runToEnd(stub: DurableObjectStub<ReplayJob>): Promise<ReplayView> {
  for (let i = 0; i < 200; i++) {
    const view = await statusOf(stub);
    if (view !== null && view.state !== "running") return view;
    await runDurableObjectAlarm(stub);
  }
  throw new Error("replay did not finish");
}

/**
 * A job spec for a job started directly (not through the API). The target is a name no partition
 * routes to, so the log holds nothing for it and every matching event is sent (as history).
 */
const spec = (id: string, overrides: Partial<ReplaySpecInput>): ReplaySpecInput => ({
  id,
  topic: TOPIC,
  partitions: [0],
  from: { sequence: 1 },
  subscription: "replay-target",
  binding: "SUB_ACTIVITY",
  rate: 10_000,
  chain: false,
  ...overrides,
});

describe("replay targeting", () => {
  it("sends exactly the requested range, filtered, in order per partition, to the one subscription's queue, marked as a replay", async () => {
    const types = Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? "keep" : "skip"));
    const a = await publish(1, types, "target-a");
    const b = await publish(2, types, "target-b");
    const id = "rpl_00000000000000000000000000000001";
    const { stub, sent } = await recordedJob(id);
    const from = (a[0]?.sequence ?? 0) + 3;
    const to = (a.at(-1)?.sequence ?? 0) - 3;
    await stub.start(spec(id, { partitions: [1, 2], from: { sequence: from }, to: { sequence: to }, filter: { type: ["keep"] } }));
    const view = await runToEnd(stub);
    expect(view).toMatchObject({ state: "done", scanned: 2 * (to - from + 1), resent: 0 });

    expect(new Set(sent.map((s) => s.binding))).toEqual(new Set(["SUB_ACTIVITY"]));
    const messages = eventsOf(sent);
    // Runs: one queue message carries many events.
    expect(sent.flatMap((s) => s.bodies).every((b) => b.v === 2)).toBe(true);
    expect(sent.flatMap((s) => s.bodies).length).toBeLessThan(messages.length);
    for (const [partition, acks] of [
      [1, a],
      [2, b],
    ] as const) {
      const expected = acks
        .filter((ack, i) => ack.sequence >= from && ack.sequence <= to && types[i] === "keep")
        .map((ack) => ack.sequence);
      const got = messages.filter((m) => m.partition === partition).map((m) => m.sequence);
      expect(got).toEqual(expected);
      expect(view.partitions.find((p) => p.partition === partition)).toMatchObject({ done: true, sent: expected.length, position: to });
    }
    for (const m of messages) {
      expect(m).toMatchObject({
        subscription: "replay-target",
        topic: TOPIC,
        replay: { jobId: id, chain: false, history: true },
        event: { type: "keep" },
      });
    }
  });

  it("through the API: only the target subscription's consumer sees the replay; its duplicates are absorbed and counted", async () => {
    const acks = await publish(3, ["com.example.greeting.hi", "other", "com.example.greeting.hi"], "api");
    // Let the live deliveries settle first.
    await waitFor(
      async () => (await (await request("/v1/subscriptions/activity")).json()) as { lag: number },
      (s) => s.lag === 0,
      20_000,
    );
    const before = await env.DB.prepare("SELECT subscription, COUNT(*) AS n FROM processed_events GROUP BY subscription").all();
    const res = await request("/v1/replays", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        topic: TOPIC,
        partitions: [3],
        from: { sequence: acks[0]?.sequence },
        to: { sequence: acks.at(-1)?.sequence },
        subscription: "activity",
      }),
    });
    expect(res.status).toBe(201);
    const created = (await res.json()) as ReplayView;
    expect(res.headers.get("location")).toBe(`/v1/replays/${created.id}`);
    const done = await waitFor(
      async () => (await (await request(`/v1/replays/${created.id}`)).json()) as ReplayView,
      (v) => v.state === "done",
      20_000,
    );
    expect(done).toMatchObject({ sent: 3, scanned: 3, total: 3, etaSeconds: null });
    // The activity consumer had all three already: nothing applied twice, three replay duplicates.
    const stats = await waitFor(
      () =>
        env.DB.prepare("SELECT replay_duplicates FROM subscription_stats WHERE subscription = 'activity'").first<{
          replay_duplicates: number;
        }>(),
      (r) => (r?.replay_duplicates ?? 0) >= 3,
      20_000,
    );
    expect(stats?.replay_duplicates).toBe(3);
    const after = await env.DB.prepare("SELECT subscription, COUNT(*) AS n FROM processed_events GROUP BY subscription").all();
    expect(after.results).toEqual(before.results);
    const list = (await (await request("/v1/replays")).json()) as { replays: ReplayView[] };
    expect(list.replays.map((r) => r.id)).toContain(created.id);
  });

  it("refuses bad replays with problem documents", async () => {
    const post = (body: unknown) =>
      request("/v1/replays", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const base = { topic: TOPIC, from: { sequence: 1 }, subscription: "activity" };
    expect((await expectProblem(await post({ ...base, subscription: "nope" }), 404)).code).toBe("not_found");
    expect((await expectProblem(await post({ ...base, topic: "nope" }), 404)).code).toBe("topic_not_found");
    expect((await expectProblem(await post({ ...base, subscription: "orders-view" }), 422)).issues?.[0]?.path).toBe("/subscription");
    expect((await expectProblem(await post({ ...base, partitions: [7] }), 422)).issues?.[0]?.path).toBe("/partitions");
    expect((await expectProblem(await post({ ...base, to: { sequence: 0 } }), 400)).code).toBe("invalid_parameter");
    expect((await expectProblem(await post({ ...base, from: { sequence: 9 }, to: { sequence: 3 } }), 400)).issues?.[0]?.path).toBe("/to");
    expect((await expectProblem(await post({ ...base, filter: { type: [{ prefix: 3 }] } }), 422)).code).toBe("unprocessable_request");
    expect((await expectProblem(await post({ ...base, from: { time: "yesterday" } }), 400)).code).toBe("invalid_parameter");
    // A missing or malformed position says which two forms are expected, not just "Invalid input".
    const { from: _from, ...withoutFrom } = base;
    const missing = await expectProblem(await post(withoutFrom), 400);
    expect(missing.issues?.[0]).toMatchObject({ path: "/json/from", message: expect.stringContaining('required: {"sequence": n}') });
    const malformed = await expectProblem(await post({ ...base, from: { seq: 1 } }), 400);
    expect(malformed.issues?.[0]?.message).toContain('expected {"sequence": n}');
    expect((await expectProblem(await request("/v1/replays/rpl_0123456789abcdef0123456789abcdef"), 404)).code).toBe("not_found");
    expect((await expectProblem(await request("/v1/replays/nope"), 400)).code).toBe("invalid_parameter");
  });

  it("cancels a running replay; what was sent stays sent", async () => {
    const acks = await publish(
      0,
      Array.from({ length: 20 }, () => "slow"),
      "cancel",
    );
    const id = "rpl_00000000000000000000000000000002";
    const { stub, sent } = await recordedJob(id);
    await stub.start(
      spec(id, { partitions: [0], from: { sequence: acks[0]?.sequence ?? 1 }, to: { sequence: acks.at(-1)?.sequence ?? 1 }, rate: 5 }),
    );
    await runDurableObjectAlarm(stub);
    const cancelled = (await stub.cancel()) as unknown as ReplayView | null;
    expect(cancelled?.state).toBe("cancelled");
    // At 5/s one tick sends what falls due within it (replay/pacing.ts): some, not all 20.
    const sentBefore = eventsOf(sent).length;
    expect(sentBefore).toBeGreaterThan(0);
    expect(sentBefore).toBeLessThan(20);
    expect(cancelled?.sent).toBe(sentBefore);
    await runDurableObjectAlarm(stub);
    expect(eventsOf(sent)).toHaveLength(sentBefore);
    expect((await statusOf(stub))?.state).toBe("cancelled");
  });
});

describe("replay pacing", () => {
  it("bounds what one tick scans when the filter matches little, and still finishes", async () => {
    const acks = await publish(
      3,
      Array.from({ length: 300 }, () => "nomatch"),
      "scan",
    );
    const id = "rpl_00000000000000000000000000000005";
    const { stub, sent } = await recordedJob(id);
    await stub.start(
      spec(id, {
        partitions: [3],
        from: { sequence: acks[0]?.sequence ?? 1 },
        to: { sequence: acks.at(-1)?.sequence ?? 1 },
        rate: 1,
        filter: { type: ["x"] },
      }),
    );
    await runDurableObjectAlarm(stub);
    const first = await statusOf(stub);
    expect(first?.state).toBe("running");
    expect(first?.scanned).toBeGreaterThan(0);
    expect(first?.scanned).toBeLessThanOrEqual(100);
    const done = await runToEnd(stub);
    expect(done).toMatchObject({ state: "done", scanned: 300, sent: 0 });
    expect(sent).toEqual([]);
  });
});

describe("replay to a webhook subscription", () => {
  it("sends the range to the receiver again, marked with the replay id; nothing goes to other subscriptions", async () => {
    const name = "hook-replay";
    const create = await request("/v1/subscriptions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        name,
        topic: TOPIC,
        filter: { type: ["hooked"] },
        webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/${name}` },
      }),
    });
    expect(create.status).toBe(201);
    const received = async () =>
      (await (await fetch(`${testBindings.WEBHOOK_SINK}/control/${name}`)).json()) as { headers: Record<string, string>; body: string }[];
    const acks = await publish(0, ["hooked", "not-hooked", "hooked"], "hook");
    await waitFor(received, (r) => r.length >= 2, 20_000);
    // Settled, not only received: an event still being settled is left to its live delivery.
    await waitFor(
      () => env.DB.prepare("SELECT COUNT(*) AS n FROM processed_events WHERE subscription = ?").bind(name).first<{ n: number }>(),
      (r) => r?.n === 2,
      20_000,
    );
    const res = await request("/v1/replays", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        topic: TOPIC,
        partitions: [0],
        from: { sequence: acks[0]?.sequence },
        to: { sequence: acks.at(-1)?.sequence },
        subscription: name,
      }),
    });
    const job = (await res.json()) as ReplayView;
    expect(res.status).toBe(201);
    const done = await waitFor(
      async () => (await (await request(`/v1/replays/${job.id}`)).json()) as ReplayView,
      (v) => v.state !== "running",
      20_000,
    );
    // The receiver had both: they count as already handled once their re-delivery has ended, so
    // the job is done only when the receiver has them again.
    expect(done).toMatchObject({ state: "done", sent: 2, handled: 0, alreadyHandled: 2, deadLettered: 0, awaiting: 0 });
    const all = await received();
    expect(all).toHaveLength(4);
    const replayed = all.filter((r) => r.headers["eventline-replay"] === job.id);
    expect(replayed.map((r) => (JSON.parse(r.body) as { id: string }).id)).toEqual([acks[0]?.id, acks[2]?.id]);
    // The webhook-id is the original delivery's, so a receiver that dedupes by it can tell.
    expect(new Set(all.map((r) => r.headers["webhook-id"])).size).toBe(2);
  });
});

describe("resumability", () => {
  it("a replay interrupted mid-way (a crash after a send, then an eviction) completes without gaps; the re-sent batch is counted", async () => {
    const acks = await publish(
      1,
      Array.from({ length: 60 }, () => "resume"),
      "resume",
    );
    const id = "rpl_00000000000000000000000000000003";
    // The second send happens, then the job fails before recording it.
    const { stub, sent } = await recordedJob(id, 2);
    const first = acks[0]?.sequence ?? 1;
    const last = acks.at(-1)?.sequence ?? 1;
    await stub.start(spec(id, { partitions: [1], from: { sequence: first }, to: { sequence: last }, rate: 200 }));
    // Ticks run (here, or by the job's own alarm: the pacer ticks every TICK_MS) until the second
    // send has happened and failed; the failure backs off for a second, so nothing ticks meanwhile.
    await waitFor(
      async () => {
        if (sent.length < 2) await runDurableObjectAlarm(stub);
        return sent.length;
      },
      (n) => n >= 2,
      10_000,
    );
    expect((await statusOf(stub))?.error).toMatch(/simulated crash/);
    expect(sent).toHaveLength(2);
    const recorded = eventsOf(sent.slice(0, 1)).length;
    const lost = eventsOf(sent.slice(1)).length;
    expect(recorded).toBeGreaterThan(0);
    expect(lost).toBeGreaterThan(0);
    expect((await statusOf(stub))?.sent).toBe(recorded);
    await evictDurableObject(stub);
    // A new instance: record again, without failures.
    const again: Sent[] = [];
    await runInDurableObject(stub, (job: ReplayJob) => {
      job.testing.send = async (binding, bodies) => {
        again.push({ binding, bodies: structuredClone(bodies) });
      };
    });
    const view = await runToEnd(stub);
    expect(view).toMatchObject({ state: "done", scanned: 60, sent: 60 });
    expect(view.resent).toBe(lost);
    const sequences = eventsOf([...sent, ...again]).map((b) => b.sequence);
    // Every sequence of the range was sent; those of the interrupted batch twice, nothing else twice.
    expect(new Set(sequences)).toEqual(new Set(Array.from({ length: 60 }, (_, i) => first + i)));
    expect(sequences).toHaveLength(60 + lost);
  });
});

describe("projection rebuild from the archive", () => {
  it("a read model rebuilt from the archive alone equals the live one, and live events during the rebuild apply once", async () => {
    const json = (body: unknown) => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const ids: string[] = [];
    let last = "";
    for (let i = 0; i < 6; i++) {
      const placed = (await (
        await request(
          "/v1/orders",
          json({ customerId: `rebuild-${i % 2}`, currency: "EUR", lines: [{ sku: "A", quantity: 1, unitPrice: 100 * (i + 1) }] }),
        )
      ).json()) as { orderId: string; after: string };
      ids.push(placed.orderId);
      last = placed.after;
      if (i % 2 === 0) {
        last = (
          (await (await request(`/v1/orders/${placed.orderId}/pay`, json({ amount: 100 * (i + 1), currency: "EUR" }))).json()) as {
            after: string;
          }
        ).after;
      }
    }
    // Live views caught up everywhere.
    for (const id of ids)
      await waitFor(
        async () => (await request(`/v1/orders/${id}`)).status,
        (s) => s === 200,
        20_000,
      );
    await waitFor(
      async () =>
        ((await (await request(`/v1/orders?after=${last}`)).json()) as { freshness: { behindEvents: number } }).freshness.behindEvents,
      (n) => n === 0,
      20_000,
    );
    const snapshot = async () =>
      (await env.DB.prepare("SELECT * FROM orders_view ORDER BY order_id").all<Record<string, unknown>>()).results.map(
        (r): Record<string, unknown> => ({
          ...r,
          partition: undefined,
          sequence: undefined,
        }),
      );
    const live = await snapshot();
    expect(live).toHaveLength(6);

    // Archive and trim every partition: from now on the orders exist only in R2.
    for (let p = 0; p < 4; p++) {
      const log = env.PARTITION_LOG.getByName(`orders/${p}`);
      // Trimming keeps what a subscription has not acknowledged.
      expect(await allAcknowledged("orders", p)).toEqual([]);
      await runInDurableObject(log, (instance: PartitionLog) => {
        instance.testing.retentionMs = 0;
      });
      await log.archiveNow();
      expect((await log.stats()).count).toBe(0);
    }

    const res = await request("/v1/projections/orders-view/rebuild", json({ rate: 10_000 }));
    expect(res.status).toBe(202);
    const { replay } = (await res.json()) as { replay: ReplayView };
    expect(replay.chain).toBe(true);
    expect(((await (await request("/v1/orders")).json()) as { freshness: { rebuilding: boolean } }).freshness.rebuilding).toBe(true);
    // A live command during the rebuild.
    const target = ids[1] as string;
    const paid = (await (await request(`/v1/orders/${target}/pay`, json({ amount: 200, currency: "EUR" }))).json()) as { after: string };
    expect(paid.after).toMatch(/^\d+:\d+$/);

    const done = await waitFor(
      async () => ((await (await request("/v1/orders")).json()) as { freshness: { rebuilding: boolean; behindEvents: number } }).freshness,
      (f) => !f.rebuilding,
      30_000,
    );
    expect(done).toMatchObject({ rebuilding: false, behindEvents: 0 });
    const rebuilt = await snapshot();
    const expected = live.map((row) =>
      row.order_id === target ? { ...row, status: "paid", paid: 200, version: 2, updated_at: expect.any(Number) } : row,
    );
    expect(rebuilt).toEqual(expected);
    expect((await (await request(`/v1/replays/${replay.id}`)).json()) as ReplayView).toMatchObject({ state: "done" });
    // Rebuilding again while one runs is refused only while it runs; unknown projections are 404.
    expect((await expectProblem(await request("/v1/projections/nope/rebuild", json({})), 404)).code).toBe("not_found");
  });

  it("gives up as failed after repeated failing ticks, keeping its position", async () => {
    const acks = await publish(2, ["x", "y"], "fail");
    const id = "rpl_00000000000000000000000000000004";
    const stub = env.REPLAY_JOB.getByName(id);
    await runInDurableObject(stub, (job: ReplayJob) => {
      job.testing.send = async () => {
        throw new Error("queue unavailable");
      };
    });
    await stub.start(spec(id, { partitions: [2], from: { sequence: acks[0]?.sequence ?? 1 }, to: { sequence: acks[1]?.sequence ?? 1 } }));
    for (let i = 0; i < 10; i++) await runDurableObjectAlarm(stub);
    const view = await statusOf(stub);
    expect(view).toMatchObject({ state: "failed", error: "queue unavailable", sent: 0 });
    expect(view?.partitions[0]?.position).toBe((acks[0]?.sequence ?? 1) - 1);
    expect(view?.finishedAt).not.toBeNull();
  });
});
