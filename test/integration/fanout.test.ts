import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { PartitionLog } from "../../durable-objects/partition-log";
import { partitionFor } from "../../shared/partitioner";
import { activityProjection } from "../../workers/platform/consumers/activity";
import { event, expectAccepted, postBatch, postStructured, waitFor } from "../helpers";

afterEach(() => vi.restoreAllMocks());

const settled = async (ids: string[]) => {
  const rows = (
    await env.DB.prepare(
      `SELECT event_id, outcome FROM processed_events WHERE subscription = 'activity' AND event_id IN (${ids.map(() => "?").join(",")})`,
    )
      .bind(...ids)
      .all<{ event_id: string; outcome: string }>()
  ).results;
  return rows;
};

const outbox = async (partition: number) => (await env.PARTITION_LOG.getByName(`events/${partition}`).stats()).outbox.activity ?? 0;

describe("fan-out through the outbox and the activity subscription", () => {
  it("every committed event reaches the subscription once, the outbox empties, the checkpoint reaches the head", async () => {
    const events = Array.from({ length: 40 }, (_, i) =>
      event({ id: `fan-${i}`, type: i % 2 === 0 ? "fan.even" : "fan.odd", subject: `s-${i % 5}` }),
    );
    const acks = await expectAccepted(await postBatch("events", events));
    const rows = await waitFor(
      () => settled(events.map((e) => String(e.id))),
      (r) => r.length === 40,
    );
    expect(rows.every((r) => r.outcome === "handled")).toBe(true);
    const counts = await env.DB.prepare("SELECT type, events FROM event_type_activity WHERE type LIKE 'fan.%' ORDER BY type").all();
    expect(counts.results).toEqual([
      { type: "fan.even", events: 20 },
      { type: "fan.odd", events: 20 },
    ]);
    for (const partition of new Set(acks.map((a) => a.partition))) {
      expect(await outbox(partition)).toBe(0);
      const head = (await env.PARTITION_LOG.getByName(`events/${partition}`).stats()).head;
      const cp = await waitFor(
        async () =>
          (
            await env.DB.prepare("SELECT sequence FROM checkpoints WHERE subscription = 'activity' AND topic = 'events' AND partition = ?")
              .bind(partition)
              .first<{ sequence: number }>()
          )?.sequence,
        (s) => s === head,
      );
      expect(cp).toBe(head);
    }
  });

  it("a failing relay does not block the 202; the alarm delivers later and nothing is lost", async () => {
    const key = "relay-fault";
    const partition = partitionFor({ id: "", partitionkey: key }, 4);
    const stub = env.PARTITION_LOG.getByName(`events/${partition}`);
    await waitFor(
      () => outbox(partition),
      (n) => n === 0,
    );
    let attempts = 0;
    let queueDown = true;
    await runInDurableObject(stub, (instance: PartitionLog) => {
      const original = instance.testing.send;
      instance.testing.send = async (binding, bodies) => {
        attempts++;
        if (queueDown) throw new Error("queue unavailable");
        await original(binding, bodies);
      };
    });
    const events = Array.from({ length: 7 }, (_, i) => event({ id: `relay-${i}`, partitionkey: key }));
    for (const e of events) await expectAccepted(await postStructured("events", e));
    expect(
      await waitFor(
        () => outbox(partition),
        (n) => n === 7,
        2_000,
      ),
    ).toBe(7);
    expect(attempts).toBeGreaterThanOrEqual(1);
    queueDown = false;
    // The relay is re-armed by the alarm; run it now instead of waiting for it.
    for (let i = 0; i < 5 && (await outbox(partition)) > 0; i++) await runDurableObjectAlarm(stub);
    expect(await outbox(partition)).toBe(0);
    const rows = await waitFor(
      () => settled(events.map((e) => String(e.id))),
      (r) => r.length === 7,
    );
    expect(rows).toHaveLength(7);
  });

  it("final drain: over 1,000 events with injected failures, produced = handled + dead-lettered", async () => {
    const total = 1000;
    const alwaysFail = new Set<string>();
    const failedOnce = new Set<string>();
    const events = Array.from({ length: total }, (_, i) => {
      const id = `drain-${i}`;
      if (i % 199 === 7) alwaysFail.add(id);
      return event({ id, type: "drain.event", subject: `drain-${i % 16}` });
    });
    const original = activityProjection.statements.bind(activityProjection);
    const transient = (id: string) => Number(id.split("-")[1]) % 10 === 3 && !failedOnce.has(id);
    vi.spyOn(activityProjection, "statements").mockImplementation((db, es) => {
      // A batch's set (handleBatch) fails whole if one of it would: each event then runs alone,
      // where it fails (and counts as failed) for itself.
      if (es.length > 1 && es.some((e) => alwaysFail.has(e.id) || transient(e.id))) throw new Error("a poison or transient in the set");
      for (const e of es) {
        if (alwaysFail.has(e.id)) throw new Error("poison");
        // Every 10th event fails on its first delivery only.
        if (transient(e.id)) {
          failedOnce.add(e.id);
          throw new Error("transient");
        }
      }
      return original(db, es);
    });
    for (let i = 0; i < total; i += 100) await expectAccepted(await postBatch("events", events.slice(i, i + 100)));

    const ids = events.map((e) => String(e.id));
    const rows = await waitFor(
      async () => (await Promise.all(Array.from({ length: 10 }, (_, k) => settled(ids.slice(k * 100, k * 100 + 100))))).flat(),
      (r) => r.length === total,
      120_000,
    );
    const handled = rows.filter((r) => r.outcome === "handled").length;
    const deadLettered = rows.filter((r) => r.outcome === "dead_lettered").length;
    expect(handled + deadLettered).toBe(total);
    expect(deadLettered).toBe(alwaysFail.size);
    expect(failedOnce.size).toBe(ids.filter((id) => Number(id.split("-")[1]) % 10 === 3 && !alwaysFail.has(id)).length);
    const applied = await env.DB.prepare("SELECT events FROM event_type_activity WHERE topic = 'events' AND type = 'drain.event'").first<{
      events: number;
    }>();
    expect(applied?.events).toBe(handled);
    const letters = await env.DB.prepare(
      "SELECT event_id, attempts, reason FROM dead_letters WHERE subscription = 'activity' AND event_id LIKE 'drain-%'",
    ).all<{
      event_id: string;
      attempts: number;
      reason: string;
    }>();
    expect(letters.results.map((l) => l.event_id).sort()).toEqual([...alwaysFail].sort());
    expect(letters.results.every((l) => l.reason === "max_retries")).toBe(true);
  });
});
