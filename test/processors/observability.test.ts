import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Processor } from "../../durable-objects/processor";
import config from "../../eventline.config";
import { parseGrants } from "../../shared/security/grants";
import type { Principal } from "../../workers/platform/auth/principal";
import { evaluateHealth } from "../../workers/platform/health";
import { collectMetrics } from "../../workers/platform/metrics-model";
import type { ProcessorModel } from "../../workers/platform/processor-metrics";
import { expectAccepted, postBatch, request, waitFor } from "../helpers";
import { parseExposition } from "../prometheus";
import { CURRENCIES, minute, paid } from "./fixtures";

/**
 * The processors in GET /v1/metrics (JSON and Prometheus) and GET /v1/health with data in them
 * (docs/observability.md "Processors"): the demo's revenue-per-minute fed orders in event time,
 * one of them late. The tests build on each other (storage is per file, tests run in order).
 */

afterEach(() => vi.restoreAllMocks());

interface MetricsDoc {
  generatedAt: string;
  processors: ProcessorModel[];
}
interface HealthDoc {
  status: string;
  checks: (({ subscription: string } | { processor: string }) & { status: string; reasons: string[] })[];
  reasons: string[];
}

async function metricsDoc(): Promise<MetricsDoc> {
  const res = await request("/v1/metrics");
  expect(res.status).toBe(200);
  return (await res.json()) as MetricsDoc;
}
const revenue = (m: MetricsDoc) => {
  const p = m.processors.find((x) => x.processor === "revenue-per-minute");
  if (p === undefined) throw new Error("no revenue-per-minute in the metrics");
  return p;
};
const sum = (p: ProcessorModel, f: (i: ProcessorModel["partitions"][number]) => number) => p.partitions.reduce((n, i) => n + f(i), 0);

describe("processors in GET /v1/metrics", () => {
  it("lists both demo processors, idle, before any input", async () => {
    const m = await metricsDoc();
    expect(m.processors.map((p) => p.processor)).toEqual(["revenue-per-minute", "unpaid-orders"]);
    const p = revenue(m);
    expect(p).toMatchObject({
      kind: "aggregate",
      inputTopic: "orders",
      outputTopic: "orders-revenue",
      internalTopic: "processor.revenue-per-minute",
      lowWatermark: null,
      watermarkLagSeconds: null,
      lag: 0,
      inputLag: 0,
      openWindows: 0,
      lateEvents: 0,
      results: 0,
      pendingOutputs: 0,
    });
    const partitions = config.topics.find((t) => t.name === "processor.revenue-per-minute")?.partitions;
    expect(p.partitions.map((i) => i.partition)).toEqual(Array.from({ length: partitions ?? 0 }, (_, i) => i));
  });

  it("shows watermarks, results, open windows and late events as the run makes them", { timeout: 90_000 }, async () => {
    const t0 = minute(0);
    await expectAccepted(
      await postBatch("orders", [
        paid("a1", "EUR", 100, t0 + 1_000),
        paid("a2", "USD", 70, t0 + 2_000),
        // Minute 2: every partition's watermark passes minute 0's end + grace; these windows stay open.
        ...CURRENCIES.map((c, i) => paid(`b${i}`, c, 1, minute(2) + 10_000)),
      ]),
    );
    const finals = await waitFor(metricsDoc, (m) => revenue(m).results >= 2 && revenue(m).lag === 0, 60_000);
    const p = revenue(finals);
    expect(p.results).toBeGreaterThanOrEqual(2);
    expect(p.openWindows).toBeGreaterThanOrEqual(1);
    expect(p.outputPerSecond).toBeGreaterThan(0);
    // An instance that saw the minute-2 events holds a watermark past minute 0's end + grace.
    const watermarks = p.partitions.flatMap((i) => (i.watermark === null ? [] : [i.watermark]));
    expect(watermarks.length).toBeGreaterThan(0);
    expect(watermarks.some((w) => Date.parse(w) >= minute(1) + 30_000)).toBe(true);
    const generated = Date.parse(finals.generatedAt);
    for (const i of p.partitions) {
      if (i.watermark === null) expect(i.watermarkLagSeconds).toBeNull();
      else expect(i.watermarkLagSeconds).toBeCloseTo((generated - Date.parse(i.watermark)) / 1000, 1);
    }
    // Totals are the instances' sums; the low watermark is the lowest (null while an instance has none).
    expect(p.results).toBe(sum(p, (i) => i.results));
    expect(p.openWindows).toBe(sum(p, (i) => i.openWindows));
    expect(p.lowWatermark).toBe(p.partitions.some((i) => i.watermark === null) ? null : [...watermarks].sort()[0]);

    // EUR at 12:00:05, now far behind its instance's watermark + grace: late, counted, dead-lettered.
    await expectAccepted(await postBatch("orders", [paid("late", "EUR", 9, t0 + 5_000)]));
    const late = await waitFor(metricsDoc, (m) => revenue(m).lateEvents >= 1, 30_000);
    expect(revenue(late).lateEvents).toBe(1);
    expect(revenue(late).partitions.filter((i) => i.lateEvents === 1)).toHaveLength(1);
    const dead = await env.DB.prepare("SELECT reason FROM dead_letters WHERE subscription = ?").bind("processor:revenue-per-minute").all();
    expect(dead.results).toEqual([{ reason: "late_event" }]);
  });

  it("the Prometheus exposition has the same figures as eventline_processor_* series", async () => {
    const json = revenue(await metricsDoc());
    const res = await request("/v1/metrics", { headers: { accept: "text/plain" } });
    expect(res.status).toBe(200);
    const x = parseExposition(await res.text());
    const name = { processor: "revenue-per-minute" };
    expect(x.value("eventline_processor_input_lag_events", name)).toBe(json.inputLag);
    for (const i of json.partitions) {
      const at = { ...name, partition: String(i.partition) };
      expect(x.value("eventline_processor_lag_events", at)).toBe(i.lag);
      expect(x.value("eventline_processor_late_events_total", at)).toBe(i.lateEvents);
      expect(x.value("eventline_processor_results_total", at)).toBe(i.results);
      expect(x.value("eventline_processor_open_windows", at)).toBe(i.openWindows);
      expect(x.value("eventline_processor_pending_outputs", at)).toBe(i.pendingOutputs);
      expect(x.value("eventline_processor_watermark_seconds", at)).toBe(i.watermark === null ? undefined : Date.parse(i.watermark) / 1000);
    }
    expect(x.value("eventline_processor_lag_events", { processor: "unpaid-orders", partition: "0" })).toBe(0);
  });

  it("shows processors only to callers that may consume their input topic", async () => {
    const principal = (grants: string[]): Principal => ({ id: "k", kind: "api-key", grants: parseGrants(grants).grants });
    const names = async (grants: string[]) => (await collectMetrics(env, config, principal(grants))).processors.map((p) => p.processor);
    expect(await names(["consume:orders"])).toEqual(["revenue-per-minute", "unpaid-orders"]);
    expect(await names(["produce:orders", "consume:events"])).toEqual([]);
  });
});

describe("processors in GET /v1/health", () => {
  const processorChecks = (h: HealthDoc) => h.checks.filter((c) => "processor" in c);

  it("one check per processor: ok with the shipped thresholds and the run above", async () => {
    const res = await request("/v1/health");
    const h = (await res.json()) as HealthDoc;
    expect(processorChecks(h)).toEqual([
      { processor: "revenue-per-minute", status: "ok", reasons: [] },
      { processor: "unpaid-orders", status: "ok", reasons: [] },
    ]);
  });

  it("degraded while an instance's outputs fail with results waiting; ok again once handed on", async () => {
    const original = Processor.prototype.status;
    vi.spyOn(Processor.prototype, "status").mockImplementation(async function (this: Processor, input) {
      const s = await original.call(this, input);
      return input.processor === "revenue-per-minute" && input.instance === 0
        ? { ...s, pendingOutputs: 3, lastOutputError: "orders-revenue/0 did not answer" }
        : s;
    });
    const res = await request("/v1/health");
    expect(res.status).toBe(200);
    const h = (await res.json()) as HealthDoc;
    const reason = "processor revenue-per-minute outputs failing on partition 0: 3 not handed on (orders-revenue/0 did not answer)";
    expect(processorChecks(h)[0]).toEqual({ processor: "revenue-per-minute", status: "degraded", reasons: [reason] });
    expect(h.reasons).toContain(reason);
    expect(["degraded", "failing"]).toContain(h.status);
    const admin: Principal = { id: "admin", kind: "admin-key", grants: parseGrants(config.security.adminGrants).grants };
    const model = await collectMetrics(env, config, admin, "health");
    expect(model.processors[0]?.partitions[0]).toMatchObject({ pendingOutputs: 3, lastOutputError: "orders-revenue/0 did not answer" });
    expect(evaluateHealth(model, config).checks.filter((c) => "processor" in c)).toEqual(processorChecks(h));
    vi.restoreAllMocks();
    expect(processorChecks((await (await request("/v1/health")).json()) as HealthDoc)[0]?.status).toBe("ok");
  });
});
