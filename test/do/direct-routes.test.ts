import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { PartitionLog } from "../../durable-objects/partition-log";
import config from "../../eventline.config";
import type { Run } from "../../sdk/messages";
import { partitionName } from "../../sdk/partition-name";
import type { CloudEvent } from "../../shared/cloudevents";
import { findTopic } from "../../shared/config";
import type { DirectTarget } from "../../shared/subscriptions";
import { configSource } from "../../workers/platform/ingest/data-schema";
import { prepareEvents, toAppendEvent } from "../../workers/platform/ingest/parse";
import { waitFor } from "../helpers";

/**
 * A direct route (a processor's feed, ADR 0053) keeps one outbox row per append transaction, a
 * range over the events its filter matched (ADR 0056): the relay reads the range back, applies the
 * filter again to the events in between, feeds the matching ones in order with their chain, and
 * drops the row once the call returned. A failed call keeps the row (the stats count its events)
 * and the next attempt feeds them, once. Into a processor's instances the relay lingers, so that
 * commits close together reach the instance in one call.
 */

const TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const PLACED = "processor:unpaid-orders"; // orders.placed and orders.paid
const PAID = "processor:revenue-per-minute"; // orders.paid

type Call = { target: DirectTarget; runs: Run[] };

const DATA: Record<string, (id: string) => Record<string, unknown>> = {
  "orders.placed": (id) => ({ orderId: id, customerId: "c1", currency: "EUR", lines: [{ sku: "s", quantity: 1, unitPrice: 5 }] }),
  "orders.shipped": (id) => ({ orderId: id, carrier: "c" }),
  "orders.cancelled": (id) => ({ orderId: id }),
  "orders.paid": (id) => ({ orderId: id, amount: 5, currency: "EUR" }),
};

const order = (id: string, type: string) =>
  ({
    specversion: "1.0",
    id,
    source: "/test/direct",
    type,
    time: "2026-01-01T12:00:00.000Z",
    datacontenttype: "application/json",
    data: DATA[type]?.(id),
  }) as unknown as CloudEvent;

async function append(topic: string, partition: number, events: CloudEvent[]) {
  const t = findTopic(config, topic);
  if (t === undefined) throw new Error(`no topic ${topic}`);
  const prepared = await prepareEvents(events, t, config, { traceparent: TRACE, batch: true, schemas: configSource(t, undefined) });
  const result = await env.PARTITION_LOG.getByName(partitionName(topic, partition)).append({
    topic,
    partition,
    events: prepared.map(toAppendEvent),
  });
  if (!result.ok) throw new Error(`append refused: ${JSON.stringify(result)}`);
  return result.events.map((e) => e.sequence);
}

/** Records the log's direct calls (and swallows its queue sends); `gate` holds calls until released, `fail` refuses them. */
async function recording(topic: string, partition: number, behaviour: { gate?: Promise<void>; fail?: () => boolean } = {}) {
  const calls: Call[] = [];
  await runInDurableObject(env.PARTITION_LOG.getByName(partitionName(topic, partition)), (log: PartitionLog) => {
    log.testing.send = async () => {};
    log.testing.feed = async (target, runs) => {
      await behaviour.gate;
      if (behaviour.fail?.()) throw new Error("feed down");
      calls.push({ target, runs: structuredClone(runs) });
    };
  });
  return calls;
}

async function directRows(topic: string, partition: number) {
  return await runInDurableObject(env.PARTITION_LOG.getByName(partitionName(topic, partition)), (_log: PartitionLog, state) =>
    state.storage.sql
      .exec<{ subscription: string; sequence: number; through: number | null }>(
        `SELECT subscription, sequence, through FROM outbox WHERE subscription LIKE 'processor:%' ORDER BY subscription, sequence`,
      )
      .toArray(),
  );
}

const fed = (calls: Call[], route: string) =>
  calls
    .filter((c) => c.runs[0]?.subscription === route)
    .flatMap((c) => c.runs.flatMap((r) => r.events.map((e, i) => ({ sequence: e.sequence, prev: i === 0 ? r.prev : undefined }))));

describe("a direct route's outbox rows", () => {
  it("are one range per append, re-filtered and fed in order with their chain, then dropped", async () => {
    let release = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const calls = await recording("orders", 2, { gate });
    const [placedA, , paidA, , placedB] = await append("orders", 2, [
      order("a", "orders.placed"),
      order("a-shipped", "orders.shipped"),
      order("a-paid", "orders.paid"),
      order("b-cancelled", "orders.cancelled"),
      order("b", "orders.placed"),
    ]);
    // While the first call is held: one row per route, over its first and last match.
    expect(await directRows("orders", 2)).toEqual([
      { subscription: PAID, sequence: paidA, through: paidA },
      { subscription: PLACED, sequence: placedA, through: placedB },
    ]);
    const { outbox } = await env.PARTITION_LOG.getByName(partitionName("orders", 2)).stats();
    expect(outbox[PLACED]).toBe(5);
    expect(outbox[PAID]).toBe(1);
    release();
    await waitFor(
      () => directRows("orders", 2),
      (rows) => rows.length === 0,
    );
    // Only the matching events, in order: the shipped and cancelled ones in between are filtered out again.
    expect(fed(calls, PLACED)).toEqual([
      { sequence: placedA, prev: 0 },
      { sequence: paidA, prev: undefined },
      { sequence: placedB, prev: undefined },
    ]);
    const run = calls.find((c) => c.runs[0]?.subscription === PLACED)?.runs[0];
    expect(run?.events.map((e) => (e as { event?: { id?: string } }).event?.id)).toEqual(["a", "a-paid", "b"]);
    expect(fed(calls, PAID)).toEqual([{ sequence: paidA, prev: 0 }]);
    expect(calls.find((c) => c.runs[0]?.subscription === PAID)?.target).toEqual({ processor: "revenue-per-minute", stage: "repartition" });
    // The next append's range names the chain's end: the route's previous match.
    await append("orders", 2, [order("c", "orders.placed")]);
    await waitFor(
      () => directRows("orders", 2),
      (rows) => rows.length === 0,
    );
    expect(fed(calls, PLACED).at(-1)?.prev).toBe(placedB);
  });

  it("stay while the call fails (their events counted), and are fed once when it works again", async () => {
    let down = true;
    const calls = await recording("orders", 3, { fail: () => down });
    const sequences = await append("orders", 3, [order("x1", "orders.paid"), order("x2", "orders.paid"), order("x3", "orders.paid")]);
    const log = env.PARTITION_LOG.getByName(partitionName("orders", 3));
    // The relay after the commit failed: the rows wait for the alarm's retry.
    await waitFor(
      () => log.stats(),
      (s) => s.outbox[PAID] === 3,
    );
    expect(await directRows("orders", 3)).toEqual([
      { subscription: PAID, sequence: sequences[0], through: sequences[2] },
      { subscription: PLACED, sequence: sequences[0], through: sequences[2] },
    ]);
    expect(calls).toEqual([]);
    down = false;
    await log.relay();
    expect(await directRows("orders", 3)).toEqual([]);
    expect(fed(calls, PAID).map((e) => e.sequence)).toEqual(sequences);
    expect(fed(calls, PLACED).map((e) => e.sequence)).toEqual(sequences);
    expect((await log.stats()).outbox).toEqual({});
  });
});

describe("a direct route's rows from before ranges (one per event, `through` NULL)", () => {
  it("are fed as before, once, in order", async () => {
    let down = true;
    const calls = await recording("orders", 0, { fail: () => down });
    const sequences = await append("orders", 0, [order("old1", "orders.paid"), order("old2", "orders.paid")]);
    const log = env.PARTITION_LOG.getByName(partitionName("orders", 0));
    await waitFor(
      () => log.stats(),
      (s) => s.outbox[PAID] === 2,
    );
    // What an object written before migration 8 holds: a row per routed event.
    await runInDurableObject(log, (_log: PartitionLog, state) => {
      const sql = state.storage.sql;
      sql.exec(`DELETE FROM outbox WHERE subscription = ?`, PAID);
      sql.exec(`INSERT INTO outbox (subscription, sequence, prev) VALUES (?, ?, 0)`, PAID, sequences[0]);
      sql.exec(`INSERT INTO outbox (subscription, sequence, prev) VALUES (?, ?, ?)`, PAID, sequences[1], sequences[0]);
    });
    expect((await log.stats()).outbox[PAID]).toBe(2);
    down = false;
    await log.relay();
    expect(fed(calls, PAID)).toEqual([
      { sequence: sequences[0], prev: 0 },
      { sequence: sequences[1], prev: undefined },
    ]);
    expect((await log.stats()).outbox).toEqual({});
  });
});

describe("the relay into a processor's instances", () => {
  it("lingers after a commit, so commits close together reach the instance in one call", async () => {
    const topic = "processor.revenue-per-minute";
    const calls = await recording(topic, 1);
    await runInDurableObject(env.PARTITION_LOG.getByName(partitionName(topic, 1)), (log: PartitionLog) => {
      log.testing.processLingerMs = 300;
    });
    const batch = (n: number) =>
      ({
        specversion: "1.0",
        id: `orders/0/${n}-${n}`,
        source: "/eventline/processors/revenue-per-minute/input",
        type: "eventline.processor.inputs",
        datacontenttype: "application/json",
        data: { inputs: [{ partition: 0, sequence: n, committedAt: 1, id: `e${n}`, key: "EUR", eventTime: 1 }] },
      }) as unknown as CloudEvent;
    const appended = [
      ...(await append(topic, 1, [batch(1)])),
      ...(await append(topic, 1, [batch(2)])),
      ...(await append(topic, 1, [batch(3)])),
    ];
    expect(calls).toEqual([]);
    await waitFor(
      async () => calls.length,
      (n) => n > 0,
    );
    expect(calls).toHaveLength(1);
    expect(calls[0]?.target).toEqual({ processor: "revenue-per-minute", stage: "process" });
    expect(fed(calls, PAID).map((e) => e.sequence)).toEqual(appended);
  });
});
