import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, type MockInstance, vi } from "vitest";
import type { PartitionLog } from "../../durable-objects/partition-log";
import { testBindings } from "../bindings";
import {
  allAcknowledged,
  event,
  expectAccepted,
  expectProblem,
  partitionKeyFor,
  postStructured,
  request,
  requestAs,
  topicConfig,
  waitFor,
} from "../helpers";
import { createTestKey } from "../security/helpers";

/**
 * An event's trace (GET /v1/topics/{topic}/partitions/{p}/events/{sequence}/trace) end to end:
 * webhook subscriptions against the loopback receiver (test/global-setup.ts), whose answer each
 * test sets, and the trace context carried from ingest to the receiver's headers and the consumer's
 * log lines. The SDK's delivery-attempt records behind the trace: test/consumer/attempt-records.test.ts.
 */

const TOPIC = "events";
const PARTITIONS = topicConfig(TOPIC).partitions;
const HEADER_TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const OWN_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

interface Attempt {
  attempt: number;
  at: string;
  sentAt: string | null;
  outcome: string;
  error?: string;
}
interface SubscriptionTrace {
  subscription: string;
  kind: string;
  matched: boolean;
  routed: boolean;
  attempts: Attempt[];
  state: string;
  handledAt?: string;
  deadLetteredAt?: string;
}
interface Trace {
  topic: string;
  partition: number;
  sequence: number;
  id: string;
  source: string;
  type: string;
  traceparent: string;
  tracestate?: string;
  correlationid?: string;
  causationid?: string;
  committed: { at: string };
  subscriptions: SubscriptionTrace[];
}

interface Received {
  headers: Record<string, string>;
  body: string;
  at: number;
}
const received = async (name: string) => (await (await fetch(`${testBindings.WEBHOOK_SINK}/control/${name}`)).json()) as Received[];
const setStatus = (name: string, status: number, times?: number) =>
  fetch(`${testBindings.WEBHOOK_SINK}/control/${name}?status=${status}${times === undefined ? "" : `&times=${times}`}`, { method: "POST" });

const tracePath = (partition: number, sequence: number | string, topic = TOPIC) =>
  `/v1/topics/${topic}/partitions/${partition}/events/${sequence}/trace`;

async function getTrace(partition: number, sequence: number): Promise<Trace> {
  const res = await request(tracePath(partition, sequence));
  const text = await res.text();
  expect(res.status, text).toBe(200);
  expect(res.headers.get("content-type")).toContain("application/json");
  return JSON.parse(text) as Trace;
}

const of = (trace: Trace, name: string): SubscriptionTrace => {
  const sub = trace.subscriptions.find((s) => s.subscription === name);
  expect(sub, `subscription ${name} in the trace`).toBeDefined();
  return sub as SubscriptionTrace;
};

/** Waits until `name`'s part of the trace is in `state`; returns the last trace read. */
const traceUntil = (partition: number, sequence: number, name: string, state: string, timeoutMs = 30_000) =>
  waitFor(
    () => getTrace(partition, sequence),
    (t) => t.subscriptions.find((s) => s.subscription === name)?.state === state,
    timeoutMs,
  );

async function createHook(name: string, filter: Record<string, unknown>, maxRetries: number): Promise<void> {
  const res = await request("/v1/subscriptions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, topic: TOPIC, filter, maxRetries, webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/${name}` } }),
  });
  expect(res.status, await res.text()).toBe(201);
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** Two ISO times of the same settle (clocks read a moment apart). */
const closeTo = (a: string | undefined, b: string | undefined) =>
  a !== undefined && b !== undefined && ISO.test(a) && Math.abs(Date.parse(a) - Date.parse(b)) < 1000;

/** Captures console.log, silenced, for the rest of the test. */
let logSpy: MockInstance<typeof console.log> | undefined;
function captureLogs(): () => Record<string, unknown>[] {
  logSpy = vi.spyOn(console, "log").mockImplementation(() => undefined);
  const spy = logSpy;
  return () =>
    spy.mock.calls.flatMap((args) => {
      try {
        return [JSON.parse(String(args[0])) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}
afterEach(() => {
  logSpy?.mockRestore();
  logSpy = undefined;
});

/** The consumer SDK's log lines about one message of one subscription. */
const consumerLines = (lines: Record<string, unknown>[], subscription: string, partition: number, sequence: number) =>
  lines.filter(
    (l) =>
      l.component === "consumer" &&
      l.subscription === subscription &&
      l.topic === TOPIC &&
      l.partition === partition &&
      l.sequence === sequence,
  );

describe("event trace", () => {
  it("lists every attempt through a failing-then-recovering webhook, and the ingest trace context reaches the receiver and the logs", async () => {
    const lines = captureLogs();
    const name = "trace-flaky";
    await setStatus(name, 500, 2); // the receiver fails twice, then recovers
    await createHook(name, { type: ["trace.flaky"] }, 5);
    const key = partitionKeyFor(0, PARTITIONS, "trace-flaky");
    const [ack] = await expectAccepted(
      await postStructured(TOPIC, event({ type: "trace.flaky", partitionkey: key }), {
        traceparent: HEADER_TRACE,
        tracestate: "vendor=trace",
      }),
    );
    const { partition, sequence } = ack as { partition: number; sequence: number };

    const trace = await traceUntil(partition, sequence, name, "handled");

    expect(trace).toMatchObject({
      topic: TOPIC,
      partition,
      sequence,
      id: ack?.id,
      source: "/tests",
      type: "trace.flaky",
      traceparent: HEADER_TRACE,
      tracestate: "vendor=trace",
    });
    expect(trace.committed.at).toMatch(ISO);
    const hook = of(trace, name);
    expect(hook).toMatchObject({ kind: "webhook", matched: true, routed: true, state: "handled" });
    expect(hook.attempts.map((a) => a.outcome)).toEqual(["failed", "failed", "handled"]);
    expect(hook.attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
    const times = hook.attempts.map((a) => Date.parse(a.at));
    expect(times[0]).toBeGreaterThanOrEqual(Date.parse(trace.committed.at));
    for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThan(times[i - 1] ?? Number.POSITIVE_INFINITY);
    for (const a of hook.attempts) {
      expect(a.at).toMatch(ISO);
      expect(a.sentAt).toMatch(ISO);
      expect(Date.parse(a.sentAt ?? "")).toBeLessThanOrEqual(Date.parse(a.at));
    }
    expect(hook.attempts[0]?.error).toContain("answered 500");
    expect(hook.attempts[2]).not.toHaveProperty("error");
    // From the idempotency record, written in the same batch as the attempt's record.
    expect(closeTo(hook.handledAt, hook.attempts[2]?.at)).toBe(true);
    expect(hook).not.toHaveProperty("deadLetteredAt");

    // The configured subscriptions of the topic: `activity` takes everything, `greetings` filters on its type prefix.
    expect(of(trace, "activity")).toMatchObject({ kind: "worker", matched: true, routed: true });
    expect(of(trace, "greetings")).toEqual({
      subscription: "greetings",
      kind: "worker",
      matched: false,
      routed: false,
      attempts: [],
      state: "filtered_out",
    });

    // Every request the receiver saw carried the trace context given at ingest (header form).
    const all = await received(name);
    expect(all).toHaveLength(3);
    for (const r of all) {
      expect(r.headers.traceparent).toBe(HEADER_TRACE);
      expect(r.headers.tracestate).toBe("vendor=trace");
    }

    // So did every consumer log line about the message: two "handler failed; retrying" at least.
    const logged = consumerLines(lines(), name, partition, sequence);
    expect(logged.filter((l) => l.msg === "handler failed; retrying")).toHaveLength(2);
    for (const line of logged) expect(line.traceparent).toBe(HEADER_TRACE);
  });

  it("a subscription whose filter does not match shows filtered_out with no attempts; the event's own traceparent is kept", async () => {
    const name = "trace-filtered";
    await createHook(name, { type: ["trace.never"] }, 2);
    const [ack] = await expectAccepted(
      await postStructured(TOPIC, event({ type: "trace.other", traceparent: OWN_TRACE, correlationid: "conv-1", causationid: "cause-1" }), {
        traceparent: HEADER_TRACE,
      }),
    );
    const { partition, sequence } = ack as { partition: number; sequence: number };
    // Once the activity projection handled it, the event has gone everywhere it will go.
    const trace = await traceUntil(partition, sequence, "activity", "handled");
    expect(trace).toMatchObject({ traceparent: OWN_TRACE, correlationid: "conv-1", causationid: "cause-1" });
    expect(trace).not.toHaveProperty("tracestate");
    expect(of(trace, name)).toEqual({
      subscription: name,
      kind: "webhook",
      matched: false,
      routed: false,
      attempts: [],
      state: "filtered_out",
    });
    expect(of(trace, "activity")).toMatchObject({ matched: true, routed: true, attempts: [{ attempt: 1, outcome: "handled" }] });
    expect(await received(name)).toHaveLength(0);
  });

  it("a dead-lettered event shows maxRetries + 1 attempts; the traceparent extension reaches the receiver and the logs", async () => {
    const lines = captureLogs();
    const name = "trace-dead";
    const maxRetries = 1;
    await setStatus(name, 503);
    await createHook(name, { type: ["trace.dead"] }, maxRetries);
    const key = partitionKeyFor(1, PARTITIONS, "trace-dead");
    const [ack] = await expectAccepted(
      await postStructured(TOPIC, event({ type: "trace.dead", partitionkey: key, traceparent: OWN_TRACE, tracestate: "own=1" })),
    );
    const { partition, sequence } = ack as { partition: number; sequence: number };
    const trace = await traceUntil(partition, sequence, name, "dead_lettered");

    expect(trace).toMatchObject({ traceparent: OWN_TRACE, tracestate: "own=1" });
    const hook = of(trace, name);
    expect(hook).toMatchObject({ matched: true, routed: true, state: "dead_lettered" });
    expect(hook.attempts).toHaveLength(maxRetries + 1);
    expect(hook.attempts.map((a) => a.outcome)).toEqual(["failed", "dead_lettered"]);
    for (const a of hook.attempts) expect(a.error).toContain("answered 503");
    expect(Date.parse(hook.attempts[1]?.at ?? "")).toBeGreaterThan(Date.parse(hook.attempts[0]?.at ?? ""));
    expect(closeTo(hook.deadLetteredAt, hook.attempts[1]?.at)).toBe(true);
    expect(hook).not.toHaveProperty("handledAt");

    const all = await received(name);
    expect(all).toHaveLength(maxRetries + 1);
    for (const r of all) expect(r.headers).toMatchObject({ traceparent: OWN_TRACE, tracestate: "own=1" });
    const logged = consumerLines(lines(), name, partition, sequence);
    expect(logged.map((l) => l.msg)).toEqual(expect.arrayContaining(["handler failed; retrying", "retries exhausted: dead-lettered"]));
    for (const line of logged) expect(line.traceparent).toBe(OWN_TRACE);
  });

  it("traces an archived event (trimmed from the partition log) just the same", async () => {
    const key = partitionKeyFor(3, PARTITIONS, "trace-archived");
    const [ack] = await expectAccepted(await postStructured(TOPIC, event({ type: "trace.archived", partitionkey: key })));
    const { partition, sequence } = ack as { partition: number; sequence: number };
    const before = await traceUntil(partition, sequence, "activity", "handled");
    const stub = env.PARTITION_LOG.getByName(`${TOPIC}/${partition}`);
    // Trimming keeps what a subscription has not acknowledged.
    expect(await allAcknowledged(TOPIC, partition)).toEqual([]);
    await runInDurableObject(stub, (instance: PartitionLog) => {
      instance.testing.retentionMs = 0;
    });
    await stub.archiveNow();
    const stats = await stub.stats();
    expect(stats.archived?.last).toBeGreaterThanOrEqual(sequence);
    expect(stats.first === 0 || stats.first > sequence).toBe(true);

    expect(await getTrace(partition, sequence)).toEqual(before);
  });

  it("404 for an unknown topic, partition or sequence; 400 for a malformed one; 405 for another method", async () => {
    const [ack] = await expectAccepted(await postStructured(TOPIC, event({ type: "trace.404" })));
    const { partition, sequence } = ack as { partition: number; sequence: number };
    expect((await getTrace(partition, sequence)).sequence).toBe(sequence);
    // The stored, zero-padded form of the sequence names the same event.
    expect((await request(tracePath(partition, String(sequence).padStart(20, "0")))).status).toBe(200);

    expect((await expectProblem(await request(tracePath(partition, sequence + 1000)), 404)).code).toBe("not_found");
    expect((await expectProblem(await request(tracePath(partition, 0)), 404)).code).toBe("not_found");
    expect((await expectProblem(await request(tracePath(PARTITIONS, 1)), 404)).code).toBe("not_found");
    expect((await expectProblem(await request(tracePath(0, 1, "nope")), 404)).code).toBe("topic_not_found");
    expect((await expectProblem(await request(tracePath(partition, "x1")), 400)).issues?.[0]?.path).toBe("/param/sequence");
    const wrong = await expectProblem(await request(tracePath(partition, sequence), { method: "POST" }), 405);
    expect(wrong.code).toBe("method_not_allowed");
  });

  it("a stored webhook filter failing its schema fails the trace (500), as it fails every reader of the subscription registry, whenever it was created", async () => {
    const lines = captureLogs();
    const [ack] = await expectAccepted(await postStructured(TOPIC, event({ type: "trace.corrupt" })));
    const { partition, sequence } = ack as { partition: number; sequence: number };
    expect((await getTrace(partition, sequence)).sequence).toBe(sequence);
    const insert = env.DB.prepare(
      `INSERT INTO webhook_subscriptions (name, topic, filter, ordering, max_retries, url, secret, created_at)
       VALUES (?, ?, ?, 'none', 1, 'https://example.test/hook', 'whsec_x', ?)`,
    );
    try {
      // Existed at commit, and created after it (a late subscription is otherwise left out when it recorded nothing).
      for (const [name, createdAt] of [
        ["trace-corrupt-early", 0],
        ["trace-corrupt-late", Date.now() + 60_000],
      ] as const) {
        await insert.bind(name, TOPIC, JSON.stringify({ type: [] }), createdAt).run();
        expect((await expectProblem(await request(tracePath(partition, sequence)), 500)).code).toBe("internal");
        await env.DB.prepare("DELETE FROM webhook_subscriptions WHERE name = ?").bind(name).run();
      }
    } finally {
      await env.DB.prepare("DELETE FROM webhook_subscriptions WHERE name LIKE 'trace-corrupt-%'").run();
    }
    expect(lines().some((l) => l.msg === "unhandled error")).toBe(true);
    expect((await getTrace(partition, sequence)).sequence).toBe(sequence);
  });

  it("needs consume on the topic: 403 for a key without it, 200 with it", async () => {
    const [ack] = await expectAccepted(await postStructured(TOPIC, event({ type: "trace.authz" })));
    const { partition, sequence } = ack as { partition: number; sequence: number };
    const producer = await createTestKey("trace-producer", ["produce:events"]);
    const otherTopic = await createTestKey("trace-orders-reader", ["consume:orders"]);
    const reader = await createTestKey("trace-reader", ["consume:events"]);

    for (const key of [producer, otherTopic]) {
      const problem = await expectProblem(await requestAs(key.key, tracePath(partition, sequence)), 403);
      expect(problem.code).toBe("forbidden");
      expect(problem.detail).toContain("consume on topic events");
    }
    const res = await requestAs(reader.key, tracePath(partition, sequence));
    expect(res.status).toBe(200);
    expect(((await res.json()) as Trace).id).toBe(ack?.id);
  });
});
