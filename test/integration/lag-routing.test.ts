import { describe, expect, it } from "vitest";
import { event, expectAccepted, partitionKeyFor, postBatch, request, waitFor } from "../helpers";
import { metrics, subOf } from "./metrics-helpers";

/**
 * Lag counts the events routed to a subscription (its filter matched at commit: the outbox chain,
 * ADR 0012 and 0030), never the partition's other events; the status API's per-partition columns
 * (head, routed, checkpoint, lag) stay consistent with each other. The greetings subscription
 * (filter: type prefix com.example.greeting) has no consumer in these tests, so what is routed to it
 * stays undelivered; activity (no filter) is consumed by the platform Worker.
 */

interface PartitionStatus {
  partition: number;
  head: number;
  routed: number;
  checkpoint: number;
  lag: number;
  outbox: number;
}
interface Status {
  lag: number;
  partitions: PartitionStatus[];
}
const status = async (name: string) => {
  const res = await request(`/v1/subscriptions/${name}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Status;
};
const P = 1;
const key = partitionKeyFor(P, 4, "lag-routing");
const others = (n: number, tag: string) =>
  Array.from({ length: n }, (_, i) => event({ type: "lag.other", partitionkey: key, data: { tag, i } }));
const greetings = (n: number) =>
  Array.from({ length: n }, (_, i) => event({ type: "com.example.greeting.hello", partitionkey: key, data: { name: `g${i}` } }));

/** The columns' invariants, whatever the partition holds. */
function consistent(p: PartitionStatus): void {
  expect(p.checkpoint).toBeLessThanOrEqual(p.head);
  expect(p.routed).toBeLessThanOrEqual(p.head);
  expect(p.lag).toBeGreaterThanOrEqual(0);
  // Only what was routed above the checkpoint can be owed.
  expect(p.lag).toBeLessThanOrEqual(Math.max(0, p.routed - p.checkpoint));
  if (p.routed <= p.checkpoint) expect(p.lag).toBe(0);
}

describe("lag counts what is routed to the subscription", () => {
  it("events the filter skips add no lag; matching undelivered ones do; the columns agree with head and checkpoint", async () => {
    const before = (await status("greetings")).partitions[P];
    const head0 = before?.head ?? 0;

    // Three events greetings does not match: the head moves, greetings' lag does not.
    const skipped = await expectAccepted(await postBatch("events", others(3, "first")));
    expect(new Set(skipped.map((a) => a.partition))).toEqual(new Set([P]));
    let p = (await status("greetings")).partitions[P];
    expect(p).toMatchObject({ head: head0 + 3, routed: before?.routed ?? 0, lag: before?.lag ?? 0 });
    expect(p?.lag).toBe(0);
    if (p) consistent(p);

    // Two greetings: routed to it, not delivered (no consumer here) — its lag.
    const matched = await expectAccepted(await postBatch("events", greetings(2)));
    const lastGreeting = matched.at(-1)?.sequence ?? 0;
    p = (await status("greetings")).partitions[P];
    expect(p).toMatchObject({ head: head0 + 5, routed: lastGreeting, checkpoint: 0, lag: 2 });
    if (p) consistent(p);

    // Three more others: the head passes the last greeting, the lag stays 2.
    await expectAccepted(await postBatch("events", others(3, "second")));
    const after = await status("greetings");
    p = after.partitions[P];
    expect(p).toMatchObject({ head: head0 + 8, routed: lastGreeting, checkpoint: 0, lag: 2 });
    for (const q of after.partitions) consistent(q);
    expect(after.lag).toBe(after.partitions.reduce((n, q) => n + q.lag, 0));

    // /v1/metrics says the same, partition by partition.
    const m = subOf(await metrics(), "greetings");
    expect(m.lag.map((l) => l.events)).toEqual(after.partitions.map((q) => q.lag));
    expect(m.lag[P]?.events).toBe(2);
    expect(m.lag[P]?.seconds).toBeGreaterThanOrEqual(0);
  });

  it("a subscription without a filter is routed every event and, once it has handled them, lags 0 with checkpoint = routed = head", async () => {
    await expectAccepted(await postBatch("events", others(4, "activity")));
    const settled = await waitFor(
      () => status("activity"),
      (s) => s.partitions[P]?.lag === 0 && s.partitions[P]?.checkpoint === s.partitions[P]?.head,
    );
    const p = settled.partitions[P];
    expect(p?.head).toBeGreaterThan(0);
    expect(p).toMatchObject({ lag: 0, routed: p?.head, checkpoint: p?.head });
    for (const q of settled.partitions) consistent(q);
    expect(subOf(await metrics(), "activity").lag[P]?.events).toBe(0);
  });
});
