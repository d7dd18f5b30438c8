import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import config from "../../eventline.config";
import { fold } from "../../shared/decider";
import { partitionFor } from "../../shared/partitioner";
import { deserializeState, type OrderEvent, orderDecider, SNAPSHOT_SCHEMA_VERSION } from "../../workers/examples/orders/domain";
import { allHeads, expectProblem, request, waitFor } from "../helpers";

interface CommandBody {
  orderId: string;
  command: string;
  version: number;
  position: { partition: number; sequence: number };
  after: string;
  events: { id: string; type: string; streamVersion: number; sequence: number }[];
  conflictRetries: number;
  replayed: boolean;
}
interface OrderBody {
  order: { orderId: string; status: string; lines: unknown[]; total: number; paid: number; version: number; customerId: string };
  freshness: { behindEvents: number; waitedMs?: number; partitions: { partition: number; applied: number; committed: number }[] };
}

const json = (body: unknown, headers: Record<string, string> = {}) => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body),
});

const line = (sku: string, quantity = 1, unitPrice = 1000) => ({ sku, quantity, unitPrice });

async function place(customerId = `cust-${crypto.randomUUID()}`, lines = [line("A")], headers: Record<string, string> = {}) {
  const res = await request("/v1/orders", json({ customerId, currency: "EUR", lines }, headers));
  const text = await res.text();
  expect(res.status, text).toBe(201);
  return JSON.parse(text) as CommandBody;
}

function command(orderId: string, kind: string, body: unknown = {}, headers: Record<string, string> = {}) {
  return request(`/v1/orders/${orderId}/${kind}`, json(body, headers));
}

async function ok(res: Response): Promise<CommandBody> {
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as CommandBody;
}

async function streamVersion(orderId: string): Promise<number> {
  const res = await request(`/v1/topics/orders/streams/${orderId}`);
  return ((await res.json()) as { version: number }).version;
}

async function streamEvents(orderId: string): Promise<OrderEvent[]> {
  const res = await request(`/v1/topics/orders/streams/${orderId}/events?limit=1000`);
  const page = (await res.json()) as { events: { type: string; data: unknown }[] };
  return page.events.map((e) => ({ type: e.type, data: e.data }) as OrderEvent);
}

async function view(orderId: string, after?: string): Promise<OrderBody> {
  const res = await request(`/v1/orders/${orderId}${after === undefined ? "" : `?after=${after}`}`);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as OrderBody;
}

describe("order commands", () => {
  it("runs an order's life: place, add and remove lines, pay, ship — each answering version and position", async () => {
    const placed = await place(undefined, [line("A", 2, 500)]);
    expect(placed.orderId).toMatch(/^ord_[0-9a-f]{32}$/);
    expect(placed).toMatchObject({ command: "place", version: 1, replayed: false, conflictRetries: 0 });
    const partition = partitionFor({ id: placed.orderId, subject: placed.orderId }, 4);
    expect(placed.position).toEqual({ partition, sequence: placed.events[0]?.sequence });
    expect(placed.after).toBe(`${partition}:${placed.position.sequence}`);

    const id = placed.orderId;
    expect((await ok(await command(id, "add-line", { line: line("B", 1, 250) }))).version).toBe(2);
    expect((await ok(await command(id, "remove-line", { sku: "A" }))).version).toBe(3);
    const paid = await ok(await command(id, "pay", { amount: 250, currency: "EUR" }));
    expect(paid.events.map((e) => e.type)).toEqual(["orders.paid"]);
    const shipped = await ok(await command(id, "ship", { carrier: "DHL" }));
    expect(shipped.version).toBe(5);
    expect(shipped.position.sequence).toBeGreaterThan(paid.position.sequence);

    const events = await streamEvents(id);
    expect(events.map((e) => e.type)).toEqual([
      "orders.placed",
      "orders.line-added",
      "orders.line-removed",
      "orders.paid",
      "orders.shipped",
    ]);
    expect(fold(orderDecider, events)).toMatchObject({ status: "shipped", total: 250, paid: 250, lines: [line("B", 1, 250)] });
  });

  it("answers 422 for every command the state forbids, and appends nothing", async () => {
    const open = (await place()).orderId;
    const paid = (await place()).orderId;
    await ok(await command(paid, "pay", { amount: 1000, currency: "EUR" }));
    const shipped = (await place()).orderId;
    await ok(await command(shipped, "pay", { amount: 1000, currency: "EUR" }));
    await ok(await command(shipped, "ship"));
    const cancelled = (await place()).orderId;
    await ok(await command(cancelled, "cancel", { reason: "changed my mind" }));

    const forbidden: [string, string, unknown][] = [
      [open, "pay", { amount: 999, currency: "EUR" }],
      [open, "pay", { amount: 1000, currency: "USD" }],
      [open, "ship", {}],
      [open, "add-line", { line: line("A") }],
      [open, "remove-line", { sku: "A" }],
      [open, "remove-line", { sku: "nope" }],
      [paid, "pay", { amount: 1000, currency: "EUR" }],
      [paid, "add-line", { line: line("B") }],
      [paid, "remove-line", { sku: "A" }],
      [shipped, "cancel", {}],
      [shipped, "ship", {}],
      [shipped, "pay", { amount: 1000, currency: "EUR" }],
      [shipped, "add-line", { line: line("B") }],
      [cancelled, "cancel", {}],
      [cancelled, "pay", { amount: 1000, currency: "EUR" }],
      [cancelled, "ship", {}],
      [cancelled, "add-line", { line: line("B") }],
    ];
    const versions = new Map<string, number>();
    for (const id of [open, paid, shipped, cancelled]) versions.set(id, await streamVersion(id));
    const heads = await allHeads();
    for (const [id, kind, body] of forbidden) {
      const problem = await expectProblem(await command(id, kind, body), 422);
      expect(problem.code, `${kind} ${JSON.stringify(body)}`).toBe("command_rejected");
      expect(problem.detail.length).toBeGreaterThan(10);
    }
    expect(await allHeads()).toEqual(heads);
    for (const [id, version] of versions) expect(await streamVersion(id)).toBe(version);
  });

  it("answers 404 for an unknown order or command, 400 for a bad body, and stores nothing", async () => {
    const heads = await allHeads();
    expect((await expectProblem(await command("ord_missing", "pay", { amount: 1, currency: "EUR" }), 404)).code).toBe("not_found");
    const unknown = await expectProblem(await command("ord_missing", "refund", {}), 404);
    expect(unknown.detail).toContain("add-line, remove-line, pay, ship, cancel");
    const badBody = await expectProblem(await request("/v1/orders", json({ customerId: "c", currency: "euro", lines: [] })), 400);
    expect(badBody.issues?.map((i) => i.path).sort()).toEqual(["/json/currency", "/json/lines"]);
    const notJson = await request("/v1/orders", { method: "POST", headers: { "content-type": "application/json" }, body: "{" });
    expect((await expectProblem(notJson, 400)).code).toBe("malformed_request");
    const extra = await expectProblem(await command("ord_missing", "pay", { amount: 1, currency: "EUR", tip: 5 }), 400);
    expect(extra.code).toBe("invalid_parameter");
    const dupSkus = await expectProblem(
      await request("/v1/orders", json({ customerId: "c", currency: "EUR", lines: [line("A"), line("A")] })),
      422,
    );
    expect(dupSkus.code).toBe("command_rejected");
    expect((await expectProblem(await request("/v1/orders/x", { method: "DELETE" }), 405)).code).toBe("method_not_allowed");
    expect(await allHeads()).toEqual(heads);
  });

  it("with an Idempotency-Key, a re-sent command returns its first result instead of running again", async () => {
    const key = { "idempotency-key": `place-${crypto.randomUUID()}` };
    const first = await place("cust-idem", [line("A")], key);
    const again = await place("cust-idem", [line("A")], key);
    expect(again).toMatchObject({ orderId: first.orderId, version: 1, replayed: true, position: first.position });
    const payKey = { "idempotency-key": `pay-${crypto.randomUUID()}` };
    const paid = await ok(await command(first.orderId, "pay", { amount: 1000, currency: "EUR" }, payKey));
    const repaid = await command(first.orderId, "pay", { amount: 1000, currency: "EUR" }, payKey);
    expect(repaid.headers.get("idempotent-replayed")).toBe("true");
    expect(await ok(repaid)).toMatchObject({ version: paid.version, position: paid.position, replayed: true });
    expect(await streamVersion(first.orderId)).toBe(2);
    // Without the key, paying again is refused.
    expect((await expectProblem(await command(first.orderId, "pay", { amount: 1000, currency: "EUR" }), 422)).code).toBe(
      "command_rejected",
    );
  });

  it("concurrent retries with one Idempotency-Key all get the single result", async () => {
    const id = (await place()).orderId;
    const key = { "idempotency-key": `pay-race-${crypto.randomUUID()}` };
    const responses = await Promise.all(Array.from({ length: 5 }, () => command(id, "pay", { amount: 1000, currency: "EUR" }, key)));
    const bodies = await Promise.all(responses.map(ok));
    expect(new Set(bodies.map((b) => `${b.version}@${b.position.sequence}`)).size).toBe(1);
    expect(bodies.filter((b) => !b.replayed)).toHaveLength(1);
    expect(await streamVersion(id)).toBe(2);
  });

  it("concurrent commands on one order take turns in its partition: every command lands once, versions stay contiguous", async () => {
    const id = (await place(undefined, [line("BASE")])).orderId;
    const K = 8;
    const responses = await Promise.all(Array.from({ length: K }, (_, i) => command(id, "add-line", { line: line(`SKU-${i}`) })));
    const bodies = await Promise.all(responses.map(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> })));
    const succeeded = bodies.filter((b) => b.status === 200);
    const conflicted = bodies.filter((b) => b.status === 409);
    expect(succeeded.length + conflicted.length).toBe(K);
    // The partition log serializes them (ADR 0040): none races, none is decided again.
    expect(conflicted).toEqual([]);
    expect(succeeded.reduce((n, b) => n + Number(b.body.conflictRetries), 0)).toBe(0);
    const versions = succeeded.map((b) => Number(b.body.version)).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: succeeded.length }, (_, i) => i + 2));
    const state = fold(orderDecider, await streamEvents(id));
    expect(state.lines).toHaveLength(1 + succeeded.length);
  });

  it("keeps a snapshot every N events; state from snapshot + tail equals state from the whole stream", async () => {
    const every = config.commands.snapshotEvery;
    const id = (await place(undefined, [line("KEEP")])).orderId;
    // Two lines per round trip (add, remove) so the stream passes a few snapshot points.
    for (let i = 0; i < every + 3; i++) {
      await ok(await command(id, i % 2 === 0 ? "add-line" : "remove-line", i % 2 === 0 ? { line: line(`S${i}`) } : { sku: `S${i - 1}` }));
    }
    const partition = partitionFor({ id, subject: id }, 4);
    const stub = env.PARTITION_LOG.getByName(`orders/${partition}`);
    const loaded = await waitFor(
      () => stub.loadStream(id, SNAPSHOT_SCHEMA_VERSION),
      (l) => l.snapshot !== null,
      5_000,
    );
    expect(loaded.snapshot?.version).toBeGreaterThanOrEqual(every);
    const tail = loaded.events.map((text) => {
      const e = JSON.parse(text) as { type: string; data: unknown };
      return { type: e.type, data: e.data } as OrderEvent;
    });
    const fromSnapshot = fold(orderDecider, tail, deserializeState(loaded.snapshot?.state ?? ""));
    const whole = fold(orderDecider, await streamEvents(id));
    expect(fromSnapshot).toEqual(whole);
    expect(loaded.version).toBe(every + 4);
    // The next command decides on the snapshot + tail state and lands at the next version.
    expect((await ok(await command(id, "cancel"))).version).toBe(every + 5);
  });
});

describe("order queries (read models)", () => {
  it("read-your-writes: a query that names the command's position sees its effect at once", async () => {
    const customer = `cust-${crypto.randomUUID()}`;
    const placed = await place(customer, [line("A", 3, 700)]);
    const seen = await view(placed.orderId, placed.after);
    expect(seen.order).toMatchObject({ orderId: placed.orderId, status: "open", total: 2100, version: 1, customerId: customer });
    expect(seen.freshness.waitedMs).toBeGreaterThanOrEqual(0);

    const paid = await ok(await command(placed.orderId, "pay", { amount: 2100, currency: "EUR" }));
    expect((await view(placed.orderId, paid.after)).order).toMatchObject({ status: "paid", paid: 2100, version: 2 });
    const header = await request(`/v1/orders/${placed.orderId}`, { headers: { "eventline-after": paid.after } });
    expect(((await header.json()) as OrderBody).order.version).toBe(2);

    const summary = await request(`/v1/customers/${customer}/summary?after=${paid.after}`);
    expect(((await summary.json()) as { summary: unknown }).summary).toMatchObject({
      customerId: customer,
      orderCount: 1,
      totalSpent: { EUR: 2100 },
    });

    const cancelled = await ok(await command(placed.orderId, "cancel"));
    const refunded = await request(`/v1/customers/${customer}/summary?after=${cancelled.after}`);
    expect(((await refunded.json()) as { summary: unknown }).summary).toMatchObject({ orderCount: 1, totalSpent: { EUR: 0 } });
  });

  it("says how far the view is behind when no position is given, and 503s when a position is not reached in time", async () => {
    const placed = await place();
    const res = await request(`/v1/orders?customer=nobody`);
    const body = (await res.json()) as { orders: unknown[]; freshness: { behindEvents: number; partitions: unknown[] } };
    expect(body.orders).toEqual([]);
    expect(body.freshness.partitions).toHaveLength(4);
    expect(res.headers.get("eventline-read-model-behind")).toBe(String(body.freshness.behindEvents));
    // A position far beyond the head is never reached: bounded wait, then 503 + Retry-After.
    const far = `${placed.position.partition}:${placed.position.sequence + 1_000_000}`;
    const started = Date.now();
    const late = await request(`/v1/orders/${placed.orderId}?after=${far}&wait=300`);
    const problem = await expectProblem(late, 503);
    expect(problem.code).toBe("read_model_behind");
    expect(late.headers.get("retry-after")).toBe("1");
    expect(Date.now() - started).toBeLessThan(5_000);
    for (const bad of ["x", "9:1", "1:0", "1"]) {
      const res400 = await expectProblem(await request(`/v1/orders/${placed.orderId}?after=${bad}`), 400);
      expect(res400.issues?.[0]?.path).toBe("/query/after");
    }
  });

  it("lists orders newest first by status and customer, paging with a cursor", async () => {
    const customer = `cust-${crypto.randomUUID()}`;
    const ids: string[] = [];
    let last = "";
    for (let i = 0; i < 5; i++) {
      const placed = await place(customer, [line("A")]);
      ids.push(placed.orderId);
      last = placed.after;
      if (i % 2 === 0) last = (await ok(await command(placed.orderId, "pay", { amount: 1000, currency: "EUR" }))).after;
    }
    // Every order is visible once each partition has caught up with its last write.
    await waitFor(
      async () => ((await (await request(`/v1/orders?customer=${customer}&limit=100`)).json()) as { orders: unknown[] }).orders.length,
      (n) => n === 5,
      10_000,
    );
    const page1 = (await (await request(`/v1/orders?customer=${customer}&limit=2&after=${last}`)).json()) as {
      orders: { orderId: string; status: string }[];
      next: string | null;
    };
    expect(page1.orders).toHaveLength(2);
    const seen = [...page1.orders];
    let next = page1.next;
    while (next !== null) {
      const page = (await (await request(`/v1/orders?customer=${customer}&limit=2&cursor=${next}`)).json()) as typeof page1;
      seen.push(...page.orders);
      next = page.next;
    }
    expect(seen.map((o) => o.orderId).sort()).toEqual([...ids].sort());
    const paid = (await (await request(`/v1/orders?customer=${customer}&status=paid`)).json()) as typeof page1;
    expect(paid.orders.map((o) => o.orderId).sort()).toEqual([ids[0], ids[2], ids[4]].sort());
    expect((await expectProblem(await request("/v1/orders?status=lost"), 400)).code).toBe("invalid_parameter");
    expect((await expectProblem(await request("/v1/orders?cursor=garbage"), 400)).code).toBe("invalid_parameter");
  });
});
