import { describe, expect, it } from "vitest";
import { nextWakeup, type ProcessorInput, type ProcessorSpecInput, status } from "../../shared/processing";
import { ev, run } from "./processing-fixtures";

/* Patterns against hand-written tables: "a then b within T" and "a and no b within T" per key. */

const MIN = 60_000;
const WITHIN = 15 * MIN;

function pattern(type: "sequence" | "absence", partitions = 1): ProcessorSpecInput {
  return {
    kind: "pattern",
    name: type === "sequence" ? "paid-fast" : "unpaid-orders",
    partitions,
    watermark: { outOfOrdernessMs: 30_000, idleTimeoutMs: 10_000 },
    graceMs: 0,
    pattern: { type, withinMs: WITHIN },
  };
}

const a = (p: number, s: number, key: string, t: number, extra: Partial<ProcessorInput> = {}) => ev(p, s, key, t, { role: "a", ...extra });
const b = (p: number, s: number, key: string, t: number, extra: Partial<ProcessorInput> = {}) => ev(p, s, key, t, { role: "b", ...extra });
const pairs = (results: ReturnType<typeof run>["results"]) =>
  results.map((r) => (r.kind === "window" ? r.id : `${r.kind} ${r.key} ${r.a.id}→${r.b?.id ?? "none"}`));

describe("a then b within T", () => {
  it("fires as soon as the b arrives, with a deterministic id", () => {
    const { perStep } = run(pattern("sequence"), [a(0, 1, "o1", 0), b(0, 2, "o1", MIN)]);
    expect(perStep).toEqual([
      [],
      [
        {
          id: "paid-fast:o1:0:0.1",
          processor: "paid-fast",
          kind: "sequence",
          key: "o1",
          a: { id: "p0s1", eventTime: 0 },
          b: { id: "p0s2", eventTime: MIN },
          deadline: WITHIN,
          causationId: "p0s2",
        },
      ],
    ]);
  });

  it.each([
    ["b one ms inside the window", WITHIN - 1, ["sequence o1 p0s1→p0s2"]],
    ["b exactly at a + T (windows are half-open)", WITHIN, []],
    ["b at the same time as a", 0, ["sequence o1 p0s1→p0s2"]],
    ["b before a in event time", -1, []],
  ])("%s", (_, bTime, expected) => {
    expect(pairs(run(pattern("sequence"), [a(0, 1, "o1", 0), b(0, 2, "o1", bTime)]).results)).toEqual(expected);
  });

  it("a b that arrived first is matched when its a arrives (the earliest in event time of those waiting)", () => {
    const { perStep } = run(pattern("sequence"), [b(0, 1, "o1", 50_000), b(0, 2, "o1", 20_000), a(0, 3, "o1", 10_000)]);
    expect(perStep.map(pairs)).toEqual([[], [], ["sequence o1 p0s3→p0s2"]]);
    expect(perStep[2]).toMatchObject([{ causationId: "p0s3" }]);
  });

  it("every a starts its own match; a b answers all of them and other keys' b inputs answer none", () => {
    const { results } = run(pattern("sequence"), [
      a(0, 1, "o1", 0),
      a(0, 2, "o1", 100_000),
      b(0, 3, "o2", 150_000),
      b(0, 4, "o1", 200_000),
    ]);
    expect(pairs(results)).toEqual(["sequence o1 p0s1→p0s4", "sequence o1 p0s2→p0s4"]);
    expect(new Set(results.map((r) => r.id)).size).toBe(2);
  });

  it("an a whose window closes unanswered is dropped and counted", () => {
    const { results, state } = run(pattern("sequence"), [a(0, 1, "o1", 0), b(0, 2, "other", WITHIN + 30_000)]);
    expect(results).toEqual([]);
    expect(status(state)).toMatchObject({ open: 0, counters: { cancelled: 1, matches: 0 } });
  });
});

describe("a and no b within T (absence)", () => {
  it.each([
    ["one ms short of a + T + out-of-orderness: waits", WITHIN + 30_000 - 1, []],
    ["at a + T + out-of-orderness: the watermark closes the window and it fires", WITHIN + 30_000, ["absence o1 p0s1→none"]],
  ])("fired by the watermark, %s", (_, later, expected) => {
    const { results } = run(pattern("absence"), [a(0, 1, "o1", 0), a(0, 2, "o2", later)]);
    expect(pairs(results)).toEqual(expected);
    if (expected.length > 0)
      expect(results[0]).toEqual({
        id: "unpaid-orders:o1:0:0.1",
        processor: "unpaid-orders",
        kind: "absence",
        key: "o1",
        a: { id: "p0s1", eventTime: 0 },
        b: null,
        deadline: WITHIN,
        causationId: "p0s1",
      });
  });

  it.each([
    ["a b inside the window cancels", WITHIN - 1, []],
    ["a b at a + T is too late to count", WITHIN, ["absence o1 p0s1→none"]],
  ])("%s", (_, bTime, expected) => {
    const { results, state } = run(pattern("absence"), [a(0, 1, "o1", 0), b(0, 2, "o1", bTime), a(0, 3, "o2", 10 * WITHIN)]);
    expect(pairs(results)).toEqual(expected);
    expect(state.counters.cancelled).toBe(expected.length === 0 ? 1 : 0);
  });

  it("a b arriving out of order, far behind the watermark but before the alert fired, still cancels", () => {
    const { results, late, state } = run(pattern("absence"), [
      a(0, 1, "o1", 0),
      a(0, 2, "o2", 800_000), // watermark 770,000: o1's window [0, 900,000) is still open
      b(0, 3, "o1", 100_000), // 670,000 behind the watermark, inside o1's window
      b(0, 4, "o2", 810_000),
      a(0, 5, "o3", 2 * WITHIN),
    ]);
    expect(late).toEqual([]);
    expect(results).toEqual([]);
    expect(state.counters.cancelled).toBe(2);
  });

  it("a b before a pending a was placed (arrived first) cancels it on arrival", () => {
    const { results, state } = run(pattern("absence"), [b(0, 1, "o1", 5_000), a(0, 2, "o1", 1_000), a(0, 3, "o2", 10 * WITHIN)]);
    expect(results).toEqual([]);
    expect(state.counters.cancelled).toBe(1);
  });

  it("repeated a inputs each start their own wait", () => {
    const { results } = run(pattern("absence"), [a(0, 1, "o1", 0), a(0, 2, "o1", MIN), b(0, 3, "o1", 30_000), a(0, 4, "zz", 10 * WITHIN)]);
    expect(pairs(results)).toEqual(["absence o1 p0s2→none"]);
    expect(results[0]?.id).toBe(`unpaid-orders:o1:${MIN}:0.2`);
  });

  it("fired by advance: an idle partition stops holding the watermark", () => {
    const spec = pattern("absence", 2);
    const first = run(spec, [
      a(0, 1, "o1", 0, { receivedTime: 1_000 }),
      b(1, 1, "o9", 10_000, { receivedTime: 1_000 }),
      a(0, 2, "o2", 2 * WITHIN, { receivedTime: 2_000 }),
    ]);
    expect(first.results).toEqual([]);
    expect(first.state.time.watermark).toBe(10_000 - 30_000);
    expect(nextWakeup(first.state)).toBe(11_001);
    const quiet = run(spec, [{ now: 11_000 }], first.state);
    expect(quiet.results).toEqual([]);
    const idle = run(spec, [{ now: 11_001 }], quiet.state);
    expect(pairs(idle.results)).toEqual(["absence o1 p0s1→none"]);
    expect(idle.state.time.watermark).toBe(2 * WITHIN - 30_000);
  });

  it("an a whose window closed before it arrived is late, reported and never alerted", () => {
    const { results, late, state } = run(pattern("absence"), [a(0, 1, "o1", 2 * WITHIN), a(0, 2, "o2", 0), a(0, 3, "o3", 5 * WITHIN)]);
    expect(late).toEqual(["p0s2"]);
    expect(pairs(results)).toEqual(["absence o1 p0s1→none"]);
    expect(state.counters).toMatchObject({ late: 1, matches: 1 });
  });
});

describe('whenIdle "clock": on a stream gone quiet the watermark follows processing time (ADR 0057)', () => {
  const clockSpec = (partitions = 1): ProcessorSpecInput => {
    const base = pattern("absence", partitions);
    return { ...base, watermark: { ...base.watermark, whenIdle: "clock" } } as ProcessorSpecInput;
  };
  // One order placed at event time 0, received at 0; nothing else ever arrives.
  const placed = [a(0, 1, "o1", 0, { receivedTime: 0 })];

  it("fires an absence with no later event, once the clock passes its deadline + out-of-orderness", () => {
    const first = run(clockSpec(), placed);
    // The wake-ups: when the input turns idle (10,001), then when clock − 30 s reaches the deadline (15 min).
    expect(nextWakeup(first.state)).toBe(10_001);
    const idle = run(clockSpec(), [{ now: 10_001 }], first.state);
    expect(idle.results).toEqual([]);
    expect(idle.state.time.watermark).toBe(10_001 - 30_000);
    expect(nextWakeup(idle.state)).toBe(WITHIN + 30_000);
    const early = run(clockSpec(), [{ now: WITHIN + 29_999 }], idle.state);
    expect(early.results).toEqual([]);
    const due = run(clockSpec(), [{ now: WITHIN + 30_000 }], early.state);
    expect(pairs(due.results)).toEqual(["absence o1 p0s1→none"]);
    expect(due.state.time.watermark).toBe(WITHIN);
    expect(nextWakeup(due.state)).toBeNull();
  });

  it("holds, as by default, while the clock is not past the deadline or an input is still active", () => {
    // Held (the default): the same quiet hour fires nothing.
    const held = run(pattern("absence"), [...placed, { now: 10 * WITHIN }]);
    expect(held.results).toEqual([]);
    expect(held.state.time.watermark).toBe(-30_000);
    // Two partitions, the other one delivering every 5 s: never all idle, so no clock-following.
    const steps = [...placed, ...Array.from({ length: 200 }, (_, i) => b(1, i + 1, `k${i}`, 0, { receivedTime: (i + 1) * 5_000 }))];
    const busy = run(clockSpec(2), steps);
    expect(busy.results).toEqual([]);
    expect(busy.state.time.watermark).toBe(-30_000);
    // Once it too goes quiet, the clock takes over.
    const quiet = run(clockSpec(2), [{ now: 200 * 5_000 + 10_001 }], busy.state);
    expect(pairs(quiet.results)).toEqual(["absence o1 p0s1→none"]);
  });

  it("an event older than the followed watermark is late; an alert already fired stands", () => {
    const fired = run(clockSpec(), [...placed, { now: WITHIN + 30_000 }]);
    expect(pairs(fired.results)).toEqual(["absence o1 p0s1→none"]);
    // The b for o1 comes in now: the alert is not taken back. An a timed at 0 arriving now is late.
    const after = run(
      clockSpec(),
      [b(0, 2, "o1", 60_000, { receivedTime: WITHIN + 40_000 }), a(0, 3, "o2", 0, { receivedTime: WITHIN + 41_000 })],
      fired.state,
    );
    expect(after.results).toEqual([]);
    expect(after.late).toEqual(["p0s3"]);
  });
});
