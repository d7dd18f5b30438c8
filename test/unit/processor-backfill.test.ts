import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  backfillDone,
  backfillTotal,
  type HistoryEvent,
  HistoryMerge,
  historyInputs,
  newBackfill,
  type ReadPage,
} from "../../durable-objects/processor/backfill";
import { packBatches, prepareInternalBatches } from "../../durable-objects/processor/internal-events";
import config from "../../eventline.config";
import { findTopic } from "../../shared/config";
import { processorPlans, type Repartitioned, repartitioned } from "../../shared/processors";

/**
 * A backfill's two pure parts (ADR 0058): the merge of the input partitions' histories in commit
 * order — whatever the page and step sizes, and resumed from any committed position — and the
 * selection of an instance's inputs, which must be exactly what the re-partition step would have
 * sent that instance.
 */

const T0 = Date.UTC(2026, 0, 1);
const TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const pad = (n: number) => String(n).padStart(20, "0");

/** A partition's stored events: sequences 1 … n, commit times non-decreasing. */
function stored(partition: number, gaps: number[]): string[] {
  let t = T0;
  return gaps.map((gap, i) => {
    t += gap;
    return JSON.stringify({ id: `p${partition}-${i + 1}`, partition, receivedtime: new Date(t).toISOString(), sequence: pad(i + 1) });
  });
}

/** PartitionLog.read over arrays, with its rule for a `from` before the first readable event (`firsts`: trimmed prefixes). */
function reader(partitions: string[][], firsts: number[] = [], calls: { n: number } = { n: 0 }): ReadPage {
  return async (p, from, limit) => {
    calls.n++;
    const all = partitions[p] ?? [];
    const first = firsts[p] ?? 1;
    const start = Math.max(from, first);
    const events = all.slice(start - 1, start - 1 + limit);
    return { events, last: events.length === 0 ? null : start + events.length - 1 };
  };
}

async function drain(merge: HistoryMerge, step: number): Promise<{ events: HistoryEvent[]; next: number[] }> {
  const events: HistoryEvent[] = [];
  let next: number[] = [];
  for (;;) {
    const taken = await merge.take(step);
    if (taken.events.length === 0) return { events, next };
    events.push(...taken.events);
    next = taken.next;
  }
}

const key = (e: HistoryEvent) => `${e.partition}/${e.sequence}`;
const byCommitOrder = (a: HistoryEvent, b: HistoryEvent) =>
  a.committedAt - b.committedAt || a.partition - b.partition || a.sequence - b.sequence;

const historyArb = fc.array(fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 25 }), { minLength: 1, maxLength: 5 });

describe("HistoryMerge", () => {
  it("yields every event through the heads once, in commit order, whatever the page and step sizes", async () => {
    await fc.assert(
      fc.asyncProperty(historyArb, fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 9 }), async (gaps, page, step) => {
        const partitions = gaps.map((g, p) => stored(p, g));
        const backfill = newBackfill(
          partitions.map((e) => e.length),
          0,
        );
        if (backfill === null) return partitions.every((e) => e.length === 0);
        const { events, next } = await drain(new HistoryMerge(backfill, reader(partitions), page), step);
        expect(events.length).toBe(backfillTotal(backfill));
        expect(events.map(key)).toEqual([...events].sort(byCommitOrder).map(key));
        expect(new Set(events.map(key)).size).toBe(events.length);
        expect(backfillDone({ ...backfill, next })).toBe(true);
        return true;
      }),
      { numRuns: 200 },
    );
  });

  it("resumed from any committed position, continues exactly where the first left off", async () => {
    await fc.assert(
      fc.asyncProperty(historyArb, fc.integer({ min: 1, max: 5 }), fc.nat(), async (gaps, step, cutSeed) => {
        const partitions = gaps.map((g, p) => stored(p, g));
        const backfill = newBackfill(
          partitions.map((e) => e.length),
          0,
        );
        if (backfill === null) return true;
        const whole = (await drain(new HistoryMerge(backfill, reader(partitions), 4), step)).events;
        // Take some steps, "commit" the position, and start a new merge from it (a crash lost the read-ahead).
        const first = new HistoryMerge(backfill, reader(partitions), 4);
        const before: HistoryEvent[] = [];
        let next = backfill.next;
        for (let i = 0; i < cutSeed % 6; i++) {
          const taken = await first.take(step);
          before.push(...taken.events);
          if (taken.events.length > 0) next = taken.next;
        }
        const after = await drain(new HistoryMerge({ ...backfill, next }, reader(partitions), 3), step);
        expect([...before, ...after.events].map(key)).toEqual(whole.map(key));
        return true;
      }),
      { numRuns: 200 },
    );
  });

  it("reads nothing past a partition's head at the start, and passes over a trimmed prefix it cannot read", async () => {
    const partitions = [stored(0, [1, 1, 1, 1, 1, 1]), stored(1, [2, 2, 2])];
    // Partition 0's head was 4 when the backfill started (5 and 6 came later); partition 1 lost 1-2 to retention.
    const backfill = { through: [4, 3], next: [1, 1], read: 0, startedAt: 0 };
    const { events, next } = await drain(new HistoryMerge(backfill, reader(partitions, [1, 3]), 10), 100);
    expect(events.map(key)).toEqual(["0/1", "0/2", "0/3", "0/4", "1/3"]);
    expect(next).toEqual([5, 4]);
  });

  it("a partition with nothing left to read is not read again", async () => {
    const calls = { n: 0 };
    const partitions = [
      stored(0, [1, 1]),
      stored(
        1,
        Array.from({ length: 40 }, () => 1),
      ),
    ];
    const backfill = newBackfill([2, 40], 0);
    if (backfill === null) throw new Error("a backfill was expected");
    await drain(new HistoryMerge(backfill, reader(partitions, [], calls), 10), 5);
    // Partition 0: one page; partition 1: four pages of ten.
    expect(calls.n).toBe(5);
  });

  it("newBackfill: none when every input partition is empty", () => {
    expect(newBackfill([0, 0, 0], 1)).toBeNull();
    expect(newBackfill([0, 3], 1)).toEqual({ through: [0, 3], next: [1, 1], read: 0, startedAt: 1 });
  });
});

describe("historyInputs", () => {
  const plan = processorPlans(config).get("revenue-per-minute");
  if (plan === undefined) throw new Error("the demo processor is missing");

  function event(partition: number, sequence: number, type: string, currency: string | undefined): HistoryEvent {
    const committedAt = T0 + sequence;
    const data: Record<string, unknown> = { orderId: `o${sequence}`, amount: sequence };
    if (currency !== undefined) data.currency = currency;
    return {
      partition,
      sequence,
      committedAt,
      event: { id: `e${partition}-${sequence}`, source: "/test", type, time: new Date(committedAt).toISOString(), data },
    };
  }

  const eventArb = fc.record({
    partition: fc.integer({ min: 0, max: 3 }),
    type: fc.constantFrom("orders.paid", "orders.placed"),
    currency: fc.option(fc.constantFrom("EUR", "USD", "GBP", "JPY", "CHF", "SEK"), { nil: undefined }),
  });

  it("gives each instance exactly what the re-partition step would send it, and dead letters on instance 0 only", async () => {
    const internal = findTopic(config, plan.repartitionTopic);
    if (internal === undefined) throw new Error("the internal topic is missing");
    await fc.assert(
      fc.asyncProperty(fc.array(eventArb, { maxLength: 60 }), async (specs) => {
        const events = specs.map((s, i) => event(s.partition, i + 1, s.type, s.currency));
        // The re-partition step: the input filter (orders.paid), `repartitioned`, packed and placed in the internal topic.
        const expected = new Map<number, Repartitioned[]>();
        let noKey = 0;
        for (let partition = 0; partition < 4; partition++) {
          const inputs: Repartitioned[] = [];
          for (const e of events.filter((x) => x.partition === partition && x.event.type === "orders.paid")) {
            const r = repartitioned(plan, e.event, { partition, sequence: e.sequence, committedAt: e.committedAt });
            if ("skip" in r) noKey++;
            else inputs.push(r);
          }
          const packed = packBatches(inputs, { topic: "orders", partition, source: "s", partitions: plan.instances });
          const placed = await prepareInternalBatches(packed, internal, config, TRACE);
          placed.forEach((event, i) => {
            expected.set(event.partition, [...(expected.get(event.partition) ?? []), ...(packed[i]?.batch.inputs ?? [])]);
          });
        }
        const order = (list: Repartitioned[]) => [...list].sort((a, b) => a.partition - b.partition || a.sequence - b.sequence);
        for (let instance = 0; instance < plan.instances; instance++) {
          const { inputs, skipped } = historyInputs(plan, instance, events);
          expect(order(inputs)).toEqual(order(expected.get(instance) ?? []));
          // In history (commit) order.
          expect(inputs.map((r) => r.committedAt)).toEqual(inputs.map((r) => r.committedAt).sort((a, b) => a - b));
          expect(skipped.length).toBe(instance === 0 ? noKey : 0);
          for (const letter of skipped) expect(letter.reason).toBe("no_key");
        }
      }),
      { numRuns: 100 },
    );
  });
});
