import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { partitionName } from "../../sdk/partition-name";
import { expectAccepted, partitionKeyFor, postBatch, readAll, topicConfig, waitFor } from "../helpers";

/**
 * A processor's input filter decides what its re-partition feed gets: events of other types are
 * not routed to it at all (no outbox row, nothing in its internal topic, no `no_key` dead letter
 * for an event that lacks the processor's key because it was never the processor's input).
 */

const PARTITION = 1;
const key = partitionKeyFor(PARTITION, topicConfig("orders").partitions, "routing");

const orderEvent = (id: string, type: string, data: Record<string, unknown>) => ({
  specversion: "1.0",
  id,
  source: "/test/processor-routing",
  type,
  partitionkey: key,
  time: "2026-01-01T12:00:00.000Z",
  datacontenttype: "application/json",
  data,
});

describe("processor input filters", () => {
  it("route only matching events to a processor's feed", { timeout: 60_000 }, async () => {
    const acks = await expectAccepted(
      await postBatch("orders", [
        orderEvent("r-placed", "orders.placed", {
          orderId: "r1",
          customerId: "c1",
          currency: "EUR",
          lines: [{ sku: "s", quantity: 1, unitPrice: 5 }],
        }),
        orderEvent("r-shipped", "orders.shipped", { orderId: "r1", carrier: "c" }),
        orderEvent("r-cancelled", "orders.cancelled", { orderId: "r1" }),
        orderEvent("r-paid", "orders.paid", { orderId: "r1", amount: 5, currency: "EUR" }),
      ]),
    );
    expect(new Set(acks.map((a) => a.partition))).toEqual(new Set([PARTITION]));
    const [placed, , , paid] = acks.map((a) => a.sequence);
    // revenue-per-minute takes orders.paid; unpaid-orders orders.placed and orders.paid. The placed
    // event has a currency, so revenue-per-minute would count it if it were routed there.
    const expected: Record<string, (number | undefined)[]> = { "revenue-per-minute": [paid], "unpaid-orders": [placed, paid] };
    for (const [processor, sequences] of Object.entries(expected)) {
      const internal = `processor.${processor}`;
      // The relay feeds in sequence order: once the paid event is there, every earlier one was handled.
      const inputs = await waitFor(
        async () =>
          (await Promise.all([0, 1, 2, 3].map((p) => readAll(internal, p))))
            .flat()
            .flatMap((e) => (e.data as { inputs: { partition: number; sequence: number }[] }).inputs),
        (list) => list.some((i) => i.partition === PARTITION && i.sequence === paid),
      );
      expect(inputs.map((i) => `${i.partition}/${i.sequence}`).sort()).toEqual(sequences.map((q) => `${PARTITION}/${q}`).sort());
    }
    // The shipped and cancelled events have no currency: routed to revenue-per-minute, they would be its no_key dead letters.
    const deadLetters = await env.DB.prepare(`SELECT subscription, reason FROM dead_letters WHERE subscription LIKE 'processor:%'`).all();
    expect(deadLetters.results).toEqual([]);
    const { outbox } = await env.PARTITION_LOG.getByName(partitionName("orders", PARTITION)).stats();
    expect(outbox).toEqual({});
  });
});
