import { describe, expect, it } from "vitest";
import config from "../../eventline.config";
import { ConfigError, defineConfig, type EventlineConfigInput, findTopic } from "../../shared/config";
import { processorPlans } from "../../shared/processors";
import { durationMs } from "../../shared/processors-config";

/** Processors in eventline.config.ts: a mistake fails the load (build, tests, start) with a message naming the field. */

const topics = [
  { name: "in", partitions: 3, retentionHours: 1 },
  { name: "out", partitions: 2, retentionHours: 1 },
];
const base = {
  topics,
  limits: { maxBodyBytes: 1_048_576, maxEventBytes: 65_536, maxBatchEvents: 500 },
  partitionLog: { maxInFlightAppends: 8, retryAfterSeconds: 1 },
  read: { defaultLimit: 100, maxLimit: 1000 },
};
const counter = {
  name: "per-key",
  kind: "aggregate",
  input: { topic: "in" },
  key: "/data/key",
  window: { type: "tumbling", size: "1m" },
  aggregates: [{ name: "n", op: "count" }],
  output: { topic: "out" },
} as const;
const withProcessor = (over: Record<string, unknown>, extra: Partial<EventlineConfigInput> = {}) =>
  ({ ...base, ...extra, processors: [{ ...counter, ...over }] }) as never;

describe("processors in the config", () => {
  it("ships the demo's revenue-per-minute and unpaid-orders, each with its internal re-partition topic", () => {
    const plans = processorPlans(config);
    expect([...plans.keys()]).toEqual(["revenue-per-minute", "unpaid-orders"]);
    const revenue = plans.get("revenue-per-minute");
    expect(revenue?.spec).toMatchObject({
      kind: "aggregate",
      partitions: 4,
      window: { type: "tumbling", sizeMs: 60_000 },
      emit: "final",
      graceMs: 30_000,
      watermark: { outOfOrdernessMs: 30_000 },
    });
    expect(revenue?.spec.watermark.outOfOrdernessMs).toBeLessThanOrEqual(30_000);
    expect(plans.get("unpaid-orders")?.spec).toMatchObject({ kind: "pattern", pattern: { type: "absence", withinMs: 15 * 60_000 } });
    expect(findTopic(config, "processor.revenue-per-minute")).toMatchObject({ internal: true, partitions: 4 });
    expect(findTopic(config, "orders-revenue")?.internal).toBe(false);
  });

  it("fills defaults, adds the internal topic once, and parses again to the same topics", () => {
    const cfg = defineConfig(withProcessor({}));
    expect(cfg.processors[0]).toMatchObject({
      eventTime: "time",
      emit: "final",
      grace: "0s",
      watermark: { outOfOrderness: "0s", idleTimeout: "1m" },
    });
    expect(cfg.topics.map((t) => t.name)).toEqual(["in", "out", "processor.per-key"]);
    expect(findTopic(cfg, "processor.per-key")).toMatchObject({ internal: true, partitions: 3 });
    const again = defineConfig({ ...(cfg as EventlineConfigInput) });
    expect(again.topics.map((t) => t.name)).toEqual(["in", "out", "processor.per-key"]);
    expect(defineConfig(withProcessor({ partitions: 8 })).topics.at(-1)?.partitions).toBe(8);
  });

  it.each([
    [{ input: { topic: "nope" } }, "processors[0].input.topic: unknown topic"],
    [{ output: { topic: "nope" } }, "processors[0].output.topic: unknown topic"],
    [{ output: { topic: "in" } }, "processors[0].output.topic: a processor's output topic must differ"],
    [{ name: "Bad Name" }, "processors[0].name"],
    [{ key: "data.key" }, "processors[0].key: key is an attribute name"],
    [{ window: { type: "tumbling", size: "1 minute" } }, 'processors[0].window.size: window.size is a duration such as "500ms"'],
    [{ window: { type: "tumbling", size: "0s" } }, "processors[0].window.size: window.size must be longer than 0"],
    [
      { window: { type: "hopping", size: "1h", advance: "1s" } },
      "processors[0].window: a hopping window may put an event in at most 100 windows",
    ],
    [{ window: { type: "hopping", size: "1m", advance: "2m" } }, "advanceMs must not exceed its sizeMs"],
    [{ aggregates: [{ name: "n", op: "sum" }] }, "sum needs a field"],
    [
      {
        aggregates: [
          { name: "n", op: "count" },
          { name: "n", op: "count" },
        ],
      },
      "aggregate names must be unique",
    ],
    [{ grace: "soon" }, "processors[0].grace"],
    [{ emit: "sometimes" }, "processors[0].emit"],
    [
      {
        kind: "pattern",
        pattern: { type: "absence", a: { type: ["x"] }, b: { type: ["y"] }, within: "5m" },
        window: undefined,
        aggregates: undefined,
        output: { topic: "out", table: true },
      },
      "processors[0].output.table",
    ],
    [{ inputt: { topic: "in" } }, "Unrecognized key"],
  ])("refuses %j with a message naming the field", (over, fragment) => {
    const input = withProcessor(over);
    expect(() => defineConfig(input)).toThrow(ConfigError);
    expect(() => defineConfig(input)).toThrow(fragment);
  });

  it("refuses two processors of one name, a processor named like a subscription, and a user topic in the processor.* namespace", () => {
    expect(() => defineConfig({ ...base, processors: [counter, counter] } as never)).toThrow('duplicate processor name "per-key"');
    expect(() => defineConfig(withProcessor({}, { subscriptions: [{ name: "per-key", topic: "in", queue: "SUB_X" }] } as never))).toThrow(
      "is also a subscription's name",
    );
    expect(() =>
      defineConfig({ ...base, topics: [...topics, { name: "processor.mine", partitions: 1, retentionHours: 1 }] } as never),
    ).toThrow('topic names starting with "processor." are reserved');
  });

  it("reads durations in ms, s, m, h and d", () => {
    expect(["500ms", "30s", "1m", "15m", "1h", "1d"].map(durationMs)).toEqual([500, 30_000, 60_000, 900_000, 3_600_000, 86_400_000]);
    expect(() => durationMs("1w")).toThrow("not a duration");
  });

  it('watermark.whenIdle: "hold" by default (the engine spec as before), "clock" passed on, anything else refused by name', () => {
    const held = processorPlans(defineConfig(withProcessor({}))).get("per-key");
    expect(held?.spec.watermark).toEqual({ outOfOrdernessMs: 0, idleTimeoutMs: 60_000 });
    const explicit = processorPlans(defineConfig(withProcessor({ watermark: { whenIdle: "hold" } }))).get("per-key");
    expect(explicit?.spec).toEqual(held?.spec);
    const clock = processorPlans(defineConfig(withProcessor({ watermark: { outOfOrderness: "30s", whenIdle: "clock" } }))).get("per-key");
    expect(clock?.spec.watermark).toEqual({ outOfOrdernessMs: 30_000, idleTimeoutMs: 60_000, whenIdle: "clock" });
    expect(() => defineConfig(withProcessor({ watermark: { whenIdle: "always" } }))).toThrow(/watermark\.whenIdle/);
  });
});
