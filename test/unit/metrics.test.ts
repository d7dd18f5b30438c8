import { env } from "cloudflare:workers";
import fc from "fast-check";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { describe, expect, it } from "vitest";
import config from "../../eventline.config";
import { DEFAULT_HEALTH, defineConfig, type EventlineConfigInput } from "../../shared/config";
import {
  BUCKET_LABELS,
  bucketIndex,
  ConsumerMetrics,
  CounterRegistry,
  Exposition,
  emptyHistogram,
  escapeLabelValue,
  type Histogram,
  histogramFromRows,
  histogramStatements,
  LATENCY_BUCKETS,
  merge,
  metricsEnabled,
  observe,
  parseHistogram,
  quantile,
  summarize,
} from "../../shared/metrics";
import { evaluateHealth } from "../../workers/platform/health";
import type { MetricsModel, SubscriptionModel } from "../../workers/platform/metrics-model";
import { recentSubscription, recentTotals } from "../../workers/platform/metrics-window";
import { wantsPrometheus } from "../../workers/platform/routes/metrics";
import { parseExposition } from "../prometheus";

const of = (...seconds: number[]): Histogram => {
  const h = emptyHistogram();
  for (const s of seconds) observe(h, s);
  return h;
};
const repeat = (n: number, seconds: number) => Array.from({ length: n }, () => seconds);

describe("latency histograms", () => {
  it("has the fixed buckets, +Inf last, and puts a value on a bound into that bound's bucket", () => {
    expect(LATENCY_BUCKETS).toEqual([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]);
    expect(BUCKET_LABELS.at(-1)).toBe("+Inf");
    expect(BUCKET_LABELS).toHaveLength(16);
    expect(bucketIndex(0)).toBe(0);
    expect(bucketIndex(0.001)).toBe(0);
    expect(bucketIndex(0.0010001)).toBe(1);
    expect(bucketIndex(60)).toBe(14);
    expect(bucketIndex(60.5)).toBe(15);
    const h = of(0.0005, 0.003, 0.003, 2, 100);
    expect(h.buckets).toEqual([1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
    expect(h.count).toBe(5);
    expect(h.sum).toBeCloseTo(102.0065, 10);
  });

  it("estimates quantiles by linear interpolation within the bucket", () => {
    // 100 observations in (0.0025, 0.005]: rank q·100 of 100 in that bucket.
    const one = of(...repeat(100, 0.003));
    expect(quantile(one, 0.5)).toBeCloseTo(0.0025 + 0.0025 * 0.5, 12);
    expect(quantile(one, 0.99)).toBeCloseTo(0.0025 + 0.0025 * 0.99, 12);
    // Half in [0, 0.001], half in (0.5, 1].
    const two = of(...repeat(50, 0.0001), ...repeat(50, 0.7));
    expect(quantile(two, 0.5)).toBeCloseTo(0.001, 12);
    expect(quantile(two, 0.95)).toBeCloseTo(0.5 + 0.5 * (45 / 50), 12);
    expect(quantile(two, 0.25)).toBeCloseTo(0.0005, 12);
    // A rank in +Inf answers the highest finite bound; empty is null.
    expect(quantile(of(500, 600), 0.5)).toBe(60);
    expect(quantile(emptyHistogram(), 0.5)).toBeNull();
    expect(summarize(emptyHistogram())).toEqual({ count: 0, sum: 0, p50: null, p95: null, p99: null });
    expect(summarize(one)).toEqual({ count: 100, sum: expect.closeTo(0.3, 12), p50: 0.00375, p95: 0.004875, p99: 0.004975 });
  });

  it("quantiles are monotonic in q and stay within the observed buckets (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 120, noNaN: true }), { minLength: 1, maxLength: 200 }), (values) => {
        const h = of(...values);
        const qs = [0, 0.1, 0.5, 0.9, 0.95, 0.99, 1].map((q) => quantile(h, q) as number);
        for (let i = 1; i < qs.length; i++) expect(qs[i]).toBeGreaterThanOrEqual(qs[i - 1] as number);
        const lowest = LATENCY_BUCKETS[bucketIndex(Math.min(...values)) - 1] ?? 0;
        expect(qs[0]).toBeGreaterThanOrEqual(lowest);
        expect(qs.at(-1)).toBeLessThanOrEqual(60);
      }),
    );
  });

  it("merges like observing everything into one, without changing its inputs", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 100, noNaN: true }), { maxLength: 50 }),
        fc.array(fc.double({ min: 0, max: 100, noNaN: true }), { maxLength: 50 }),
        (xs, ys) => {
          const a = of(...xs);
          const b = of(...ys);
          const before = JSON.stringify([a, b]);
          const merged = merge(a, b);
          const all = of(...xs, ...ys);
          expect(merged.buckets).toEqual(all.buckets);
          expect(merged.count).toBe(all.count);
          expect(merged.sum).toBeCloseTo(all.sum, 6);
          expect(merge(b, a).buckets).toEqual(merged.buckets);
          expect(JSON.stringify([a, b])).toBe(before);
        },
      ),
    );
  });

  it("reads back from stored rows and from its persisted JSON; damaged JSON restarts empty", () => {
    const h = of(0.002, 0.002, 45);
    const rows = [
      ...h.buckets.flatMap((n, i) => (n > 0 ? [{ le: BUCKET_LABELS[i] as string, value: n }] : [])),
      { le: "sum", value: h.sum },
      { le: "count", value: h.count },
    ];
    expect(histogramFromRows(rows)).toEqual(h);
    expect(parseHistogram(JSON.stringify(h))).toEqual(h);
    expect(parseHistogram("{not json")).toEqual(emptyHistogram());
    expect(parseHistogram(JSON.stringify({ buckets: [1, 2], sum: 1, count: 3 }))).toEqual(emptyHistogram());
    expect(parseHistogram(null)).toEqual(emptyHistogram());
  });

  it("upserts add to what is stored (two writes of the same histogram double every row)", async () => {
    const h = of(0.0004, 0.2, 0.2, 7);
    const name = `unit-${crypto.randomUUID()}`;
    for (let i = 0; i < 2; i++) await env.DB.batch(histogramStatements(env.DB, name, [["handler", h]]));
    expect(histogramStatements(env.DB, name, [["handler", emptyHistogram()]])).toEqual([]);
    const rows = (
      await env.DB.prepare("SELECT le, value FROM latency_histograms WHERE subscription = ? AND metric = 'handler'")
        .bind(name)
        .all<{ le: string; value: number }>()
    ).results;
    expect(rows.map((r) => r.le).sort()).toEqual(["0.001", "0.25", "10", "count", "sum"]);
    expect(histogramFromRows(rows)).toEqual({ ...merge(h, h), sum: expect.closeTo(2 * h.sum, 9) });
  });
});

describe("ConsumerMetrics", () => {
  it("take() hands over what is pending once; restore() gives it back, except the end-to-end latency of the failed batch", async () => {
    const m = new ConsumerMetrics(`unit-consumer-${crypto.randomUUID()}`);
    m.observeHandler(0.02);
    m.settled("duplicate");
    const first = m.take(env.DB, 1.5);
    expect(first.statements).toHaveLength(2); // the histogram upsert and the duplicates count
    expect(m.take(env.DB).statements).toEqual([]);
    first.restore();
    const second = m.take(env.DB);
    expect(second.statements).toHaveLength(2);
    await env.DB.batch(second.statements);
    const rows = (
      await env.DB.prepare("SELECT metric, le, value FROM latency_histograms WHERE subscription = ?")
        .bind(m.subscription)
        .all<{ metric: string; le: string; value: number }>()
    ).results;
    // The handler latency came back; the end-to-end one did not (its event was not handled).
    expect(new Set(rows.map((r) => r.metric))).toEqual(new Set(["handler"]));
    expect(histogramFromRows(rows.filter((r) => r.metric === "handler"))).toEqual(of(0.02));
    const stats = await env.DB.prepare("SELECT duplicates FROM subscription_stats WHERE subscription = ?").bind(m.subscription).first();
    expect(stats).toEqual({ duplicates: 1 });
  });

  it("constructed disabled (EVENTLINE_METRICS off), it keeps nothing, writes nothing and reports nothing", () => {
    const m = new ConsumerMetrics(`unit-consumer-${crypto.randomUUID()}`, false);
    m.observeHandler(0.02);
    m.settled("duplicate");
    m.redelivered();
    const taken = m.take(env.DB, 1.5);
    expect(taken.statements).toEqual([]);
    taken.restore();
    expect(m.take(env.DB).statements).toEqual([]);
    const points: unknown[] = [];
    m.report({ METRICS: { writeDataPoint: (p: unknown) => points.push(p) } }, 1);
    expect(points).toEqual([]);
  });
});

describe("Prometheus text exposition", () => {
  it("escapes backslash, double quote and newline in label values, and backslash and newline in HELP", () => {
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    const text = new Exposition().counter("x_total", "help with \\ and\nnewline", { path: 'C:\\dir\\"f"\nx' }, 3).render();
    expect(text).toBe('# HELP x_total help with \\\\ and\\nnewline\n# TYPE x_total counter\nx_total{path="C:\\\\dir\\\\\\"f\\"\\nx"} 3\n');
    // The standard parser reads the original value back.
    const [family] = parsePrometheusTextFormat(text);
    expect(family?.metrics[0]?.labels).toEqual({ path: 'C:\\dir\\"f"\nx' });
    expect(family?.type).toBe("COUNTER");
  });

  it("writes HELP and TYPE once per family, histograms as cumulative buckets with +Inf = count", () => {
    const h = of(0.0005, 0.003, 0.003, 2, 100);
    const text = new Exposition()
      .histogram("lat_seconds", "Latency.", { sub: "a" }, h)
      .histogram("lat_seconds", "Latency.", { sub: "b" }, emptyHistogram())
      .gauge("g", "A gauge.", {}, 1.5)
      .gauge("g", "A gauge.", { k: "v" }, Number.POSITIVE_INFINITY)
      .render();
    expect(text.match(/^# HELP lat_seconds /gm)).toHaveLength(1);
    expect(text.match(/^# TYPE lat_seconds histogram$/gm)).toHaveLength(1);
    expect(text).toContain('lat_seconds_bucket{sub="a",le="0.001"} 1\n');
    expect(text).toContain('lat_seconds_bucket{sub="a",le="0.005"} 3\n');
    expect(text).toContain('lat_seconds_bucket{sub="a",le="60"} 4\n');
    expect(text).toContain('lat_seconds_bucket{sub="a",le="+Inf"} 5\n');
    expect(text).toContain('lat_seconds_count{sub="a"} 5\n');
    expect(text).toContain('g{k="v"} +Inf\n');
    const parsed = parseExposition(text);
    expect(parsed.families.map((f) => [f.name, f.type])).toEqual([
      ["lat_seconds", "HISTOGRAM"],
      ["g", "GAUGE"],
    ]);
    const [a, b] = parsed.histograms.get("lat_seconds") ?? [];
    expect(a?.labels).toEqual({ sub: "a" });
    expect(a?.buckets.map(([, n]) => n)).toEqual([1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 5]);
    expect(a).toMatchObject({ count: 5, sum: h.sum });
    expect(b).toMatchObject({ labels: { sub: "b" }, count: 0, sum: 0 });
    expect(parsed.value("g", { k: "v" })).toBe(Number.POSITIVE_INFINITY);
  });

  it("the parser helper catches what the renderer must never produce", () => {
    const bad = (text: string) => () => parseExposition(text);
    expect(bad('# HELP x_total X.\n# TYPE x_total counter\nx_total{a="1"} 1\nx_total{a="1"} 2\n')).toThrow(/duplicate/);
    expect(bad("# HELP x X.\n# TYPE x counter\nx 1\n")).toThrow();
    expect(
      bad(["# HELP h H.", "# TYPE h histogram", 'h_bucket{le="1"} 3', 'h_bucket{le="+Inf"} 2', "h_sum 1", "h_count 2", ""].join("\n")),
    ).toThrow(/cumulative/);
    expect(bad(["# TYPE g gauge", "g 1", ""].join("\n"))).toThrow(/HELP/);
  });

  it("refuses a duplicate series, a counter not named _total, and bad names; leaves empty families out", () => {
    const out = new Exposition().counter("c_total", "C.", { a: "1", b: "2" }, 1);
    expect(() => out.counter("c_total", "C.", { b: "2", a: "1" }, 2)).toThrow(/duplicate series/);
    expect(() => out.counter("requests", "R.", {}, 1)).toThrow(/_total/);
    expect(() => out.gauge("c_total", "C.", {}, 1)).toThrow(/declared as counter/);
    expect(() => out.gauge("bad-name", "B.", {}, 1)).toThrow(/invalid metric name/);
    expect(() => out.gauge("ok", "O.", { "bad-label": "x" }, 1)).toThrow(/invalid label name/);
    expect(() => out.histogram("h_seconds", "H.", { le: "1" }, emptyHistogram())).toThrow(/invalid label name/);
    expect(new Exposition().declare("nothing_total", "counter", "N.").render()).toBe("");
  });
});

describe("the rest", () => {
  it("counts per label set, whatever the label order", () => {
    const r = new CounterRegistry();
    r.inc("x_total", { topic: "a", status: "400" });
    r.inc("x_total", { status: "400", topic: "a" }, 2);
    r.inc("x_total", { topic: "b", status: "503" });
    expect(r.get("x_total", { topic: "a", status: "400" })).toBe(3);
    expect(r.list("x_total")).toEqual([
      { labels: { topic: "a", status: "400" }, value: 3 },
      { labels: { topic: "b", status: "503" }, value: 1 },
    ]);
    r.reset();
    expect(r.list("x_total")).toEqual([]);
  });

  it("EVENTLINE_METRICS: only 'off' switches metrics off", () => {
    expect(metricsEnabled({ EVENTLINE_METRICS: "on" })).toBe(true);
    expect(metricsEnabled({})).toBe(true);
    expect(metricsEnabled({ EVENTLINE_METRICS: "off" })).toBe(false);
  });

  it("negotiates Prometheus text from Accept (q-values honoured, JSON by default)", () => {
    expect(wantsPrometheus(undefined)).toBe(false);
    expect(wantsPrometheus("application/json")).toBe(false);
    expect(wantsPrometheus("*/*")).toBe(false);
    expect(wantsPrometheus("text/plain")).toBe(true);
    expect(wantsPrometheus("text/plain; version=0.0.4")).toBe(true);
    // What Prometheus sends.
    expect(wantsPrometheus("application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1")).toBe(true);
    expect(wantsPrometheus("text/plain;q=0.2, application/json")).toBe(false);
    expect(wantsPrometheus("text/plain;q=0")).toBe(false);
  });
});

describe("health rule", () => {
  const sub = (over: Partial<SubscriptionModel>): SubscriptionModel => ({
    subscription: "orders-view",
    topic: "orders",
    kind: "worker",
    delivered: 100,
    handled: 100,
    retried: 0,
    deadLettered: 0,
    dlqDepth: 0,
    circuit: "closed",
    errorRate: 0,
    handlerLatency: emptyHistogram(),
    endToEndLatency: emptyHistogram(),
    lag: [],
    recent: recentSubscription(
      { at: 1, counters: { topic: "orders", ...counts(0), handlerLatency: emptyHistogram(), endToEndLatency: emptyHistogram() } },
      null,
    ),
    ...over,
  });
  const counts = (n: number) => ({ handled: n, retried: 0, deadLettered: 0, duplicates: 0 });
  const model = (...subscriptions: SubscriptionModel[]): MetricsModel => ({
    generatedAt: "",
    topics: [],
    subscriptions,
    replays: [],
    processors: [],
    recent: recentTotals(300, [], []),
  });
  const lag = (events: number, seconds = 1, redelivered = 0, maxSends = 0) => [
    { partition: 0, events: events / 2, seconds, redelivered, maxSends },
    { partition: 1, events: events / 2, seconds: seconds / 2, redelivered: 0, maxSends: 0 },
  ];

  it("uses the defaults, or the subscription's config block", () => {
    expect(config.subscriptions.find((s) => s.name === "orders-view")?.health).toEqual(DEFAULT_HEALTH);
    expect(DEFAULT_HEALTH).toEqual({ maxLagEvents: 5000, maxLagSeconds: 300, maxErrorRate: 0.1 });
    const tight = defineConfig({
      ...(config as EventlineConfigInput),
      subscriptions: config.subscriptions.map((s) => (s.name === "orders-view" ? { ...s, health: { maxLagEvents: 10 } } : s)),
    });
    expect(tight.subscriptions.find((s) => s.name === "orders-view")?.health).toEqual({ ...DEFAULT_HEALTH, maxLagEvents: 10 });
    expect(evaluateHealth(model(sub({ lag: lag(12) })), tight).status).toBe("degraded");
    expect(evaluateHealth(model(sub({ lag: lag(12) })), config).status).toBe("ok");
  });

  it("ok → degraded (a threshold exceeded) → failing (10× exceeded, or the circuit open)", () => {
    expect(evaluateHealth(model(), config)).toEqual({ status: "ok", checks: [], reasons: [] });
    expect(evaluateHealth(model(sub({ lag: lag(5000) })), config)).toEqual({
      status: "ok",
      checks: [{ subscription: "orders-view", status: "ok", reasons: [] }],
      reasons: [],
    });
    const degraded = evaluateHealth(model(sub({ lag: lag(12_000) })), config);
    expect(degraded).toEqual({
      status: "degraded",
      checks: [{ subscription: "orders-view", status: "degraded", reasons: ["subscription orders-view lag 12,000 events > 5,000"] }],
      reasons: ["subscription orders-view lag 12,000 events > 5,000"],
    });
    expect(evaluateHealth(model(sub({ lag: lag(10, 420.5) })), config).reasons).toEqual(["subscription orders-view lag 420.5 s > 300 s"]);
    // The error rate judged is the recent window's, not the lifetime one.
    const recent = { ...sub({}).recent, delivered: 4, handled: 3, retried: 1, errorRate: 0.25 };
    expect(evaluateHealth(model(sub({ recent })), config).reasons).toEqual([
      "subscription orders-view error rate 0.25 > 0.1 over the last 300 s",
    ]);
    expect(evaluateHealth(model(sub({ errorRate: 1 })), config).reasons).toEqual([]);
    const failing = evaluateHealth(model(sub({ lag: lag(50_002) }), sub({ subscription: "activity", circuit: "half-open" })), config);
    expect(failing.status).toBe("failing");
    expect(failing.checks.map((c) => c.status)).toEqual(["failing", "degraded"]);
    expect(failing.reasons).toEqual([
      "subscription orders-view lag 50,002 events > 5,000 (over 10× the threshold)",
      "subscription activity circuit is half-open",
    ]);
    expect(evaluateHealth(model(sub({ circuit: "open" })), config)).toMatchObject({
      status: "failing",
      reasons: ["subscription orders-view circuit is open"],
    });
  });

  it("names a stalled subscription: events the partition log sent again and still not handled (ADR 0030)", () => {
    // A small lag, far under every threshold, is still a stall when the log had to send it again.
    expect(evaluateHealth(model(sub({ lag: lag(4, 90, 2, 2) })), config)).toMatchObject({
      status: "degraded",
      reasons: ["subscription orders-view stalled: 2 events sent again by the partition log are still not handled (up to 2 sends)"],
    });
    // Sent a third time and still not handled: failing.
    expect(evaluateHealth(model(sub({ lag: lag(4, 150, 2, 3) })), config)).toMatchObject({
      status: "failing",
      reasons: ["subscription orders-view stalled: 2 events sent again by the partition log are still not handled (up to 3 sends)"],
    });
  });
});
