import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { event, expectAccepted, postBatch, postStructured } from "../helpers";

afterEach(() => vi.restoreAllMocks());

function capture() {
  const spy = vi.spyOn(console, "log").mockImplementation(() => undefined);
  return () => spy.mock.calls.map((args) => JSON.parse(String(args[0])) as Record<string, unknown>);
}

describe("structured logs", () => {
  it("one JSON line per request and per partition append, correlated by request id and traceparent", async () => {
    const lines = capture();
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const events = [event({ partitionkey: "log-a" }), event({ partitionkey: "log-a" }), event({ partitionkey: "log-b" })];
    const acks = await expectAccepted(await postBatch("events", events, { traceparent, "x-request-id": "log-test-1" }));
    const logged = lines();
    const request = logged.filter((l) => l.msg === "request");
    const appends = logged.filter((l) => l.msg === "append");
    expect(request).toHaveLength(1);
    expect(request[0]).toMatchObject({ level: "info", requestId: "log-test-1", method: "POST", status: 202, traceparent });
    expect(typeof request[0]?.durationMs).toBe("number");
    expect(appends).toHaveLength(new Set(acks.map((a) => a.partition)).size);
    for (const line of appends) {
      const mine = acks.filter((a) => a.partition === line.partition);
      expect(line).toMatchObject({
        level: "info",
        requestId: "log-test-1",
        topic: "events",
        traceparent,
        count: mine.length,
        firstSequence: Math.min(...mine.map((a) => a.sequence)),
        lastSequence: Math.max(...mine.map((a) => a.sequence)),
      });
      expect(typeof line.durationMs).toBe("number");
      expect(typeof line.time).toBe("string");
    }
  });

  it("without a traceparent header, the request's one trace is its events' and its log lines'", async () => {
    const lines = capture();
    const events = [event({ partitionkey: "log-c" }), event({ partitionkey: "log-d" })];
    const acks = await expectAccepted(await postBatch("events", events, { "x-request-id": "log-test-3" }));
    const logged = lines();
    const traceparent = logged.find((l) => l.msg === "request")?.traceparent;
    expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    for (const line of logged.filter((l) => l.msg === "append")) expect(line.traceparent).toBe(traceparent);
    for (const ack of acks) {
      const page = await env.PARTITION_LOG.getByName(`events/${ack.partition}`).read(ack.sequence, 1);
      expect((JSON.parse(page.events[0] ?? "{}") as { traceparent?: string }).traceparent).toBe(traceparent);
    }
  });

  it("a rejected request still logs its status", async () => {
    const lines = capture();
    const res = await postStructured("events", "{", { "x-request-id": "log-test-2" });
    expect(res.status).toBe(400);
    expect(lines().find((l) => l.msg === "request")).toMatchObject({ requestId: "log-test-2", status: 400 });
  });
});
