import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { expectAccepted, postBatch, waitFor } from "../helpers";
import { iso, minute, paid, topicEvents } from "./fixtures";

/** The orders demo's processors end to end: orders in, results out as events (issue 21's contract names). */

function placed(id: string, time: number) {
  return {
    specversion: "1.0",
    id: `placed-${id}`,
    source: "/test/orders",
    type: "orders.placed",
    time: iso(time),
    datacontenttype: "application/json",
    data: { orderId: id, customerId: "c1", currency: "EUR", lines: [{ sku: "s", quantity: 1, unitPrice: 100 }] },
  };
}

describe("revenue-per-minute", () => {
  it("appends one final result per currency and minute, with count and sum, and upserts the D1 view", { timeout: 60_000 }, async () => {
    const t0 = minute(0);
    const events = [
      paid("a1", "EUR", 100, t0 + 1_000),
      paid("a2", "EUR", 250, t0 + 30_000),
      paid("a3", "USD", 70, t0 + 59_999),
      // Out of order but within 30 s: still in minute 0.
      paid("a4", "EUR", 5, t0 + 20_000),
      // Minute 2: moves every partition's watermark past minute 0's end + grace (12:01:30)... for the partitions it reaches.
      ...["EUR", "USD", "GBP", "JPY", "CHF", "SEK", "NOK", "DKK"].map((c, i) => paid(`b${i}`, c, 1, minute(2) + 10_000)),
    ];
    await expectAccepted(await postBatch("orders", events));
    const results = await waitFor(
      () => topicEvents("orders-revenue"),
      (list) => list.filter((e) => (e.data as { windowStart: string }).windowStart === iso(t0)).length >= 2,
      50_000,
    );
    const minute0 = results.filter((e) => (e.data as { windowStart: string }).windowStart === iso(t0));
    const eur = minute0.find((e) => e.subject === "EUR");
    const usd = minute0.find((e) => e.subject === "USD");
    expect(eur?.data).toEqual({ key: "EUR", windowStart: iso(t0), windowEnd: iso(minute(1)), count: 3, sum: 355 });
    expect(usd?.data).toEqual({ key: "USD", windowStart: iso(t0), windowEnd: iso(minute(1)), count: 1, sum: 70 });
    expect(eur?.type).toBe("eventline.processor.revenue-per-minute.window.final");
    expect(eur?.source).toBe("/eventline/processors/revenue-per-minute");
    expect(eur?.id).toBe(`revenue-per-minute:EUR:${t0}:final`);
    expect(["paid-a1", "paid-a2", "paid-a4"]).toContain(eur?.causationid);
    const rows = await waitFor(
      () => env.DB.prepare(`SELECT currency, window_start, count, sum, final FROM revenue_per_minute ORDER BY currency`).all(),
      (r) => r.results.length >= 2,
    );
    expect(rows.results).toContainEqual({ currency: "EUR", window_start: iso(t0), count: 3, sum: 355, final: 1 });
  });
});

describe("unpaid-orders", () => {
  it("alerts for an order placed and not paid within 15 minutes, not for one that was paid", { timeout: 60_000 }, async () => {
    const t0 = minute(0);
    await expectAccepted(await postBatch("orders", [placed("p1", t0), placed("p2", t0 + 1000), paid("p2", "EUR", 100, t0 + 60_000)]));
    // Later orders move event time past 15 min + 30 s out-of-orderness + 30 s grace, on every partition.
    await expectAccepted(
      await postBatch(
        "orders",
        Array.from({ length: 16 }, (_, i) => placed(`later${i}`, minute(17))),
      ),
    );
    const alerts = await waitFor(
      () => topicEvents("orders-alerts"),
      (list) => list.some((e) => e.subject === "p1"),
      50_000,
    );
    expect(alerts.some((e) => e.subject === "p2")).toBe(false);
    const alert = alerts.find((e) => e.subject === "p1");
    expect(alert?.type).toBe("eventline.processor.unpaid-orders.absence");
    expect(alert?.causationid).toBe("placed-p1");
    expect((alert?.data as { deadline?: string } | undefined)?.deadline).toBe(iso(minute(15)));
  });
});
