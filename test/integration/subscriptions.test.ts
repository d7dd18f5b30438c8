import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { PermanentError } from "../../sdk/consumer";
import { activityProjection } from "../../workers/platform/consumers/activity";
import { event, expectAccepted, expectProblem, postBatch, request, waitFor } from "../helpers";

afterEach(() => vi.restoreAllMocks());

interface SubscriptionStatus {
  name: string;
  lag: number;
  dlqDepth: number;
  counts: { handled: number; retried: number; deadLettered: number };
  circuit: { state: string };
  partitions: { partition: number; head: number; checkpoint: number; lag: number; outbox: number }[];
}
const status = async () => (await (await request("/v1/subscriptions/activity")).json()) as SubscriptionStatus;
const typeCount = async (type: string) =>
  (
    await env.DB.prepare("SELECT events FROM event_type_activity WHERE topic = 'events' AND type = ?")
      .bind(type)
      .first<{ events: number }>()
  )?.events ?? 0;

describe("subscription status", () => {
  it("lists subscriptions with target, per-partition checkpoint and lag, DLQ depth, circuit state and counts", async () => {
    const list = (await (await request("/v1/subscriptions")).json()) as {
      subscriptions: (SubscriptionStatus & { target: { queue: string } })[];
    };
    expect(list.subscriptions.map((s) => s.name)).toEqual(["activity", "greetings", "orders-view", "customer-summary"]);
    expect(list.subscriptions[0]?.target).toEqual({ queue: "eventline-activity", binding: "SUB_ACTIVITY" });

    await expectAccepted(
      await postBatch(
        "events",
        Array.from({ length: 12 }, () => event({ type: "status.check" })),
      ),
    );
    const settled = await waitFor(status, (s) => s.lag === 0 && s.counts.handled >= 12);
    expect(settled.lag).toBe(0);
    expect(settled.counts.handled).toBeGreaterThanOrEqual(12);
    expect(settled.circuit.state).toBe("closed");
    expect(settled.partitions).toHaveLength(4);
    for (const p of settled.partitions) expect(p).toMatchObject({ lag: 0, outbox: 0, checkpoint: p.head });
  });

  it("unknown subscription → 404 problem", async () => {
    const problem = await expectProblem(await request("/v1/subscriptions/nope"), 404);
    expect(problem.code).toBe("not_found");
    await expectProblem(await request("/v1/subscriptions/activity/dlq/redrive"), 405);
  });
});

describe("dead letters and redrive", () => {
  it("lists dead letters page by page and redrives them so each is applied exactly once", async () => {
    const original = activityProjection.statements.bind(activityProjection);
    let broken = true;
    vi.spyOn(activityProjection, "statements").mockImplementation((db, es) => {
      for (const e of es) if (broken && e.type === "dlq.case") throw new PermanentError(`cannot project ${e.id}`);
      return original(db, es);
    });
    const events = Array.from({ length: 5 }, (_, i) => event({ id: `dlq-${i}`, type: "dlq.case" }));
    await expectAccepted(await postBatch("events", events));
    const withLetters = await waitFor(status, (s) => s.dlqDepth === 5);
    expect(withLetters.dlqDepth).toBe(5);
    expect(await typeCount("dlq.case")).toBe(0);

    const page1 = (await (await request("/v1/subscriptions/activity/dlq?limit=2")).json()) as {
      deadLetters: { id: string; eventId: string; reason: string; error: string; attempts: number; message: { event: { id: string } } }[];
      total: number;
      next: string;
    };
    expect(page1.total).toBe(5);
    expect(page1.deadLetters).toHaveLength(2);
    expect(page1.deadLetters[0]).toMatchObject({ reason: "permanent", attempts: 1 });
    expect(page1.deadLetters[0]?.error).toContain("cannot project");
    expect(page1.deadLetters[0]?.message.event.id).toBe(page1.deadLetters[0]?.eventId);
    const page2 = (await (
      await request(`/v1/subscriptions/activity/dlq?limit=2&after=${encodeURIComponent(page1.next)}`)
    ).json()) as typeof page1;
    const page3 = (await (
      await request(`/v1/subscriptions/activity/dlq?limit=2&after=${encodeURIComponent(page2.next)}`)
    ).json()) as typeof page1;
    const seen = [...page1.deadLetters, ...page2.deadLetters, ...page3.deadLetters].map((l) => l.eventId).sort();
    expect(seen).toEqual(events.map((e) => e.id).sort());
    expect(page3.next).toBeNull();

    broken = false;
    const one = page1.deadLetters[0]?.id ?? "";
    const res = await request("/v1/subscriptions/activity/dlq/redrive", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ids: [one, "no-such-letter"] }),
    });
    expect(await res.json()).toEqual({ redriven: 1, remaining: 4, notFound: ["no-such-letter"], skipped: [] });
    expect(
      await waitFor(
        () => typeCount("dlq.case"),
        (n) => n === 1,
      ),
    ).toBe(1);

    const all = await request("/v1/subscriptions/activity/dlq/redrive", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(await all.json()).toMatchObject({ redriven: 4, remaining: 0 });
    expect(
      await waitFor(
        () => typeCount("dlq.case"),
        (n) => n === 5,
      ),
    ).toBe(5);
    // Each letter was applied once: no more, even after everything settled.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await typeCount("dlq.case")).toBe(5);
    const outcomes = await env.DB.prepare(
      "SELECT outcome, COUNT(*) AS n FROM processed_events WHERE subscription = 'activity' AND event_id LIKE 'dlq-%' GROUP BY outcome",
    ).all();
    expect(outcomes.results).toEqual([{ outcome: "handled", n: 5 }]);
    expect((await status()).dlqDepth).toBe(0);
  });

  it("redriving letters that still fail puts them back in the DLQ, once each; redrive-all takes only the letters there when it began", async () => {
    const original = activityProjection.statements.bind(activityProjection);
    let broken = true;
    vi.spyOn(activityProjection, "statements").mockImplementation((db, es) => {
      for (const e of es) if (broken && e.type === "dlq.again") throw new PermanentError(`still cannot project ${e.id}`);
      return original(db, es);
    });
    const events = Array.from({ length: 3 }, (_, i) => event({ id: `dlq-again-${i}`, type: "dlq.again" }));
    await expectAccepted(await postBatch("events", events));
    await waitFor(status, (s) => s.dlqDepth === 3);
    const letters = async () =>
      (
        await env.DB.prepare("SELECT id, event_id, body FROM dead_letters WHERE subscription = 'activity' ORDER BY event_id").all<{
          id: string;
          event_id: string;
          body: string;
        }>()
      ).results;
    const before = await letters();
    // A letter written while the request runs (as a redriven letter failing again would be).
    const later = before[0];
    if (later === undefined) throw new Error("no letter");
    await env.DB.prepare(
      `INSERT INTO dead_letters (id, subscription, topic, partition, sequence, event_id, body, reason, error, attempts,
         first_failure_at, last_failure_at, dead_lettered_at)
       SELECT 'written-later', subscription, topic, partition, sequence, event_id, body, reason, error, attempts,
         first_failure_at, last_failure_at, ? FROM dead_letters WHERE id = ?`,
    )
      .bind(Date.now() + 60_000, later.id)
      .run();

    const redrive = await request("/v1/subscriptions/activity/dlq/redrive", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(await redrive.json()).toMatchObject({ redriven: 3, remaining: 1 });
    await env.DB.prepare("DELETE FROM dead_letters WHERE id = 'written-later'").run();
    // Still failing: each comes back as one new letter instead of vanishing.
    const back = await waitFor(letters, (l) => l.length === 3 && l.every((x) => !before.some((b) => b.id === x.id)));
    expect(back.map((l) => l.event_id)).toEqual(events.map((e) => e.id));
    await new Promise((r) => setTimeout(r, 1500));
    expect(await letters()).toHaveLength(3);

    broken = false;
    await request("/v1/subscriptions/activity/dlq/redrive", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(
      await waitFor(
        () => typeCount("dlq.again"),
        (n) => n === 3,
      ),
    ).toBe(3);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await typeCount("dlq.again")).toBe(3);
    expect(await letters()).toEqual([]);
  });

  it("a redrive body that is not valid is a 400 problem", async () => {
    const res = await request("/v1/subscriptions/activity/dlq/redrive", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"ids": "all"}',
    });
    const problem = await expectProblem(res, 400);
    expect(problem.code).toBe("invalid_parameter");
  });
});
