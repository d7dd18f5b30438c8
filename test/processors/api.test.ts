import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { expectAccepted, expectProblem, postBatch, request, type StoredEvent, waitFor } from "../helpers";
import { CURRENCIES, iso, json, minute, paid, topicEvents, type View, view } from "./fixtures";

/**
 * GET /v1/processors, /v1/processors/{name} and /dead-letters with orders flowing through the demo
 * processor `revenue-per-minute`: the views' shapes and numbers, a late event's dead letter.
 * Reset/rebuild: reset.test.ts; access: test/security/processors-authz.test.ts.
 */

const t0 = minute(0);
const minute0 = (list: StoredEvent[]) => list.filter((e) => (e.data as { windowStart?: string }).windowStart === iso(t0));

describe("processors API", () => {
  it("lists both demo processors with their declarations, before any input", async () => {
    const body = await json<{ processors: View[] }>(await request("/v1/processors"), 200);
    expect(body.processors.map((p) => p.name)).toEqual(["revenue-per-minute", "unpaid-orders"]);
    const [revenue, unpaid] = body.processors as [View, View];
    expect(revenue).toMatchObject({
      kind: "aggregate",
      input: { topic: "orders", filter: { type: ["orders.paid"] } },
      key: "/data/currency",
      eventTime: "time",
      output: { topic: "orders-revenue", table: true },
      internalTopic: "processor.revenue-per-minute",
      window: { type: "tumbling", size: "1m" },
      aggregates: [
        { name: "count", op: "count" },
        { name: "sum", op: "sum", field: "/data/amount" },
      ],
      emit: "final",
      watermark: { outOfOrderness: "30s", idleTimeout: "10s", maxAhead: "1h", whenIdle: "hold" },
      grace: "30s",
      lowWatermark: null,
      openWindows: 0,
      lateEvents: 0,
    });
    expect(unpaid).toMatchObject({
      kind: "pattern",
      key: "/data/orderId",
      output: { topic: "orders-alerts", table: false },
      pattern: { type: "absence", a: { type: ["orders.placed"] }, b: { type: ["orders.paid"] }, within: "15m" },
    });
    expect(unpaid.window).toBeUndefined();
    // One instance per partition of the internal topic (the input topic's 4 by default).
    expect(revenue.partitions.map((p) => p.partition)).toEqual([0, 1, 2, 3]);
    for (const p of revenue.partitions) {
      expect(p).toMatchObject({ watermark: null, applied: 0, head: 0, lag: 0, openWindows: 0, lateEvents: 0, catchingUp: false });
      expect(p.inputs.map((i) => i.partition)).toEqual([0, 1, 2, 3]);
    }
  });

  it("shows watermarks per partition, open windows and results once orders flow", { timeout: 90_000 }, async () => {
    await expectAccepted(
      await postBatch("orders", [
        paid("a1", "EUR", 100, t0 + 1_000),
        paid("a2", "EUR", 250, t0 + 30_000),
        paid("a3", "USD", 70, t0 + 59_999),
        // Minute 2 on every key: the watermark passes minute 0's end + grace (12:01:30) everywhere.
        ...CURRENCIES.map((c, i) => paid(`b${i}`, c, 1, minute(2) + 10_000)),
      ]),
    );
    const results = await waitFor(
      () => topicEvents("orders-revenue"),
      (list) => minute0(list).length >= 2,
      60_000,
    );
    expect(
      minute0(results)
        .map((e) => e.subject)
        .sort(),
    ).toEqual(["EUR", "USD"]);

    const v = await waitFor(
      () => view("revenue-per-minute"),
      // An instance's watermark is defined once its inputs that never delivered have gone idle (10 s of processing time).
      (x) => x.pendingOutputs === 0 && x.lag === 0 && x.results >= 2 && x.partitions.every((p) => p.watermark !== null),
      30_000,
    );
    expect(v.lag).toBe(0);
    expect(v.results).toBe(2);
    // Minute 2 stays open, once per currency (its end + grace is ahead of every watermark).
    expect(v.openWindows).toBe(CURRENCIES.length);
    expect(v.partitions.reduce((n, p) => n + p.keys, 0)).toBe(CURRENCIES.length);
    // 11 paid events went through the internal topic (in batches, one per input run and instance): the instances applied all of them.
    expect(v.partitions.reduce((n, p) => n + p.inputsApplied, 0)).toBe(11);
    const batches = v.partitions.reduce((n, p) => n + p.head, 0);
    expect(batches).toBeGreaterThanOrEqual(1);
    expect(batches).toBeLessThanOrEqual(11);
    for (const p of v.partitions) {
      expect(p.applied).toBe(p.head);
      expect(p.lastOutputError).toBeNull();
      // An instance's watermark is behind minute 2's latest event time by the 30 s out-of-orderness, and past minute 0's close.
      expect(p.watermark).not.toBeNull();
      expect(Date.parse(p.watermark ?? "")).toBeGreaterThanOrEqual(minute(1) + 30_000);
      expect(Date.parse(p.watermark ?? "")).toBeLessThanOrEqual(minute(2) + 10_000 - 30_000);
      const seen = p.inputs.filter((i) => i.checkpoint !== null);
      expect(seen.length).toBeGreaterThan(0);
      for (const i of seen) expect(i.watermark).not.toBeNull();
    }
    const lowest = [...v.partitions.map((p) => p.watermark ?? "")].sort()[0];
    expect(v.lowWatermark).toBe(lowest);
    // The list shows the same numbers as the single view.
    const listed = (await json<{ processors: View[] }>(await request("/v1/processors"), 200)).processors[0];
    expect(listed?.results).toBe(2);
    expect(listed?.openWindows).toBe(CURRENCIES.length);
  });

  it("dead-letters an event far behind the watermark (reason late_event), newest first, paged", { timeout: 60_000 }, async () => {
    const before = await view("revenue-per-minute");
    await expectAccepted(await postBatch("orders", [paid("late1", "EUR", 999, t0 + 5_000), paid("late2", "USD", 7, t0 + 6_000)]));
    const page = await waitFor(
      async () =>
        json<{ deadLetters: (Record<string, unknown> & { id: string })[]; total: number; next: string | null }>(
          await request("/v1/processors/revenue-per-minute/dead-letters"),
          200,
        ),
      (p) => p.total >= 2,
      30_000,
    );
    expect(page.total).toBe(2);
    expect(page.next).toBeNull();
    expect(page.deadLetters).toHaveLength(2);
    const none: Record<string, unknown> = {};
    const [newest = none, oldest = none] = page.deadLetters;
    expect(new Set([newest.eventId, oldest.eventId])).toEqual(new Set(["paid-late1", "paid-late2"]));
    expect(Date.parse(String(newest.deadLetteredAt))).toBeGreaterThanOrEqual(Date.parse(String(oldest.deadLetteredAt)));
    const eur = page.deadLetters.find((d) => d.eventId === "paid-late1") ?? none;
    expect(eur).toMatchObject({
      topic: "orders",
      reason: "late_event",
      input: { id: "paid-late1", key: "EUR", eventTime: t0 + 5_000, windows: [{ start: t0, end: minute(1) }] },
    });
    expect(String(eur.id)).toMatch(/^processor:revenue-per-minute:orders:\d:\d+$/);
    expect(String(eur.error)).toContain("behind the watermark");
    // limit=1 pages through them with the cursor, newest first, and ends with next: null.
    const first = await json<{ deadLetters: { id: string }[]; next: string | null }>(
      await request("/v1/processors/revenue-per-minute/dead-letters?limit=1"),
      200,
    );
    expect(first.deadLetters.map((d) => d.id)).toEqual([page.deadLetters[0]?.id]);
    expect(first.next).not.toBeNull();
    const second = await json<{ deadLetters: { id: string }[]; next: string | null }>(
      await request(`/v1/processors/revenue-per-minute/dead-letters?limit=1&after=${encodeURIComponent(first.next ?? "")}`),
      200,
    );
    expect(second.deadLetters.map((d) => d.id)).toEqual([page.deadLetters[1]?.id]);
    const third = await json<{ deadLetters: unknown[]; next: string | null }>(
      await request(`/v1/processors/revenue-per-minute/dead-letters?limit=1&after=${encodeURIComponent(second.next ?? "")}`),
      200,
    );
    expect(third).toMatchObject({ deadLetters: [], next: null });
    // Counted in the view; the results did not change (minute 0 had closed), nor did D1.
    const after = await waitFor(
      () => view("revenue-per-minute"),
      (x) => x.lateEvents >= 2,
    );
    expect(after.lateEvents).toBe(before.lateEvents + 2);
    expect(after.results).toBe(before.results);
    const rows = await env.DB.prepare(`SELECT currency, count, sum FROM revenue_per_minute WHERE window_start = ? ORDER BY currency`)
      .bind(iso(t0))
      .all();
    expect(rows.results).toEqual([
      { currency: "EUR", count: 2, sum: 350 },
      { currency: "USD", count: 1, sum: 70 },
    ]);
  });

  it("answers an unknown processor with 404 problem+json on every route, and bad queries with 400", async () => {
    for (const [path, method] of [
      ["/v1/processors/no-such-processor", "GET"],
      ["/v1/processors/no-such-processor/dead-letters", "GET"],
      ["/v1/processors/no-such-processor/reset", "POST"],
    ] as const) {
      const problem = await expectProblem(await request(path, { method }), 404);
      expect(problem.code).toBe("not_found");
      expect(problem.detail).toContain('processor "no-such-processor" does not exist; processors: revenue-per-minute, unpaid-orders');
    }
    for (const query of ["limit=0", "limit=501", "limit=ten", "after=nonsense"]) {
      const problem = await expectProblem(await request(`/v1/processors/revenue-per-minute/dead-letters?${query}`), 400);
      expect(problem.code).toBe("invalid_parameter");
    }
    const wrongMethod = await expectProblem(await request("/v1/processors/revenue-per-minute/reset"), 405);
    expect(wrongMethod.code).toBe("method_not_allowed");
  });
});
