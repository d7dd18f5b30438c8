import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Consumer } from "../../sdk/consumer";
import type { Delivery } from "../../sdk/messages";
import { fold } from "../../shared/decider";
import { type OrderCommand, type OrderEvent, type OrderState, orderDecider } from "../../workers/examples/orders/domain";
import {
  CUSTOMER_SUMMARY,
  customerSummaryConsumer,
  customerSummaryStatements,
  ORDERS_VIEW,
  ordersViewConsumer,
  ordersViewStatements,
} from "../../workers/examples/orders/projections";
import { configuredConsumer } from "../../workers/platform/consumers/configured";
import { commandSequenceArb, runCommands } from "../orders-arbitraries";
import { batchOf, counting } from "./counting";
import { FakeMessage } from "./helpers";
import { interleave, orderDeliveries } from "./orders-log";

/**
 * The orders projections under batch settlement (ADR 0047): a queue batch mixing several orders'
 * events commits in two D1 round trips (prefetch + commit) and leaves exactly the read model that
 * settling the same events one by one (`settlement: "event"`) leaves, which is the fold of each
 * order's stream; an event whose predecessor was not applied fails its commit instead of being
 * skipped.
 */

/** The same handlers settled event by event: the reference the batch must match. */
const perEventView = configuredConsumer(
  ORDERS_VIEW,
  async (event, { env: e, delivery }) => ordersViewStatements(e.DB, event, { partition: delivery.partition, sequence: delivery.sequence }),
  { settlement: "event" },
);
const perEventSummary = configuredConsumer(CUSTOMER_SUMMARY, async (event, { env: e }) => customerSummaryStatements(e.DB, event), {
  settlement: "event",
});

/** Delivers `list` to `consumer.queue()` in consecutive batches of the given sizes, each shuffled; every batch must settle in two round trips. */
async function deliverInBatches(consumer: Consumer<Env>, list: Delivery[], sizes: number[], shuffle: number[]): Promise<void> {
  let at = 0;
  for (let b = 0; at < list.length; b++) {
    const size = Math.max(1, sizes[b % sizes.length] ?? 1);
    const messages = list.slice(at, at + size).map((d) => new FakeMessage(d));
    at += size;
    // Queues keeps no order within a batch: rotate and reverse by the drawn amount.
    const k = (shuffle[b % Math.max(shuffle.length, 1)] ?? 0) % messages.length;
    const batch = [...messages.slice(k), ...messages.slice(0, k)];
    if (k % 2 === 1) batch.reverse();
    const d1 = counting(env.DB);
    await consumer.queue(batchOf(batch), { ...env, DB: d1.db });
    expect(messages.every((m) => m.acked && m.retries.length === 0)).toBe(true);
    expect(d1.single).toEqual([]);
    expect(d1.batches, `round trips for a batch of ${messages.length}`).toBe(2);
  }
}

async function deliverOneByOne(consumer: Consumer<Env>, list: Delivery[]): Promise<void> {
  for (const d of list) expect(await new FakeMessage(d).deliverUntilSettled(consumer)).toEqual(["handled"]);
}

async function viewRow(orderId: string) {
  const row = await env.DB.prepare(
    "SELECT status, currency, lines, total, paid, version, partition, sequence, placed_at, updated_at, customer_id FROM orders_view WHERE order_id = ?",
  )
    .bind(orderId)
    .first<Record<string, unknown>>();
  return row === null ? null : { ...row, lines: JSON.parse(String(row.lines)) };
}

async function summary(customerId: string) {
  const count = await env.DB.prepare("SELECT order_count, updated_at FROM customer_summaries WHERE customer_id = ?")
    .bind(customerId)
    .first();
  const spend = await env.DB.prepare("SELECT currency, total_spent FROM customer_spend WHERE customer_id = ? ORDER BY currency")
    .bind(customerId)
    .all();
  return { count, spend: spend.results };
}

let runs = 0;

describe("orders projections: batch settlement", () => {
  it("a batch mixing several orders' events settles in two round trips and equals per-event settlement and the fold (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(commandSequenceArb(), { minLength: 2, maxLength: 4 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 40 }),
        fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 5 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 5 }),
        async (sequences, pick, sizes, shuffle) => {
          const run = `b${++runs}-${crypto.randomUUID().slice(0, 8)}`;
          const streams = new Map<string, OrderEvent[]>();
          const states = new Map<string, OrderState>();
          sequences.forEach((commands, k) => {
            const orderId = `order-${k}`;
            // Orders 0 and 2 share a customer, so the summary adds up across orders in one batch.
            const renamed = commands.map((c): OrderCommand => (c.kind === "place" ? { ...c, orderId, customerId: `cust-${k % 2}` } : c));
            const { events } = runCommands(renamed);
            streams.set(orderId, events);
            states.set(orderId, fold(orderDecider, events));
          });
          const log = interleave(streams, (open, step) => (pick[step % Math.max(pick.length, 1)] ?? 0) % open);
          const batched = (id: string) => `${run}-batch-${id}`;
          const single = (id: string) => `${run}-event-${id}`;
          const topic = (mode: string) => `orders-${run}-${mode}`;

          await deliverInBatches(
            ordersViewConsumer,
            orderDeliveries(ORDERS_VIEW, topic("b"), log, `${run}-${ORDERS_VIEW}`, batched),
            sizes,
            shuffle,
          );
          await deliverInBatches(
            customerSummaryConsumer,
            orderDeliveries(CUSTOMER_SUMMARY, topic("b"), log, `${run}-${CUSTOMER_SUMMARY}`, batched),
            sizes,
            shuffle,
          );
          await deliverOneByOne(perEventView, orderDeliveries(ORDERS_VIEW, topic("e"), log, `${run}-${ORDERS_VIEW}`, single));
          await deliverOneByOne(perEventSummary, orderDeliveries(CUSTOMER_SUMMARY, topic("e"), log, `${run}-${CUSTOMER_SUMMARY}`, single));

          for (const [orderId, state] of states) {
            const [b, e] = [await viewRow(batched(orderId)), await viewRow(single(orderId))];
            expect({ ...b, customer_id: null }).toEqual({ ...e, customer_id: null });
            expect(b).toMatchObject({
              status: state.status,
              customer_id: batched(state.customerId as string),
              currency: state.currency,
              lines: state.lines,
              total: state.total,
              paid: state.paid,
              version: streams.get(orderId)?.length,
            });
          }
          for (const customer of ["cust-0", "cust-1"]) expect(await summary(batched(customer))).toEqual(await summary(single(customer)));
        },
      ),
      { numRuns: 8 },
    );
  }, 120_000);

  it("an event whose predecessor was not applied fails its commit and changes nothing (never skipped)", async () => {
    const run = `gap-${crypto.randomUUID().slice(0, 8)}`;
    const orderId = `${run}-order`;
    const { events } = runCommands([
      { kind: "place", orderId, customerId: `${run}-c`, currency: "EUR", lines: [{ sku: "A", quantity: 2, unitPrice: 150 }] },
      { kind: "add-line", line: { sku: "B", quantity: 1, unitPrice: 100 } },
      { kind: "pay", amount: 400, currency: "EUR" },
    ]);
    const log = events.map((event, i) => ({ orderId, event, streamVersion: i + 1 }));
    const view = orderDeliveries(ORDERS_VIEW, `orders-${run}`, log, `${run}-${ORDERS_VIEW}`, (id) => id).map((d) => d.event);
    const sums = orderDeliveries(CUSTOMER_SUMMARY, `orders-${run}`, log, `${run}-${CUSTOMER_SUMMARY}`, (id) => id).map((d) => d.event);
    const at = { partition: 0, sequence: 1 };
    await env.DB.batch([...ordersViewStatements(env.DB, view[0] as never, at), ...customerSummaryStatements(env.DB, sums[0] as never)]);
    // Version 3 on top of version 1: refused, whichever projection.
    await expect(env.DB.batch(ordersViewStatements(env.DB, view[2] as never, at))).rejects.toThrow(/malformed JSON|out of order/);
    await expect(env.DB.batch(customerSummaryStatements(env.DB, sums[2] as never))).rejects.toThrow(/malformed JSON|out of order/);
    expect(await viewRow(orderId)).toMatchObject({ version: 1, status: "open", total: 300, paid: 0 });
    expect(await summary(`${run}-c`)).toMatchObject({ count: { order_count: 1 }, spend: [] });
    // In order, both apply.
    for (const i of [1, 2]) {
      await env.DB.batch([...ordersViewStatements(env.DB, view[i] as never, at), ...customerSummaryStatements(env.DB, sums[i] as never)]);
    }
    expect(await viewRow(orderId)).toMatchObject({ version: 3, status: "paid", total: 400, paid: 400 });
    expect(await summary(`${run}-c`)).toMatchObject({ spend: [{ currency: "EUR", total_spent: 400 }] });
  });
});
