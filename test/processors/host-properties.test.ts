import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Processor } from "../../durable-objects/processor";
import config from "../../eventline.config";
import type { Run } from "../../sdk/messages";
import { partitionName } from "../../sdk/partition-name";
import type { AggregateProcessorSpec, ProcessorInput } from "../../shared/processing";
import { processorPlans, type Repartitioned } from "../../shared/processors";
import { expectWindows, type Op } from "../unit/processing-oracle";
import { buildOps, streamArb } from "../unit/processing-streams";

/**
 * The Processor Durable Object against the brute-force oracle (issue 21 "tests that count"):
 * random streams (out-of-order and late times, redeliveries, processing-time ticks) are fed to a
 * real instance in runs of random size, with crashes at random points — before a step's commit,
 * between the commit and the output append, and loss of everything in memory — after which the
 * runs since the last acknowledged one are sent again, as the partition log's relay does. The
 * final results appended to the output topic must equal the oracle's (ids, keys, windows,
 * count and sum), each once, and the late events dead-lettered must be exactly the oracle's.
 */

const NAME = "revenue-per-minute";
const plan = processorPlans(config).get(NAME);
if (plan === undefined) throw new Error("the demo processor is missing");
const spec = plan.spec as AggregateProcessorSpec;
const stub = () => env.PROCESSOR.getByName(`${NAME}/0`);

const TIME_SCALE = 10;

type Crash = "beforeCommit" | "beforeFlush" | "forget" | null;

function repartitioned(input: ProcessorInput, run: number): Repartitioned {
  const amount = input.value?.amount;
  return {
    partition: input.partition,
    sequence: input.sequence + run * 1_000_000,
    committedAt: input.receivedTime,
    id: `${run}-${input.id}`,
    key: `r${run}/${input.key}`,
    // The shared streams wander by seconds; scaled ×10 they cross the demo's 1-minute windows often.
    eventTime: input.eventTime * TIME_SCALE,
    value: typeof amount === "number" ? { "/data/amount": amount } : {},
  };
}

/** The engine input the oracle sees for the same event (its run's key, value field and sequence). */
function oracleInput(input: ProcessorInput, run: number): ProcessorInput {
  const r = repartitioned(input, run);
  return {
    partition: r.partition,
    sequence: r.sequence,
    id: r.id,
    key: r.key,
    eventTime: r.eventTime,
    receivedTime: r.committedAt,
    value: r.value ?? {},
  };
}

async function withInstance<T>(fn: (p: Processor) => Promise<T> | T): Promise<T> {
  return await runInDurableObject(stub(), fn);
}

async function feed(runs: Run[]): Promise<boolean> {
  try {
    await stub().feed({ processor: NAME, instance: 0, runs });
    return true;
  } catch {
    return false;
  }
}

/** The output topic as stored (read from its partitions directly: the HTTP API's rate limit would bite). */
async function outputEvents(): Promise<{ id: string; subject?: string; data: unknown }[]> {
  const out: { id: string; subject?: string; data: unknown }[] = [];
  for (let p = 0; p < 2; p++) {
    const log = env.PARTITION_LOG.getByName(partitionName("orders-revenue", p));
    for (let from = 1; ; ) {
      const page = await log.read(from, 1000);
      out.push(...page.events.map((text) => JSON.parse(text) as { id: string; subject?: string; data: unknown }));
      if (page.last === null || page.last >= page.head) break;
      from = page.last + 1;
    }
  }
  return out;
}

let runCounter = 0;
const totals = { finals: 0, late: 0, crashes: 0, redelivered: 0, recut: 0 };

describe("processor host vs oracle (fast-check, crash points)", () => {
  it("emits exactly the oracle's final results, once, and dead-letters exactly its late events", { timeout: 240_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        streamArb(40).filter((s) => s.partitions <= 4),
        fc.array(fc.constantFrom<Crash>("beforeCommit", "beforeFlush", "forget", null, null, null), { minLength: 40, maxLength: 40 }),
        fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 40, maxLength: 40 }),
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 40, maxLength: 40 }),
        fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }),
        async (stream, crashes, sizes, groups, recuts) => {
          const run = ++runCounter;
          const built = buildOps(stream.partitions, stream.steps, false);
          // In the end processing time moves an hour on: every input is idle, so what has data closes.
          const last = Math.max(0, ...built.map((o) => (o.op === "advance" ? o.now : o.input.receivedTime)));
          // The host's processing time starts with its first input (an alarm before that advances nothing): ticks before it are dropped.
          const first = built.findIndex((o) => o.op === "input");
          const ops: Op[] = [...built.filter((o, k) => o.op === "input" || k > first), { op: "advance", now: last + 3_600_000 }];
          // Processing time is the test's: the alarm's advance uses it (0 is behind every input: a no-op).
          let clock = 0;
          await withInstance((p) => {
            p.testing.now = () => clock;
          });
          await stub().reset({ processor: NAME, instance: 0 });
          // The internal topic's view: each new input once (a redelivered input was appended before),
          // in batches of 1-3 inputs (ADR 0056) that never straddle a tick, some starting with the
          // previous batch's last input again, as a run cut differently on a resend appends it.
          const unique: Repartitioned[] = [];
          const seenInputs = new Set<string>();
          const tickAt: { now: number; input: number }[] = [];
          for (const op of ops) {
            if (op.op === "advance") {
              tickAt.push({ now: op.now, input: unique.length });
              continue;
            }
            const id = `${op.input.partition}/${op.input.sequence}`;
            if (!seenInputs.has(id)) {
              seenInputs.add(id);
              unique.push(repartitioned(op.input, run));
            }
          }
          const cuts = new Set(tickAt.map((t) => t.input));
          const items: ({ sequence: number; committedAt: number } & ({ event: Record<string, unknown> } | { stored: string }))[] = [];
          const batchEnds: number[] = [];
          for (let n = 0, k = 0; n < unique.length; k++) {
            let end = n + 1;
            while (end < unique.length && end - n < (groups[k % groups.length] ?? 1) && !cuts.has(end)) end++;
            const inputs = unique.slice(n, end);
            const again = unique[n - 1];
            if (again !== undefined && recuts[k % recuts.length]) {
              inputs.unshift(again);
              totals.recut++;
            }
            // As the log's relay sends it (stored text), or parsed, as a run of other origin may.
            const event = { id: `b${run}-${items.length + 1}`, data: { inputs } };
            const at = { sequence: items.length + 1, committedAt: inputs.at(-1)?.committedAt ?? 0 };
            items.push(k % 2 === 0 ? { ...at, stored: JSON.stringify(event) } : { ...at, event });
            batchEnds.push(end);
            n = end;
          }
          // A tick falls after the batches that end at or before its input position.
          const ticks = tickAt.map((t) => ({ now: t.now, at: batchEnds.filter((e) => e <= t.input).length }));
          // Feed in runs of random size; ticks between runs advance processing time through the alarm.
          let acked = 0;
          let i = 0;
          let tick = 0;
          const runTicks = async () => {
            // The ticks that come before the next unacknowledged input, in the oracle's order.
            while (tick < ticks.length && (ticks[tick]?.at ?? Number.POSITIVE_INFINITY) <= acked) {
              clock = Math.max(clock, ticks[tick]?.now ?? 0);
              await withInstance(async (p) => {
                await p.alarm();
              });
              tick++;
            }
          };
          await runTicks();
          let retrying = false;
          let crashed = 0;
          while (acked < items.length) {
            const size = sizes[i % sizes.length] ?? 1;
            // The attempt after a failed one is the relay's retry: it does not crash again.
            const crash = retrying ? null : (crashes[i % crashes.length] ?? null);
            i++;
            // A run never crosses a tick: the tick must fall between the same inputs as in the oracle's log.
            const nextTick = ticks[tick]?.at ?? Number.POSITIVE_INFINITY;
            const batch = items.slice(acked, Math.min(acked + size, nextTick));
            const runMessage: Run = { v: 2, subscription: "processor:x", topic: "processor.x", partition: 0, prev: acked, events: batch };
            if (crash !== null) {
              await withInstance((p) => {
                if (crash === "beforeCommit")
                  p.testing.beforeCommit = () => {
                    throw new Error("crash before commit");
                  };
                if (crash === "beforeFlush")
                  p.testing.beforeFlush = async () => {
                    throw new Error("crash before the output append");
                  };
              });
            }
            const ok = await feed([runMessage]);
            if (crash !== null) crashed++;
            await withInstance((p) => {
              p.testing.beforeCommit = () => {};
              p.testing.beforeFlush = async () => {};
              if (crash === "forget" || crash === "beforeCommit") p.testing.forget();
            });
            if (crash === "beforeCommit") expect(ok).toBe(false);
            if (ok) acked += batch.length;
            retrying = !ok;
            await runTicks();
          }
          // Redeliver a random earlier run: nothing changes.
          if (items.length > 0)
            expect(
              await feed([{ v: 2, subscription: "processor:x", topic: "processor.x", partition: 0, prev: 0, events: items.slice(0, 3) }]),
            ).toBe(true);
          await withInstance(async (p) => {
            await p.alarm();
          });
          const status = await stub().status({ processor: NAME, instance: 0 });
          expect(status.pendingOutputs).toBe(0);
          expect(status.lastOutputError).toBeNull();

          // The oracle replays the same inputs, with ticks where the host's alarm moved processing time.
          const oracleOps: Op[] = [];
          let fed = 0;
          const seen = new Set<string>();
          for (const op of ops) {
            if (op.op === "advance") oracleOps.push(op);
            else {
              oracleOps.push({ op: "input", input: oracleInput(op.input, run) });
              const id = `${op.input.partition}/${op.input.sequence}`;
              if (!seen.has(id)) {
                seen.add(id);
                fed++;
              }
            }
          }
          expect(fed).toBe(unique.length);
          const expected = expectWindows(spec, oracleOps);
          const prefix = `r${run}/`;
          const output = await outputEvents();
          const mine = output.filter((e) => typeof e.subject === "string" && e.subject.startsWith(prefix));
          expect(new Set(mine.map((e) => e.id)).size).toBe(mine.length);
          const got = mine.map((e) => ({ id: e.id, data: e.data })).sort((a, b) => String(a.id).localeCompare(String(b.id)));
          const want = expected.finals
            .map((f) => ({
              id: f.id,
              data: {
                key: f.key,
                windowStart: new Date(f.windowStart).toISOString(),
                windowEnd: new Date(f.windowEnd).toISOString(),
                count: f.aggregates.count,
                sum: f.aggregates.sum,
              },
            }))
            .sort((a, b) => a.id.localeCompare(b.id));
          expect(got).toEqual(want);
          const late = await env.DB.prepare(
            `SELECT partition, sequence FROM dead_letters WHERE subscription = ? AND event_id LIKE ? ORDER BY partition, sequence`,
          )
            .bind(`processor:${NAME}`, `${run}-%`)
            .all<{ partition: number; sequence: number }>();
          const wantLate = expected.late
            .map((l) => ({ partition: l.partition, sequence: l.sequence }))
            .sort((a, b) => a.partition - b.partition || a.sequence - b.sequence);
          expect(late.results).toEqual(wantLate);
          totals.finals += want.length;
          totals.late += wantLate.length;
          totals.crashes += crashed;
          totals.redelivered += ops.filter((o) => o.op === "input").length - unique.length;
        },
      ),
      { numRuns: 25 },
    );
    // Not vacuous: results were compared, late events and crashes happened, redeliveries were absorbed.
    expect(totals.finals).toBeGreaterThan(25);
    expect(totals.late).toBeGreaterThan(0);
    expect(totals.crashes).toBeGreaterThan(10);
    expect(totals.redelivered).toBeGreaterThan(0);
    expect(totals.recut).toBeGreaterThan(0);
  });
});
