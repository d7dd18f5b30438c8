import { evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { fold } from "../../shared/decider";
import { streamPartition } from "../../shared/partitioner";
import { type OrderEvent, orderDecider } from "../../workers/examples/orders/domain";
import { event, expectProblem, request, STRUCTURED } from "../helpers";

/**
 * Commands run in the partition log that holds their stream (ADR 0040), over HTTP: concurrent
 * commands on one order take turns; outside writers (stream appends with an expected version,
 * plain ingest) interleave exactly as the versions say; the object's in-memory aggregate is never
 * stale, and survives nothing it should not (eviction).
 */

interface CommandBody {
  orderId: string;
  version: number;
  position: { partition: number; sequence: number };
  events: { id: string; type: string; streamVersion: number; sequence: number }[];
  conflictRetries: number;
}

const json = (body: unknown) => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const line = (sku: string, unitPrice = 1000) => ({ sku, quantity: 1, unitPrice });

async function place(lines = [line("BASE")]): Promise<CommandBody> {
  const res = await request("/v1/orders", json({ customerId: `cust-${crypto.randomUUID()}`, currency: "EUR", lines }));
  const text = await res.text();
  expect(res.status, text).toBe(201);
  return JSON.parse(text) as CommandBody;
}

const command = (orderId: string, kind: string, body: unknown = {}) => request(`/v1/orders/${orderId}/${kind}`, json(body));

async function ok(res: Response): Promise<CommandBody> {
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as CommandBody;
}

async function streamEvents(orderId: string): Promise<(OrderEvent & { streamversion: number })[]> {
  const res = await request(`/v1/topics/orders/streams/${orderId}/events?limit=1000`);
  const page = (await res.json()) as { events: { type: string; data: unknown; streamversion: number }[] };
  return page.events.map((e) => ({ type: e.type, data: e.data, streamversion: e.streamversion }) as OrderEvent & { streamversion: number });
}

/** An outside writer: a line-added event appended to the order's stream, at `expectedVersion` when given. */
function outsideAppend(orderId: string, sku: string, expectedVersion?: number) {
  const query = expectedVersion === undefined ? "" : `?expectedVersion=${expectedVersion}`;
  return request(`/v1/topics/orders/streams/${orderId}/events${query}`, {
    method: "POST",
    headers: { "content-type": STRUCTURED },
    body: JSON.stringify(event({ source: "/outside", type: "orders.line-added", data: { orderId, line: line(sku) } })),
  });
}

const partitionOf = (orderId: string) => env.PARTITION_LOG.getByName(`orders/${streamPartition(orderId, 4)}`);

describe("commands in the partition: turns instead of races", () => {
  it("N concurrent commands on one order are all applied in some serial order, versions contiguous, none refused or retried", async () => {
    const id = (await place()).orderId;
    const N = 16;
    const bodies = await Promise.all(
      Array.from({ length: N }, async (_, i) => ok(await command(id, "add-line", { line: line(`SKU-${i}`) }))),
    );
    expect(bodies.map((b) => b.conflictRetries)).toEqual(Array(N).fill(0));
    expect(bodies.map((b) => b.version).sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, i) => i + 2));
    // Partition positions follow the stream's order: the serial order is the log's.
    const bySequence = [...bodies].sort((a, b) => a.position.sequence - b.position.sequence);
    expect(bySequence.map((b) => b.version)).toEqual(Array.from({ length: N }, (_, i) => i + 2));
    const stored = await streamEvents(id);
    expect(stored.map((e) => e.streamversion)).toEqual(Array.from({ length: N + 1 }, (_, i) => i + 1));
    expect(
      fold(orderDecider, stored)
        .lines.map((l) => l.sku)
        .sort(),
    ).toEqual(["BASE", ...Array.from({ length: N }, (_, i) => `SKU-${i}`)].sort());
  });

  it("concurrent commands whose decisions depend on each other see each other's events (pay once, then ship once)", async () => {
    const id = (await place([line("A", 700)])).orderId;
    const responses = await Promise.all([...Array.from({ length: 4 }, () => command(id, "pay", { amount: 700, currency: "EUR" }))]);
    const statuses = responses.map((r) => r.status).sort();
    // One pays; the others are decided on the paid state, one at a time, and refused by the domain.
    expect(statuses).toEqual([200, 422, 422, 422]);
    expect((await streamEvents(id)).map((e) => e.type)).toEqual(["orders.placed", "orders.paid"]);
  });
});

describe("outside writers interleave with commands exactly as the versions say", () => {
  it("an outside append expecting the version a command already moved past loses with 409 and currentVersion", async () => {
    const id = (await place()).orderId;
    await ok(await command(id, "add-line", { line: line("C1") }));
    const problem = await expectProblem(await outsideAppend(id, "LATE", 1), 409);
    expect(problem).toMatchObject({ code: "version_conflict", currentVersion: 2 });
    expect((await streamEvents(id)).map((e) => e.streamversion)).toEqual([1, 2]);
  });

  it("a command racing an outside expectedVersion append: exactly one of them takes version 2, the other follows or loses", async () => {
    for (let round = 0; round < 5; round++) {
      const id = (await place()).orderId;
      const [cmd, outside] = await Promise.all([command(id, "add-line", { line: line("CMD") }), outsideAppend(id, "OUT", 1)]);
      const body = await ok(cmd);
      const stored = await streamEvents(id);
      if (outside.status === 201) {
        // The outside writer won version 2; the command was decided on a state that has its line.
        expect(body.version).toBe(3);
        expect(stored.map((e) => e.type)).toEqual(["orders.placed", "orders.line-added", "orders.line-added"]);
        expect(stored[1]?.data).toMatchObject({ line: { sku: "OUT" } });
      } else {
        // The command won version 2; the outside append expected 1 and lost.
        expect(outside.status).toBe(409);
        expect(((await outside.json()) as { currentVersion: number }).currentVersion).toBe(2);
        expect(body.version).toBe(2);
        expect(stored).toHaveLength(2);
      }
      expect(stored.map((e) => e.streamversion)).toEqual(stored.map((_, i) => i + 1));
    }
  });
});

describe("the in-memory aggregate is never stale", () => {
  it("an outside expectedVersion append between two commands is seen by the second", async () => {
    const id = (await place()).orderId;
    await ok(await command(id, "add-line", { line: line("C1") })); // the object now holds the order at version 2
    expect((await outsideAppend(id, "OUT", 2)).status).toBe(201);
    // Only possible on a state that has OUT: a stale state refuses it (422) or loses every version race (409).
    const removed = await ok(await command(id, "remove-line", { sku: "OUT" }));
    expect(removed.version).toBe(4);
    expect(removed.conflictRetries).toBe(0);
    // And the command after that is decided on the state with OUT removed.
    await expectProblem(await command(id, "remove-line", { sku: "OUT" }), 422);
  });

  it("an event published through plain ingest (no expected version) joins the stream and is seen by the next command", async () => {
    const id = (await place([line("A", 500)])).orderId;
    await ok(await command(id, "add-line", { line: line("B", 500) }));
    const res = await request("/v1/topics/orders/events", {
      method: "POST",
      headers: { "content-type": STRUCTURED },
      body: JSON.stringify(
        event({ source: "/ingest", type: "orders.line-added", subject: id, data: { orderId: id, line: line("C", 500) } }),
      ),
    });
    expect(res.status).toBe(202);
    // The total the command checks must include C: 1500, not the 1000 a stale state would hold.
    await expectProblem(await command(id, "pay", { amount: 1000, currency: "EUR" }), 422);
    expect((await ok(await command(id, "pay", { amount: 1500, currency: "EUR" }))).version).toBe(4);
  });

  it("after the object is evicted, the next command loads the order from its snapshot and stream and decides on it", async () => {
    const id = (await place()).orderId;
    // Past a snapshot point (every 10 events), with a tail after it.
    for (let i = 0; i < 12; i++) await ok(await command(id, "add-line", { line: line(`S${i}`) }));
    const whole = fold(orderDecider, await streamEvents(id));
    await evictDurableObject(partitionOf(id));
    expect((await outsideAppend(id, "AFTER", 13)).status).toBe(201);
    const paid = await ok(await command(id, "pay", { amount: whole.total + 1000, currency: "EUR" }));
    expect(paid.version).toBe(15);
    await evictDurableObject(partitionOf(id));
    await expectProblem(await command(id, "pay", { amount: whole.total + 1000, currency: "EUR" }), 422);
    expect(fold(orderDecider, await streamEvents(id)).status).toBe("paid");
  });
});
