import { describe, expect, it } from "vitest";
import {
  hoppingWindows,
  MAX_WINDOWS_PER_EVENT,
  mergeSession,
  processorInputSchema,
  processorSpecSchema,
  tumblingWindow,
} from "../../shared/processing";

/* Window assignment (tables) and what a processor declaration and an input (the host's RPC boundary) refuse. */

describe("tumbling windows", () => {
  it.each([
    [0, 0, 60_000],
    [59_999, 0, 60_000],
    [60_000, 60_000, 120_000],
    [1_733_560_123_456, 1_733_560_080_000, 1_733_560_140_000],
    [-1, -60_000, 0],
    [-60_000, -60_000, 0],
  ])("time %i falls in [%i, %i)", (time, start, end) => {
    expect(tumblingWindow(time, 60_000)).toEqual({ start, end });
  });
});

describe("hopping windows", () => {
  it.each([
    // size 10 s, advance 5 s: every time is in two windows
    [
      0,
      10_000,
      5_000,
      [
        [-5_000, 5_000],
        [0, 10_000],
      ],
    ],
    [
      4_999,
      10_000,
      5_000,
      [
        [-5_000, 5_000],
        [0, 10_000],
      ],
    ],
    [
      5_000,
      10_000,
      5_000,
      [
        [0, 10_000],
        [5_000, 15_000],
      ],
    ],
    // size 9 s, advance 3 s: three windows
    [
      7_000,
      9_000,
      3_000,
      [
        [0, 9_000],
        [3_000, 12_000],
        [6_000, 15_000],
      ],
    ],
    // size 10 s, advance 4 s (not a multiple): 7 s is in two windows (the one from -4 s ended at 6 s), 1 s in three
    [
      7_000,
      10_000,
      4_000,
      [
        [0, 10_000],
        [4_000, 14_000],
      ],
    ],
    [
      1_000,
      10_000,
      4_000,
      [
        [-8_000, 2_000],
        [-4_000, 6_000],
        [0, 10_000],
      ],
    ],
    // advance = size is tumbling
    [61_000, 60_000, 60_000, [[60_000, 120_000]]],
  ])("time %i with size %i, advance %i → %j", (time, size, advance, windows) => {
    expect(hoppingWindows(time, size, advance)).toEqual(windows.map(([start, end]) => ({ start, end })));
  });
});

describe("session windows", () => {
  const gap = 1_000;
  const s = (start: number, end: number) => ({ start, end });

  it.each([
    ["no session: its own", [], 5_000, s(5_000, 6_000), []],
    ["extends a session forwards", [s(4_000, 5_500)], 5_000, s(4_000, 6_000), [0]],
    ["extends a session backwards", [s(5_500, 6_500)], 5_000, s(5_000, 6_500), [0]],
    ["inside a session", [s(4_000, 7_000)], 5_000, s(4_000, 7_000), [0]],
    ["bridges two sessions into one", [s(3_000, 5_200), s(5_900, 7_000)], 5_000, s(3_000, 7_000), [0, 1]],
    ["touching is not overlapping (gap apart is a new session)", [s(3_000, 5_000)], 5_000, s(5_000, 6_000), []],
    ["ends exactly where the next starts: not merged", [s(6_000, 7_000)], 5_000, s(5_000, 6_000), []],
    ["one ms closer merges", [s(5_999, 7_000)], 5_000, s(5_000, 7_000), [0]],
    ["leaves others alone", [s(0, 1_000), s(4_500, 5_200), s(9_000, 10_000)], 5_000, s(4_500, 6_000), [1]],
  ])("%s", (_, sessions, time, window, absorbed) => {
    expect(mergeSession(sessions, time, gap)).toEqual({ window, absorbed });
  });
});

describe("processor declarations", () => {
  const base = {
    kind: "aggregate",
    name: "revenue-per-minute",
    partitions: 4,
    watermark: { outOfOrdernessMs: 30_000, idleTimeoutMs: 60_000 },
    graceMs: 30_000,
    window: { type: "tumbling", sizeMs: 60_000 },
    emit: "final",
    aggregates: [
      { name: "count", op: "count" },
      { name: "sum", op: "sum", field: "amount" },
    ],
  };

  it("accepts the demo's revenue-per-minute and fills in the distinct bound", () => {
    const spec = processorSpecSchema.parse(base);
    expect(spec.kind === "aggregate" && spec.distinctExactLimit).toBe(10_000);
  });

  it("accepts the demo's unpaid-orders pattern", () => {
    const spec = processorSpecSchema.parse({
      kind: "pattern",
      name: "unpaid-orders",
      partitions: 4,
      watermark: { outOfOrdernessMs: 30_000, idleTimeoutMs: 60_000 },
      graceMs: 0,
      pattern: { type: "absence", withinMs: 15 * 60_000 },
    });
    expect(spec.kind).toBe("pattern");
  });

  it.each([
    ["a hopping advance larger than the size", { window: { type: "hopping", sizeMs: 1_000, advanceMs: 2_000 } }, "must not exceed"],
    [
      "too many hopping windows per event",
      { window: { type: "hopping", sizeMs: (MAX_WINDOWS_PER_EVENT + 1) * 10, advanceMs: 10 } },
      "at most 100",
    ],
    ["a fractional size", { window: { type: "tumbling", sizeMs: 1.5 } }, "integer"],
    ["a zero gap", { window: { type: "session", gapMs: 0 } }, ""],
    ["count with a field", { aggregates: [{ name: "n", op: "count", field: "x" }] }, "count takes no field"],
    ["sum without a field", { aggregates: [{ name: "s", op: "sum" }] }, "sum needs a field"],
    [
      "duplicate aggregate names",
      {
        aggregates: [
          { name: "n", op: "count" },
          { name: "n", op: "count" },
        ],
      },
      "unique",
    ],
    ["an aggregate named __proto__", { aggregates: [{ name: "__proto__", op: "count" }] }, "__proto__"],
    ["no aggregates", { aggregates: [] }, ""],
    ["an unknown op", { aggregates: [{ name: "m", op: "median", field: "x" }] }, ""],
    ["a bad name", { name: "Revenue" }, "lowercase"],
    ["negative grace", { graceMs: -1 }, ""],
    ["zero partitions", { partitions: 0 }, ""],
    ["a zero idle timeout", { watermark: { outOfOrdernessMs: 0, idleTimeoutMs: 0 } }, ""],
    ["an unknown field", { windowSize: 3 }, ""],
    ["a pattern field on an aggregate", { pattern: { type: "absence", withinMs: 1 } }, ""],
  ])("refuses %s", (_, change, message) => {
    const result = processorSpecSchema.safeParse({ ...base, ...change });
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.message).join("; ")).toContain(message);
  });
});

describe("processor inputs", () => {
  const input = { partition: 2, sequence: 7, id: "evt-1", key: "EUR", eventTime: 1_733_560_000_000, receivedTime: 1_733_560_000_500 };

  it("accepts an input with scalar values and a role", () => {
    const full = { ...input, value: { amount: 12.5, customer: "c-1", vip: true, note: null }, role: "a" };
    expect(processorInputSchema.parse(full)).toEqual(full);
  });

  it.each([
    ["a negative partition", { partition: -1 }],
    ["a fractional sequence", { sequence: 1.5 }],
    ["an event time that is not a safe integer", { eventTime: 2 ** 53 }],
    ["an empty id", { id: "" }],
    ["a nested value", { value: { amount: { cents: 5 } } }],
    ["an unknown role", { role: "c" }],
    ["an unknown field", { partitionKey: "x" }],
  ])("refuses %s", (_, change) => {
    expect(processorInputSchema.safeParse({ ...input, ...change }).success).toBe(false);
  });
});
