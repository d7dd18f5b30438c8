import { describe, expect, it } from "vitest";
import config from "../../eventline.config";
import { defineConfig, type EventlineConfigInput } from "../../shared/config";
import { Exposition } from "../../shared/metrics";
import { DEFAULT_PROCESSOR_HEALTH } from "../../shared/processors-config";
import { evaluateHealth, processorCheck } from "../../workers/platform/health";
import type { MetricsModel } from "../../workers/platform/metrics-model";
import { recentTotals } from "../../workers/platform/metrics-window";
import {
  type ProcessorModel,
  type ProcessorPartitionModel,
  processorModel,
  processorSeries,
} from "../../workers/platform/processor-metrics";
import type { ProcessorView } from "../../workers/platform/processors";
import { parseExposition } from "../prometheus";

/** The processors' part of health and of the Prometheus exposition, on hand-made models (docs/observability.md "Processors"). */

const part = (over: Partial<ProcessorPartitionModel> = {}): ProcessorPartitionModel => ({
  partition: 0,
  watermark: "2026-01-01T12:00:00.000Z",
  watermarkLagSeconds: 30,
  lag: 0,
  openWindows: 1,
  keys: 1,
  lateEvents: 0,
  results: 2,
  pendingOutputs: 0,
  outputPerSecond: 0.05,
  lastOutputError: null,
  catchingUp: false,
  backfillRemaining: 0,
  ...over,
});

const proc = (partitions: ProcessorPartitionModel[], over: Partial<ProcessorModel> = {}): ProcessorModel => ({
  processor: "revenue-per-minute",
  kind: "aggregate",
  inputTopic: "orders",
  outputTopic: "orders-revenue",
  internalTopic: "processor.revenue-per-minute",
  lowWatermark: "2026-01-01T12:00:00.000Z",
  watermarkLagSeconds: 30,
  lag: partitions.reduce((n, p) => n + p.lag, 0),
  inputLag: 0,
  openWindows: partitions.reduce((n, p) => n + p.openWindows, 0),
  lateEvents: 0,
  results: 0,
  outputPerSecond: 0,
  pendingOutputs: partitions.reduce((n, p) => n + p.pendingOutputs, 0),
  partitions,
  ...over,
});

const model = (...processors: ProcessorModel[]): MetricsModel => ({
  generatedAt: "",
  topics: [],
  subscriptions: [],
  replays: [],
  processors,
  recent: recentTotals(300, [], []),
});

describe("processor health", () => {
  it("has defaults (5,000 events, 600 s, 1,000 outputs) that a processor's config block overrides", () => {
    expect(DEFAULT_PROCESSOR_HEALTH).toEqual({ maxLagEvents: 5000, maxWatermarkLagSeconds: 600, maxPendingOutputs: 1000 });
    expect(config.processors.map((p) => p.health)).toEqual([DEFAULT_PROCESSOR_HEALTH, DEFAULT_PROCESSOR_HEALTH]);
    const tight = defineConfig({
      ...(config as EventlineConfigInput),
      processors: config.processors.map((p) => (p.name === "revenue-per-minute" ? { ...p, health: { maxLagEvents: 10 } } : p)),
    });
    expect(tight.processors[0]?.health).toEqual({ ...DEFAULT_PROCESSOR_HEALTH, maxLagEvents: 10 });
    const lagging = proc([part({ lag: 12 })]);
    expect(processorCheck(lagging, config)).toEqual({ processor: "revenue-per-minute", status: "ok", reasons: [] });
    expect(processorCheck(lagging, tight)).toEqual({
      processor: "revenue-per-minute",
      status: "degraded",
      reasons: ["processor revenue-per-minute lag 12 events > 10"],
    });
    expect(() =>
      defineConfig({
        ...(config as EventlineConfigInput),
        // A misspelt threshold: the block is strict.
        processors: config.processors.map((p) => ({ ...p, health: { maxLagEvent: 10 } })),
      } as unknown as EventlineConfigInput),
    ).toThrow(/maxLagEvent/);
  });

  it("lag and pending outputs: degraded over the threshold, failing over 10×; the input's backlog counts", () => {
    expect(processorCheck(proc([part({ lag: 5000 })]), config).status).toBe("ok");
    expect(processorCheck(proc([part({ lag: 4000 })], { inputLag: 1001, lag: 5001 }), config)).toMatchObject({
      status: "degraded",
      reasons: ["processor revenue-per-minute lag 5,001 events > 5,000"],
    });
    expect(processorCheck(proc([part({ lag: 50_001 })]), config)).toMatchObject({
      status: "failing",
      reasons: ["processor revenue-per-minute lag 50,001 events > 5,000 (over 10× the threshold)"],
    });
    expect(processorCheck(proc([part({ pendingOutputs: 1001 })]), config).reasons).toEqual([
      "processor revenue-per-minute pending outputs 1,001 > 1,000",
    ]);
  });

  it("outputs failing: degraded while results wait behind a failed hand-on, failing once 10× the pending threshold", () => {
    const failing = part({ partition: 2, pendingOutputs: 3, lastOutputError: "orders-revenue/1: overloaded" });
    expect(processorCheck(proc([part(), failing]), config)).toEqual({
      processor: "revenue-per-minute",
      status: "degraded",
      reasons: ["processor revenue-per-minute outputs failing on partition 2: 3 not handed on (orders-revenue/1: overloaded)"],
    });
    // The error alone, with nothing waiting (the retry is about to succeed or nothing is left): not judged.
    expect(processorCheck(proc([part({ lastOutputError: "boom" })]), config).status).toBe("ok");
    const many = processorCheck(
      proc([part({ pendingOutputs: 6000, lastOutputError: "x" }), part({ partition: 1, pendingOutputs: 5000, lastOutputError: "y" })]),
      config,
    );
    expect(many.status).toBe("failing");
    expect(many.reasons).toEqual([
      "processor revenue-per-minute outputs failing on partitions 0, 1: 11,000 not handed on (x)",
      "processor revenue-per-minute pending outputs 11,000 > 1,000 (over 10× the threshold)",
    ]);
  });

  it("a watermark far behind is judged only on an instance with events waiting (the worst such)", () => {
    // Quiet: the watermark rightly stands still, however old.
    expect(processorCheck(proc([part({ watermarkLagSeconds: 86_400 })]), config).status).toBe("ok");
    const stuck = proc([
      part({ watermarkLagSeconds: 86_400 }),
      part({ partition: 1, lag: 4, watermarkLagSeconds: 900 }),
      part({ partition: 2, lag: 1, watermarkLagSeconds: 700 }),
      part({ partition: 3, lag: 9, watermark: null, watermarkLagSeconds: null }),
    ]);
    expect(processorCheck(stuck, config)).toEqual({
      processor: "revenue-per-minute",
      status: "degraded",
      reasons: ["processor revenue-per-minute watermark 900 s behind > 600 s on partition 1 with 4 events waiting"],
    });
    expect(processorCheck(proc([part({ lag: 1, watermarkLagSeconds: 6000.5 })]), config)).toMatchObject({
      status: "failing",
      reasons: [
        "processor revenue-per-minute watermark 6000.5 s behind > 600 s on partition 0 with 1 events waiting (over 10× the threshold)",
      ],
    });
    expect(processorCheck(proc([part({ lag: 1, watermarkLagSeconds: 600 })]), config).status).toBe("ok");
  });

  it("joins the subscriptions' checks: the whole is the worst of them", () => {
    const ok = proc([part()], { processor: "unpaid-orders", kind: "pattern" });
    const bad = proc([part({ lag: 60_000 })]);
    const report = evaluateHealth(model(ok, bad), config);
    expect(report.status).toBe("failing");
    expect(report.checks.map((c) => ["processor" in c ? c.processor : "", c.status])).toEqual([
      ["unpaid-orders", "ok"],
      ["revenue-per-minute", "failing"],
    ]);
    expect(report.reasons).toEqual(["processor revenue-per-minute lag 60,000 events > 5,000 (over 10× the threshold)"]);
    expect(evaluateHealth(model(ok), config)).toEqual({
      status: "ok",
      checks: [{ processor: "unpaid-orders", status: "ok", reasons: [] }],
      reasons: [],
    });
  });
});

describe("processor model and Prometheus series", () => {
  it("computes the watermark lag against the clock, null before any input", () => {
    const view = {
      name: "revenue-per-minute",
      kind: "aggregate",
      input: { topic: "orders" },
      output: { topic: "orders-revenue", table: true },
      internalTopic: "processor.revenue-per-minute",
      lowWatermark: null,
      lag: 3,
      inputLag: 1,
      openWindows: 2,
      lateEvents: 1,
      results: 4,
      outputPerSecond: 0.5,
      pendingOutputs: 0,
      partitions: [
        { ...part({ partition: 0, lag: 2 }), inputs: [], backfill: null },
        { ...part({ partition: 1, watermark: null }), inputs: [], backfill: { read: 10, total: 40 } },
      ],
    } as unknown as ProcessorView;
    const now = Date.parse("2026-01-01T12:01:30.250Z");
    const m = processorModel(view, now);
    expect(m).toMatchObject({
      processor: "revenue-per-minute",
      inputTopic: "orders",
      outputTopic: "orders-revenue",
      watermarkLagSeconds: null,
      lag: 3,
      inputLag: 1,
    });
    expect(m.partitions.map((p) => [p.partition, p.watermarkLagSeconds, p.lag, p.backfillRemaining])).toEqual([
      [0, 90.25, 2, 0],
      [1, null, 0, 30],
    ]);
    expect(processorModel({ ...view, lowWatermark: "2026-01-01T12:02:00.000Z" }, now).watermarkLagSeconds).toBe(0);
  });

  it("writes eventline_processor_* series with a processor label (and partition per instance), equal to the model", () => {
    const m = proc(
      [
        part({ lag: 3, lateEvents: 2, results: 7, pendingOutputs: 1, lastOutputError: "x" }),
        part({ partition: 1, watermark: null, watermarkLagSeconds: null, catchingUp: true, backfillRemaining: 30 }),
      ],
      { inputLag: 5, lowWatermark: null, watermarkLagSeconds: null },
    );
    const out = new Exposition();
    processorSeries(out, [m, proc([part()], { processor: "unpaid-orders" })]);
    const x = parseExposition(out.render());
    const at = (partition: number, processor = "revenue-per-minute") => ({ processor, partition: String(partition) });
    expect(x.value("eventline_processor_input_lag_events", { processor: "revenue-per-minute" })).toBe(5);
    expect(x.value("eventline_processor_lag_events", at(0))).toBe(3);
    expect(x.value("eventline_processor_lag_events", at(1))).toBe(0);
    expect(x.value("eventline_processor_late_events_total", at(0))).toBe(2);
    expect(x.value("eventline_processor_results_total", at(0))).toBe(7);
    expect(x.value("eventline_processor_pending_outputs", at(0))).toBe(1);
    expect(x.value("eventline_processor_output_failing", at(0))).toBe(1);
    expect(x.value("eventline_processor_output_failing", at(1))).toBe(0);
    expect(x.value("eventline_processor_catching_up", at(1))).toBe(1);
    expect(x.value("eventline_processor_backfill_remaining", at(1))).toBe(30);
    expect(x.value("eventline_processor_backfill_remaining", at(0))).toBe(0);
    expect(x.value("eventline_processor_output_per_second", at(0))).toBe(0.05);
    expect(x.value("eventline_processor_open_windows", at(0))).toBe(1);
    expect(x.value("eventline_processor_watermark_seconds", at(0))).toBe(Date.parse("2026-01-01T12:00:00.000Z") / 1000);
    expect(x.value("eventline_processor_watermark_lag_seconds", at(0))).toBe(30);
    // No watermark yet: no sample rather than a made-up one.
    expect(x.value("eventline_processor_watermark_seconds", at(1))).toBeUndefined();
    expect(x.value("eventline_processor_low_watermark_seconds", { processor: "revenue-per-minute" })).toBeUndefined();
    expect(x.value("eventline_processor_low_watermark_lag_seconds", { processor: "unpaid-orders" })).toBe(30);
    expect(x.value("eventline_processor_lag_events", at(0, "unpaid-orders"))).toBe(0);
    const types = Object.fromEntries(x.families.map((f) => [f.name, f.type]));
    expect(types).toMatchObject({ eventline_processor_late_events_total: "COUNTER", eventline_processor_lag_events: "GAUGE" });
  });
});
