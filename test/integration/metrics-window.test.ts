import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import shipped from "../../eventline.config";
import { defineConfig, type EventlineConfigInput } from "../../shared/config";
import { testBindings } from "../bindings";
import { ADMIN_KEY, event, expectAccepted, expectProblem, postStructured, request, waitFor } from "../helpers";
import { testApp } from "../security/helpers";
import type { HealthJson, MetricsJson, RecentTotalsJson } from "./metrics-helpers";

/**
 * The recent window (docs/observability.md "Recent window", ADR 0044): health, the figures of
 * GET /v1/metrics and the dashboard's history agree, and they forget what is older than the window.
 * A test app with a 2-second window (slots of 1 s) stands in for the shipped 5 minutes.
 */

const WINDOW = 2;
const config = defineConfig({ ...(shipped as EventlineConfigInput), metrics: { windowSeconds: WINDOW, historySeconds: 60 } });
const app = testApp(config);
const auth = { headers: { authorization: `Bearer ${ADMIN_KEY}` } };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function get<T>(path: string): Promise<[number, T]> {
  const res = await app.call(path, auth);
  return [res.status, (await res.json()) as T];
}
const metrics = async () => (await get<MetricsJson>("/v1/metrics"))[1];
const health = async () => (await get<HealthJson>("/v1/health"))[1];
interface HistoryJson {
  windowSeconds: number;
  historySeconds: number;
  samples: (RecentTotalsJson & { at: string })[];
}
const history = async () => (await get<HistoryJson>("/v1/metrics/history"))[1];
const sub = (m: MetricsJson, name: string) => {
  const found = m.subscriptions.find((s) => s.subscription === name);
  if (found === undefined) throw new Error(`no subscription ${name}`);
  return found;
};

/** Observations added to a subscription's stored end-to-end histogram, as the consumer SDK's upsert adds them. */
async function observeEndToEnd(subscription: string, buckets: Record<string, number>, sum: number): Promise<void> {
  const rows = { ...buckets, sum, count: Object.values(buckets).reduce((a, b) => a + b, 0) };
  await env.DB.batch(
    Object.entries(rows).map(([le, value]) =>
      env.DB.prepare(
        `INSERT INTO latency_histograms (subscription, metric, le, value) VALUES (?, 'end_to_end', ?, ?)
         ON CONFLICT (subscription, metric, le) DO UPDATE SET value = value + excluded.value`,
      ).bind(subscription, le, value),
    ),
  );
}

describe("the recent window", () => {
  it("one dead letter degrades health at once; once the window has passed, health is ok again", async () => {
    // The ring's first snapshot: nothing has failed yet.
    expect((await health()).status).toBe("ok");

    // A webhook whose receiver fails: with no retries its one event is dead-lettered at once.
    const sink = testBindings.WEBHOOK_SINK;
    await fetch(`${sink}/control/window-hook?status=500`, { method: "POST" });
    const created = await request("/v1/subscriptions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        name: "window-hook",
        topic: "events",
        filter: { type: ["window.hook"] },
        maxRetries: 0,
        webhook: { url: `${sink}/hooks/window-hook` },
      }),
    });
    expect(created.status).toBe(201);
    await expectAccepted(await postStructured("events", event({ id: "window-dead", type: "window.hook" })));
    const failed = await waitFor(
      metrics,
      (m) => m.subscriptions.some((s) => s.subscription === "window-hook" && s.deadLettered === 1),
      30_000,
    );
    const hook = sub(failed, "window-hook");
    expect(hook).toMatchObject({ deadLettered: 1, errorRate: 1, circuit: "closed" });
    // Created after the ring began: its window counts from zero, so the dead letter is in it.
    expect(hook.recent).toMatchObject({ delivered: 1, deadLettered: 1, errorRate: 1 });

    const degradedAt = Date.now();
    const degraded = await health();
    expect(degraded.status).toBe("degraded");
    expect(degraded.reasons).toEqual([`subscription window-hook error rate 1 > 0.1 over the last ${WINDOW} s`]);

    // Nothing fails any more: once a snapshot taken after the dead letter is a window old, it is out.
    const ok = await waitFor(
      async () => {
        await sleep(300);
        return health();
      },
      (h) => h.status === "ok",
      15_000,
    );
    expect(ok.reasons).toEqual([]);
    expect(Date.now() - degradedAt).toBeGreaterThanOrEqual(WINDOW * 1000 - 1000);
    // The lifetime counters still say what happened; the window says it is over.
    const after = sub(await metrics(), "window-hook");
    expect(after).toMatchObject({ deadLettered: 1, errorRate: 1, dlqDepth: 1 });
    expect(after.recent).toMatchObject({ delivered: 0, deadLettered: 0, errorRate: 0 });
  }, 60_000);

  it("the p99 is interpolated within its bucket (as histogram_quantile), over the window only", async () => {
    await sleep(1100);
    const before = sub(await metrics(), "orders-view").endToEndLatency.count;
    // 100 observations: 40 in (0.1, 0.25], 50 in (0.25, 0.5], 10 in (1, 2.5].
    await observeEndToEnd("orders-view", { "0.25": 40, "0.5": 50, "2.5": 10 }, 60);
    await sleep(1100);
    const m = await metrics();
    const view = sub(m, "orders-view");
    expect(view.endToEndLatency.count).toBe(before + 100);
    // p50: rank 50 → 0.25 + 0.25 × (10/50); p95: rank 95 → 1 + 1.5 × (5/10); p99: 1 + 1.5 × (9/10) — not the bucket's 2.5.
    expect(view.recent.endToEndLatency).toMatchObject({ count: 100, p50: 0.3, p95: 1.75, p99: 2.35 });
    expect(m.recent.latency).toEqual({ kind: "end-to-end", p50: 0.3, p99: 2.35 });

    // A window later, 100 fast ones: the window's p99 moves to them, the lifetime one barely does.
    await sleep(WINDOW * 1000 + 1100);
    await metrics();
    await observeEndToEnd("orders-view", { "0.025": 100 }, 2);
    await sleep(1100);
    const later = sub(await metrics(), "orders-view");
    expect(later.recent.endToEndLatency).toMatchObject({ count: 100, p50: 0.0175, p99: 0.02485 });
    expect(later.endToEndLatency.p99).toBeGreaterThan(1);
  }, 30_000);

  it("the badge, the table and the charts read the same figures: health, /v1/metrics recent, the last history sample", async () => {
    await sleep(1100);
    const m = await metrics();
    const [status, h] = await get<HistoryJson>("/v1/metrics/history");
    expect(status).toBe(200);
    expect(h).toMatchObject({ windowSeconds: WINDOW, historySeconds: 60 });
    expect(h.samples.length).toBeGreaterThan(3);
    const times = h.samples.map((s) => Date.parse(s.at));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    // The collection just above took this slot's snapshot: the last sample is its figures.
    const { at, ...last } = h.samples.at(-1) ?? { at: "" };
    expect(at).toBe(m.generatedAt);
    expect(last).toEqual(m.recent);
    // The totals are the sums of the table's rows.
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    const handled = sum(m.subscriptions.map((s) => s.recent.handledPerSecond));
    expect(m.recent.handledPerSecond).toBeCloseTo(handled, 4);
    const appended = sum(m.topics.flatMap((t) => t.partitions.map((p) => p.recent.appendedPerSecond)));
    expect(m.recent.appendedPerSecond).toBeCloseTo(appended, 4);
    // Some sample of the history saw the dead letter of the first test, with the same rate health judged.
    expect(h.samples.some((s) => s.errorRate > 0)).toBe(true);
    expect(h.samples.some((s) => s.latency?.p99 === 2.35)).toBe(true);
  });

  it("history needs a credential, and sums only what the caller can see", async () => {
    await expectProblem(await app.call("/v1/metrics/history"), 401);
    const admin = await history();
    expect(admin.samples.some((x) => x.errorRate > 0)).toBe(true);
    // A key that consumes orders only: the dead letter (events) is not in its totals, the orders-view latency is.
    const created = await request("/v1/keys", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "window-orders-reader", grants: ["consume:orders"] }),
    });
    expect(created.status).toBe(201);
    const { key } = (await created.json()) as { key: string };
    const res = await app.call("/v1/metrics/history", { headers: { authorization: `Bearer ${key}` } });
    expect(res.status).toBe(200);
    const mine = ((await res.json()) as HistoryJson).samples;
    expect(mine).toHaveLength(admin.samples.length);
    expect(mine.every((x) => x.errorRate === 0 && x.appendedPerSecond === 0)).toBe(true);
    expect(mine.some((x) => x.latency?.p99 === 2.35)).toBe(true);
  });
});
