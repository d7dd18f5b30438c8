import { describe, expect, it } from "vitest";
import {
  apply,
  createState,
  nextWakeup,
  ProcessingInputError,
  type ProcessorSpecInput,
  restoreState,
  status,
} from "../../shared/processing";
import { ev, run } from "./processing-fixtures";

/* The engine against hand-written tables: each window type, grace, idle partitions, updates, redeliveries, ids. */

function aggregate(overrides: Partial<Record<string, unknown>> = {}): ProcessorSpecInput {
  return {
    kind: "aggregate",
    name: "rev",
    partitions: 1,
    watermark: { outOfOrdernessMs: 0, idleTimeoutMs: 10_000 },
    graceMs: 0,
    window: { type: "tumbling", sizeMs: 60_000 },
    emit: "final",
    aggregates: [
      { name: "count", op: "count" },
      { name: "sum", op: "sum", field: "amount" },
    ],
    ...overrides,
  } as ProcessorSpecInput;
}

const amount = (n: number) => ({ value: { amount: n } });

describe("tumbling windows in event time", () => {
  it("emits each key's window once, when the watermark (max − out-of-orderness) reaches end + grace", () => {
    const spec = aggregate({ watermark: { outOfOrdernessMs: 5_000, idleTimeoutMs: 10_000 }, graceMs: 2_000 });
    const { perStep, state } = run(spec, [
      ev(0, 1, "EUR", 10_000, amount(5)),
      ev(0, 2, "USD", 20_000, amount(7)),
      ev(0, 3, "EUR", 50_000, amount(1)),
      ev(0, 4, "EUR", 66_999, amount(2)), // watermark 61,999: [0, 60 s) closes at 62,000
      ev(0, 5, "EUR", 55_000, amount(4)), // out of order, still on time
      ev(0, 6, "USD", 67_000, amount(3)), // watermark 62,000: closes
    ]);
    expect(perStep.slice(0, 5).flat()).toEqual([]);
    expect(perStep[5]).toEqual([
      {
        id: "rev:EUR:0:final",
        processor: "rev",
        kind: "window",
        emit: "final",
        revision: 3,
        key: "EUR",
        windowStart: 0,
        windowEnd: 60_000,
        aggregates: { count: 3, sum: 10 },
        approximate: [],
        causationId: "p0s5",
      },
      expect.objectContaining({ id: "rev:USD:0:final", key: "USD", aggregates: { count: 1, sum: 7 }, causationId: "p0s2" }),
    ]);
    expect(status(state)).toMatchObject({ watermark: 62_000, open: 2, keys: 2, counters: { accepted: 6, finals: 2, late: 0 } });
  });

  it.each([
    ["one ms before the boundary: accepted", 69_999, false],
    ["exactly at the boundary (end + grace = watermark): late", 70_000, true],
  ])("grace boundary, %s", (_, watermark, isLate) => {
    const spec = aggregate({ graceMs: 10_000 });
    const { results, late, state } = run(spec, [
      ev(0, 1, "k", 30_000, amount(1)),
      ev(0, 2, "other", watermark),
      ev(0, 3, "k", 59_999, amount(100)),
      ev(0, 4, "other", 70_000),
    ]);
    expect(late).toEqual(isLate ? ["p0s3"] : []);
    expect(results.filter((r) => r.key === "k")).toMatchObject([
      { id: "rev:k:0:final", aggregates: { count: isLate ? 1 : 2, sum: isLate ? 1 : 101 } },
    ]);
    expect(state.counters.late).toBe(isLate ? 1 : 0);
  });

  it("a late input is returned with the windows it missed and never folded in", () => {
    const spec = aggregate();
    const first = run(spec, [ev(0, 1, "k", 1_000), ev(0, 2, "k", 60_000)]);
    expect(first.results).toMatchObject([{ id: "rev:k:0:final", aggregates: { count: 1 } }]);
    const outcome = apply(first.state, ev(0, 3, "k", 59_999, amount(9)));
    expect(outcome.late).toEqual([
      { id: "p0s3", partition: 0, sequence: 3, key: "k", eventTime: 59_999, windows: [{ start: 0, end: 60_000 }] },
    ]);
    expect(outcome.results).toEqual([]);
    expect(status(outcome.state).counters).toMatchObject({ late: 1, missedWindows: 1, finals: 1 });
  });
});

describe("hopping windows", () => {
  it("an input joins its open windows and is reported late for the closed ones", () => {
    const spec = aggregate({ window: { type: "hopping", sizeMs: 10_000, advanceMs: 5_000 } });
    const { perStep, late, state } = run(spec, [ev(0, 1, "k", 12_000), ev(0, 2, "k", 7_000), ev(0, 3, "k", 30_000)]);
    expect(perStep[1]).toEqual([]);
    expect(late).toEqual(["p0s2"]);
    expect(state.counters).toMatchObject({ late: 1, missedWindows: 1 });
    expect(perStep[2]?.map((r) => r.kind === "window" && [r.windowStart, r.windowEnd, r.aggregates.count])).toEqual([
      [5_000, 15_000, 2],
      [10_000, 20_000, 1],
    ]);
  });
});

describe("session windows", () => {
  it("merge when an input bridges two sessions; updates name the sessions they supersede", () => {
    const spec = aggregate({ window: { type: "session", gapMs: 1_000 }, emit: "updates", graceMs: 1_000 });
    const { perStep } = run(spec, [
      ev(0, 1, "k", 0, amount(1)),
      ev(0, 2, "k", 1_500, amount(2)),
      ev(0, 3, "k", 800, amount(4)),
      ev(0, 4, "k", 10_000),
    ]);
    const brief = perStep.map((rs) =>
      rs.map((r) => r.kind === "window" && [r.id, r.windowStart, r.windowEnd, r.aggregates.sum, r.supersedes]),
    );
    expect(brief).toEqual([
      [["rev:k:0:r1", 0, 1_000, 1, undefined]],
      [["rev:k:1500:r1", 1_500, 2_500, 2, undefined]],
      [
        [
          "rev:k:0:r2",
          0,
          2_500,
          7,
          [
            { start: 0, end: 1_000 },
            { start: 1_500, end: 2_500 },
          ],
        ],
      ],
      [
        ["rev:k:10000:r1", 10_000, 11_000, 0, undefined],
        ["rev:k:0:final", 0, 2_500, 7, undefined],
      ],
    ]);
  });

  it("an input is late when its time + grace has passed the watermark, even inside an open session", () => {
    const spec = aggregate({ window: { type: "session", gapMs: 10_000 }, graceMs: 1_000 });
    const { late, results } = run(spec, [
      ev(0, 1, "k", 0),
      ev(0, 2, "k", 9_000),
      ev(0, 3, "k", 8_000),
      ev(0, 4, "k", 8_001),
      ev(0, 5, "k", 60_000),
    ]);
    expect(late).toEqual(["p0s3"]);
    expect(results).toMatchObject([{ windowStart: 0, windowEnd: 19_000, aggregates: { count: 3 } }]);
  });
});

describe("emit updates", () => {
  it("emits every change with a rising revision, then the final", () => {
    const { perStep } = run(aggregate({ emit: "updates" }), [
      ev(0, 1, "k", 1_000, amount(5)),
      ev(0, 2, "k", 2_000, amount(7)),
      ev(0, 3, "k", 61_000, amount(1)),
    ]);
    const brief = perStep.map((rs) =>
      rs.map((r) => r.kind === "window" && `${r.id} ${r.emit} ${r.aggregates.count}/${r.aggregates.sum} ${r.causationId}`),
    );
    expect(brief).toEqual([
      ["rev:k:0:r1 update 1/5 p0s1"],
      ["rev:k:0:r2 update 2/12 p0s2"],
      ["rev:k:60000:r1 update 1/1 p0s3", "rev:k:0:final final 2/12 p0s2"],
    ]);
  });
});

describe("watermarks and idle partitions", () => {
  const spec = aggregate({ partitions: 2 });

  it("a quiet partition holds the watermark until idle (by processing time), then drops out; it never moves back", () => {
    const { perStep, late, state } = run(spec, [
      ev(0, 1, "a", 10_000, { receivedTime: 1_000 }),
      ev(1, 1, "b", 5_000, { receivedTime: 1_000 }),
      ev(0, 2, "a", 130_000, { receivedTime: 2_000 }),
      { now: 11_000 }, // partition 1 quiet for exactly the timeout: not idle yet
      { now: 11_001 }, // one ms more: idle
      ev(1, 2, "b", 20_000, { receivedTime: 12_000 }), // back, behind the watermark: late
      { now: 40_000 }, // every partition idle: the maximum of theirs
    ]);
    expect(perStep.slice(0, 4).flat()).toEqual([]);
    expect(perStep[4]?.map((r) => r.id)).toEqual(["rev:a:0:final", "rev:b:0:final"]);
    expect(late).toEqual(["p1s2"]);
    expect(state.time.watermark).toBe(130_000);
    expect(status(state).partitions).toEqual([
      { partition: 0, checkpoint: 2, watermark: 130_000, idle: true },
      { partition: 1, checkpoint: 2, watermark: 20_000, idle: true },
    ]);
  });

  it("a partition that never delivered holds the watermark until it is idle since the clock started", () => {
    const { perStep, state } = run(spec, [ev(0, 1, "a", 10_000, { receivedTime: 1_000 }), ev(0, 2, "a", 70_000, { receivedTime: 5_000 })]);
    expect(state.time.watermark).toBeNull();
    expect(perStep.flat()).toEqual([]);
    expect(nextWakeup(state)).toBe(11_001);
    const after = run(spec, [{ now: 11_001 }], state);
    expect(after.results.map((r) => r.id)).toEqual(["rev:a:0:final"]);
    expect(after.state.time.watermark).toBe(70_000);
  });

  it("received times move the clock: a partition quiet in the log goes idle during a replay too", () => {
    const { results } = run(spec, [
      ev(0, 1, "a", 10_000, { receivedTime: 1_000 }),
      ev(1, 1, "b", 10_000, { receivedTime: 1_000 }),
      ev(0, 2, "a", 70_000, { receivedTime: 20_000 }),
    ]);
    expect(results.map((r) => r.id)).toEqual(["rev:a:0:final", "rev:b:0:final"]);
  });

  it("nothing open: no wake-up needed", () => {
    expect(nextWakeup(createState(spec))).toBeNull();
  });
});

describe("redeliveries and ids", () => {
  it("an input at or below its partition's checkpoint is a no-op; gaps in sequences are fine", () => {
    const { state } = run(aggregate({ partitions: 2 }), [ev(0, 1, "k", 1_000, amount(1)), ev(0, 5, "k", 2_000, amount(2))]);
    const before = JSON.stringify(state);
    for (const again of [ev(0, 5, "k", 2_000, amount(2)), ev(0, 3, "k", 3_000, amount(50)), ev(0, 0, "k", 3_000)]) {
      const outcome = apply(state, again);
      expect(outcome).toMatchObject({ duplicate: true, results: [], late: [] });
    }
    const after = JSON.parse(JSON.stringify(state));
    expect(after.counters.duplicates).toBe(3);
    after.counters.duplicates = 0;
    expect(JSON.stringify(after)).toBe(before);
    expect(apply(state, ev(1, 1, "k", 3_000)).duplicate).toBe(false);
  });

  it("keys are percent-encoded in ids, and __proto__ is an ordinary key", () => {
    const { results } = run(aggregate(), [ev(0, 1, "a:b/c", 1_000), ev(0, 2, "__proto__", 2_000), ev(0, 3, "z", 60_000)]);
    expect(results.map((r) => [r.id, r.key])).toEqual([
      ["rev:__proto__:0:final", "__proto__"],
      ["rev:a%3Ab%2Fc:0:final", "a:b/c"],
    ]);
  });

  it("refuses inputs the host must never send", () => {
    const state = createState(aggregate());
    expect(() => apply(state, ev(1, 1, "k", 0))).toThrow(ProcessingInputError);
    expect(() => apply(state, ev(0, 1.5, "k", 0))).toThrow(ProcessingInputError);
    expect(() => apply(state, ev(0, 1, "k", Number.NaN))).toThrow(ProcessingInputError);
    const pattern = createState({
      kind: "pattern",
      name: "p",
      partitions: 1,
      watermark: { outOfOrdernessMs: 0, idleTimeoutMs: 1 },
      graceMs: 0,
      pattern: { type: "sequence", withinMs: 1 },
    });
    expect(() => apply(pattern, ev(0, 1, "k", 0))).toThrow(/role/);
    expect(state.counters.accepted + pattern.counters.accepted).toBe(0);
  });
});

describe("stored state", () => {
  const { state } = run(aggregate({ window: { type: "session", gapMs: 1_000 } }), [ev(0, 1, "k", 0, amount(1)), ev(0, 2, "__proto__", 10)]);

  it("parses back to what was stored, and the restored state carries on identically", () => {
    const text = JSON.stringify(state);
    const restored = restoreState(text);
    expect(restored).toEqual(state);
    expect(apply(restored, ev(0, 3, "k", 5_000)).results).toEqual(apply(restoreState(text), ev(0, 3, "k", 5_000)).results);
    expect(apply(restoreState(text), ev(0, 3, "k", 5_000)).results).toMatchObject([
      { key: "k", windowStart: 0, aggregates: { count: 1, sum: 1 } },
      { key: "__proto__", windowStart: 10, aggregates: { count: 1, sum: 0 } },
    ]);
  });

  it.each<[string, (s: ReturnType<typeof structuredClone<typeof state>>) => void]>([
    ["another version", (s) => Object.assign(s, { version: 2 })],
    ["a partition missing", (s) => s.time.partitions.pop()],
    ["an accumulator missing", (s) => Object.values(s.windows)[0]?.[0]?.accs.pop()],
    ["an unknown accumulator", (s) => Object.values(s.windows)[0]?.[0]?.accs.splice(0, 1, { k: "median" } as never)],
    ["a key map without the slot prefix", (s) => Object.assign(s.windows, { plain: [] })],
    ["an invalid spec", (s) => Object.assign(s.spec, { graceMs: -1 })],
  ])("refuses %s", (_, tamper) => {
    const copy = structuredClone(state);
    tamper(copy);
    expect(() => restoreState(JSON.stringify(copy))).toThrow();
  });
});

describe('whenIdle "clock" for windows (ADR 0057)', () => {
  it("closes a window on a stream gone quiet once clock − out-of-orderness passes its end + grace; held by default", () => {
    const watermark = { outOfOrdernessMs: 5_000, idleTimeoutMs: 10_000 };
    const steps = [ev(0, 1, "EUR", 1_000, { receivedTime: 1_000, value: { amount: 7 } }), { now: 60_000 + 2_000 + 5_000 }];
    const held = run(aggregate({ watermark, graceMs: 2_000 }), steps);
    expect(held.results).toEqual([]);
    const followed = run(aggregate({ watermark: { ...watermark, whenIdle: "clock" }, graceMs: 2_000 }), steps);
    expect(followed.results).toMatchObject([{ kind: "window", key: "EUR", windowStart: 0, aggregates: { count: 1, sum: 7 } }]);
    // One ms earlier the window (end 60 s + grace 2 s) is still open.
    const early = run(aggregate({ watermark: { ...watermark, whenIdle: "clock" }, graceMs: 2_000 }), [steps[0] as never, { now: 66_999 }]);
    expect(early.results).toEqual([]);
  });
});
