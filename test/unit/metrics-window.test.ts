import { describe, expect, it } from "vitest";
import { emptyHistogram, observe } from "../../shared/metrics";
import {
  pickBaseline,
  recentPartition,
  recentSubscription,
  recentTotals,
  type SubscriptionCounters,
  slotMs,
} from "../../workers/platform/metrics-window";

/** The recent window's rules (workers/platform/metrics-window.ts), apart from D1. */

const counters = (over: Partial<SubscriptionCounters> = {}): SubscriptionCounters => ({
  topic: "events",
  handled: 0,
  retried: 0,
  deadLettered: 0,
  duplicates: 0,
  handlerLatency: emptyHistogram(),
  endToEndLatency: emptyHistogram(),
  ...over,
});
const W = 300_000;

describe("pickBaseline", () => {
  const snap = (at: number) => ({ at, counters: counters({ handled: at }) });

  it("takes the newest snapshot a window old", () => {
    expect(pickBaseline({ before: snap(1_000), first: snap(500) }, 500, 400_000, W)).toEqual(snap(1_000));
  });

  it("has no window before the ring's first snapshot: lifetime counters are not recent", () => {
    expect(pickBaseline({ before: undefined, first: undefined }, null, 400_000, W)).toBeNull();
  });

  it("counts an entity seen after the ring began from zero, at most a window back", () => {
    expect(pickBaseline({ before: undefined, first: snap(350_000) }, 200_000, 400_000, W)).toEqual({ at: 200_000, counters: null });
    expect(pickBaseline({ before: undefined, first: undefined }, 10, 400_000, W)).toEqual({ at: 100_000, counters: null });
  });

  it("starts at the entity's first snapshot while the ring is younger than a window", () => {
    expect(pickBaseline({ before: undefined, first: snap(200_000) }, 200_000, 400_000, W)).toEqual(snap(200_000));
  });
});

describe("windowed figures", () => {
  it("are now − the baseline: error rate, rates, latency increase; a reset counts whole", () => {
    const base = { at: 0, counters: counters({ handled: 100, retried: 10, deadLettered: 1 }) };
    const now = { at: 10_000, counters: counters({ handled: 109, retried: 10, deadLettered: 2, duplicates: 1 }) };
    expect(recentSubscription(now, base)).toMatchObject({
      seconds: 10,
      handled: 9,
      retried: 0,
      deadLettered: 1,
      delivered: 11,
      errorRate: 0.0909091,
      handledPerSecond: 0.9,
    });
    // Counters lower than the baseline were reset (a wiped database): the whole value is new.
    expect(recentSubscription({ at: 10_000, counters: counters({ handled: 5 }) }, base)).toMatchObject({ handled: 5, errorRate: 0 });
    expect(recentSubscription(now, null)).toMatchObject({ seconds: 0, delivered: 0, errorRate: 0, handledPerSecond: 0 });
  });

  it("subtract histograms bucket by bucket", () => {
    const before = emptyHistogram();
    observe(before, 2);
    const after = emptyHistogram();
    observe(after, 2);
    observe(after, 0.003);
    const r = recentPartition(
      { at: 2000, counters: { appended: 7, appendLatency: after } },
      { at: 0, counters: { appended: 3, appendLatency: before } },
    );
    expect(r).toMatchObject({ seconds: 2, appended: 4, appendedPerSecond: 2 });
    expect(r.appendLatency.count).toBe(1);
    expect(r.appendLatency.sum).toBeCloseTo(0.003, 9);
  });

  it("totals: sums of rates, the error rate of the sums, the slowest latency", () => {
    const slow = emptyHistogram();
    for (let i = 0; i < 10; i++) observe(slow, 2);
    const a = recentSubscription(
      { at: 10_000, counters: counters({ handled: 9, retried: 1, endToEndLatency: slow }) },
      { at: 0, counters: null },
    );
    const b = recentSubscription({ at: 10_000, counters: counters({ handled: 10 }) }, { at: 0, counters: null });
    const totals = recentTotals(300, [a, b], []);
    expect(totals).toMatchObject({ windowSeconds: 300, handledPerSecond: 1.9, appendedPerSecond: 0, errorRate: 0.05 });
    expect(totals.latency).toEqual({ kind: "end-to-end", p50: 1.75, p99: 2.485 });
    expect(recentTotals(300, [b], []).latency).toBeNull();
  });

  it("slots are a thirtieth of the window, at least a second", () => {
    expect(slotMs(300)).toBe(10_000);
    expect(slotMs(2)).toBe(1000);
  });
});
