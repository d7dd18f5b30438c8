import { HTTP, CloudEvent as SdkCloudEvent } from "cloudevents";
import { describe, expect, it } from "vitest";
import { encodeBinary } from "../../shared/cloudevents";
import { partitionFor } from "../../shared/partitioner";
import { BASE, BATCH, event, expectAccepted, postBatch, postStructured, readAll, request, type StoredEvent, topicConfig } from "../helpers";

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

describe("ingest: structured mode", () => {
  it("stores the event in the partition its key hashes to and reads it back with server attributes", async () => {
    const ev = event({ subject: "customer-42", time: "2026-11-27T10:00:00Z", data: { b: 2, a: 1 } });
    const [ack] = await expectAccepted(await postStructured("events", ev));
    const partition = partitionFor({ id: String(ev.id), subject: "customer-42" }, topicConfig("events").partitions);
    // Partitioned by its subject, the event is the first of the subject's stream.
    expect(ack).toEqual({ id: ev.id, partition, sequence: 1, duplicate: false, streamVersion: 1 });

    const [stored] = await readAll("events", partition);
    expect(stored).toMatchObject({ ...ev, partition, sequence: "00000000000000000001", streamversion: 1 });
    expect(stored?.receivedtime).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    expect(stored?.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it("keeps the producer's traceparent extension, else the request header's, else generates one", async () => {
    const own = "00-11111111111111111111111111111111-2222222222222222-01";
    const a = event({ partitionkey: "trace", traceparent: own });
    const b = event({ partitionkey: "trace" });
    const c = event({ partitionkey: "trace" });
    await expectAccepted(await postStructured("events", a, { traceparent: TRACEPARENT }));
    await expectAccepted(await postStructured("events", b, { traceparent: TRACEPARENT, tracestate: "vendor=abc" }));
    await expectAccepted(await postStructured("events", c, { traceparent: "garbage" }));
    const stored = await readAll("events", partitionFor({ id: "x", partitionkey: "trace" }, 4));
    const byId = new Map(stored.map((e) => [e.id, e]));
    expect(byId.get(String(a.id))?.traceparent).toBe(own);
    expect(byId.get(String(b.id))).toMatchObject({ traceparent: TRACEPARENT, tracestate: "vendor=abc" });
    expect(byId.get(String(c.id))?.traceparent).not.toBe("garbage");
    expect(byId.get(String(c.id))?.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it("answers with a request id, echoing a sane incoming one", async () => {
    const res = await postStructured("events", event(), { "x-request-id": "req-123" });
    expect(res.headers.get("x-request-id")).toBe("req-123");
    await expectAccepted(res);
  });
});

describe("ingest: binary mode", () => {
  it("maps ce-* headers, percent-decoded, and the body to data", async () => {
    const res = await request("/v1/topics/events/events", {
      method: "POST",
      headers: {
        "ce-specversion": "1.0",
        "ce-id": "bin-1",
        "ce-source": "/binary",
        "ce-type": "test.binary",
        "ce-subject": "caf%C3%A9",
        "ce-tenant": "acme",
        "content-type": "application/json",
      },
      body: JSON.stringify({ total: 12 }),
    });
    const [ack] = await expectAccepted(res);
    const stored = (await readAll("events", ack?.partition ?? -1)).find((e) => e.id === "bin-1");
    expect(stored).toMatchObject({ subject: "café", tenant: "acme", datacontenttype: "application/json", data: { total: 12 } });
  });

  it("stores non-JSON bodies as data_base64", async () => {
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    const { headers, body } = encodeBinary({
      specversion: "1.0",
      id: "bin-2",
      source: "/b",
      type: "blob",
      datacontenttype: "application/octet-stream",
      data_base64: btoa(String.fromCharCode(...bytes)),
    });
    const [ack] = await expectAccepted(await request("/v1/topics/events/events", { method: "POST", headers, body }));
    const stored = (await readAll("events", ack?.partition ?? -1)).find((e) => e.id === "bin-2");
    expect(stored?.data_base64).toBe("AAEC+v8=");
    expect(stored?.data).toBeUndefined();
  });
});

describe("ingest: batch mode", () => {
  it("stores every event, acknowledges in request order, one sequence range per partition", async () => {
    const events = Array.from({ length: 40 }, (_, i) => event({ id: `batch-${i}`, subject: `s-${i % 7}` }));
    const acks = await expectAccepted(await postBatch("events", events));
    expect(acks.map((a) => a.id)).toEqual(events.map((e) => e.id));
    const byPartition = new Map<number, number[]>();
    for (const a of acks) byPartition.set(a.partition, [...(byPartition.get(a.partition) ?? []), a.sequence]);
    for (const [partition, seqs] of byPartition) {
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => (seqs[0] ?? 0) + i));
      const ids = new Set(events.map((e) => e.id));
      const stored = (await readAll("events", partition)).filter((e) => ids.has(e.id));
      expect(stored.map((e) => e.id)).toEqual(acks.filter((a) => a.partition === partition).map((a) => a.id));
      expect(stored.map((e) => Number(e.sequence))).toEqual(seqs);
    }
  });

  it("validates data against the type's schema on a strict topic", async () => {
    const placed = event({
      type: "orders.placed",
      subject: "order-1",
      data: { orderId: "order-1", customerId: "c-1", currency: "EUR", lines: [{ sku: "A", quantity: 2, unitPrice: 500 }] },
    });
    const paid = event({ type: "orders.paid", subject: "order-1", data: { orderId: "order-1", amount: 1000, currency: "EUR" } });
    const acks = await expectAccepted(await postBatch("orders", [placed, paid]));
    expect(acks.map((a) => a.sequence)).toEqual([1, 2]);
    expect(new Set(acks.map((a) => a.partition)).size).toBe(1);
  });
});

describe("reading", () => {
  it("pages through a partition with the cursor and serves the batch format", async () => {
    const events = Array.from({ length: 25 }, (_, i) => event({ id: `page-${i}`, partitionkey: "paging" }));
    const acks = await expectAccepted(await postBatch("events", events));
    const partition = acks[0]?.partition ?? -1;
    const start = acks[0]?.sequence ?? -1;
    const head = start + 24;
    expect(acks.at(-1)?.sequence).toBe(head);
    const first = await request(`/v1/topics/events/partitions/${partition}/events?from=${start}&limit=10`);
    const page = (await first.json()) as { events: StoredEvent[]; next: { from: number; href: string }; hasMore: boolean; head: number };
    expect(page.events.map((e) => e.id)).toEqual(events.slice(0, 10).map((e) => e.id));
    expect(page).toMatchObject({ hasMore: true, head, next: { from: start + 10 } });
    expect(await readAll("events", partition, 7)).toHaveLength(head);

    const tail = await request(`/v1/topics/events/partitions/${partition}/events?from=${head - 1}`, { headers: { accept: BATCH } });
    expect(tail.headers.get("content-type")).toBe(BATCH);
    expect(tail.headers.get("link")).toBe(`</v1/topics/events/partitions/${partition}/events?from=${head + 1}&limit=100>; rel="next"`);
    const batch = (await tail.json()) as StoredEvent[];
    expect(batch.map((e) => Number(e.sequence))).toEqual([head - 1, head]);
    expect(batch.map((e) => e.id)).toEqual(["page-23", "page-24"]);

    const caughtUp = (await (await request(`/v1/topics/events/partitions/${partition}/events?from=${head + 1}`)).json()) as {
      events: unknown[];
      hasMore: boolean;
      next: { from: number };
    };
    expect(caughtUp).toMatchObject({ events: [], hasMore: false, next: { from: head + 1 } });
  });

  it("returns events that the official CloudEvents SDK accepts", async () => {
    const acks = await expectAccepted(
      await postBatch("events", [
        event({ id: "sdk-1", partitionkey: "sdk", datacontenttype: "application/json", data: { x: 1 } }),
        event({ id: "sdk-2", partitionkey: "sdk", data: undefined, data_base64: "aGVsbG8=", datacontenttype: "text/plain" }),
      ]),
    );
    const stored = await readAll("events", acks[0]?.partition ?? -1);
    for (const raw of stored) {
      const sdkEvent = new SdkCloudEvent(raw);
      expect(sdkEvent.validate()).toBe(true);
      expect(sdkEvent.id).toBe(raw.id);
      const message = HTTP.structured(sdkEvent);
      const roundTrip = HTTP.toEvent({ headers: message.headers, body: message.body }) as SdkCloudEvent;
      expect(roundTrip.sequence).toBe(raw.sequence);
    }
  });

  it("lists topics with per-partition head and count", async () => {
    await expectAccepted(await postStructured("events", event({ partitionkey: "list" })));
    const res = await request("/v1/topics/events");
    const topic = (await res.json()) as {
      name: string;
      partitions: number;
      partitionStats: { partition: number; head: number; count: number }[];
    };
    expect(topic.name).toBe("events");
    expect(topic.partitionStats.map((p) => p.partition)).toEqual([0, 1, 2, 3]);
    const p = partitionFor({ id: "", partitionkey: "list" }, 4);
    expect(topic.partitionStats[p]?.head).toBeGreaterThanOrEqual(1);
    expect(topic.partitionStats[p]?.count).toBe(topic.partitionStats[p]?.head);
  });
});

describe("service endpoints", () => {
  it("serves an OpenAPI 3.1 document covering the API (the reference page: docs-reference.test.ts)", async () => {
    const doc = (await (await request("/openapi.json")).json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        "/v1/topics",
        "/v1/topics/{topic}",
        "/v1/topics/{topic}/events",
        "/v1/topics/{topic}/archive",
        "/v1/topics/{topic}/partitions/{partition}/events",
        "/v1/topics/{topic}/partitions/{partition}/events/{sequence}/trace",
        "/v1/topics/{topic}/partitions/{partition}/stream",
        "/v1/topics/{topic}/streams/{subject}",
        "/v1/topics/{topic}/streams/{subject}/events",
        "/v1/topics/{topic}/types/{type}/schemas",
        "/v1/topics/{topic}/types/{type}/schemas/{version}",
        "/v1/topics/{topic}/types/{type}/compatibility",
        "/v1/schemas",
        "/v1/orders",
        "/v1/orders/{id}",
        "/v1/orders/{id}/add-line",
        "/v1/orders/{id}/remove-line",
        "/v1/orders/{id}/pay",
        "/v1/orders/{id}/ship",
        "/v1/orders/{id}/cancel",
        "/v1/customers/{id}/summary",
        "/v1/replays",
        "/v1/replays/{id}",
        "/v1/projections/{name}/rebuild",
        "/v1/subscriptions",
        "/v1/subscriptions/{name}",
        "/v1/subscriptions/{name}/dlq",
        "/v1/subscriptions/{name}/dlq/redrive",
        "/v1/subscriptions/{name}/secret:rotate",
        "/v1/processors",
        "/v1/processors/{name}",
        "/v1/processors/{name}/reset",
        "/v1/processors/{name}/dead-letters",
        "/v1/keys",
        "/v1/keys/{id}",
        "/v1/keys/{id}/rotate",
        "/v1/audit",
        "/v1/subjects/{subject}/keys",
        "/v1/encryption",
        "/v1/encryption/rewrap",
        "/v1/metrics",
        "/v1/metrics/history",
        "/v1/health",
        "/v1/stream/{name}",
        "/asyncapi.json",
      ].sort(),
    );
    expect(Object.keys(doc.paths["/v1/topics/{topic}/events"]?.post as object)).toContain("requestBody");
  });

  it("has a health check", async () => {
    const res = await request("/health");
    expect(await res.json()).toEqual({ status: "ok" });
    expect(BASE).toMatch(/^http/);
  });
});

describe("docs/openapi.json", () => {
  it("is the document the Worker serves (regenerate with npm run openapi)", async () => {
    const committed = (await import("../../docs/openapi.json")).default;
    const served = await (await request("/openapi.json")).json();
    expect(served).toEqual(JSON.parse(JSON.stringify(committed)));
  });
});
