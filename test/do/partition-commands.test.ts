import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { AppendInput, CommandOutcome } from "../../durable-objects/partition-log";
import { hostedAggregates } from "../../durable-objects/partition-log/commands/registry";
import config from "../../eventline.config";
import type { AnyAggregate } from "../../shared/aggregate";
import { findTopic } from "../../shared/config";
import { streamPartition } from "../../shared/partitioner";
import { configSource } from "../../workers/platform/ingest/data-schema";
import { prepareEvents, toAppendEvent } from "../../workers/platform/ingest/parse";
import { COUNTER_LIMIT, type CounterCommand, counterAggregate } from "./counter-aggregate";

/**
 * The partition log's generic command host (ADR 0040), driven over RPC with an aggregate that is
 * not the orders demo: decide/append in one call, outside writers landing between a command's
 * decision and its append, the in-memory state against tampered storage and eviction.
 */

hostedAggregates.register([counterAggregate]);

const TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const ORIGIN = "https://eventline.example";
const topic = counterAggregate.topic;
const partitionOf = (subject: string) => streamPartition(subject, topic.partitions);
const stubOf = (subject: string) => env.PARTITION_LOG.getByName(`${topic.name}/${partitionOf(subject)}`);
const newSubject = () => `counter-${crypto.randomUUID()}`;
const orderStub = (subject: string) => env.PARTITION_LOG.getByName(`orders/${streamPartition(subject, 4)}`);

function run(
  subject: string,
  command: CounterCommand | Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Promise<CommandOutcome> {
  return stubOf(subject).command({
    aggregate: counterAggregate.name,
    topic: topic.name,
    partition: partitionOf(subject),
    subject,
    command,
    correlationId: "test",
    traceparent: TRACE,
    origin: ORIGIN,
    ...extra,
  });
}

async function okVersion(outcome: Promise<CommandOutcome>): Promise<number> {
  const result = await outcome;
  if (!result.ok) throw new Error(`command refused: ${JSON.stringify(result)}`);
  return result.version;
}

/** An outside writer's stream append of `counter.added` (what POST .../streams/{subject}/events sends). */
async function outside(subject: string, by: number, expected: number): Promise<AppendInput> {
  const prepared = await prepareEvents(
    [{ specversion: "1.0", id: crypto.randomUUID(), source: "/outside", type: "counter.added", subject, data: { by } }],
    topic,
    config,
    { traceparent: TRACE, batch: true, schemas: configSource(topic, ORIGIN) },
  );
  return {
    topic: topic.name,
    partition: partitionOf(subject),
    events: prepared.map((p) => toAppendEvent({ ...p, subject, stream: true })),
    expect: { subject, version: expected },
  };
}

async function streamVersions(subject: string): Promise<{ version: number; source: string }[]> {
  return runInDurableObject(stubOf(subject), (_log, state) =>
    state.storage.sql
      .exec<{ stream_version: number; source: string }>(
        `SELECT stream_version, source FROM events WHERE subject = ? ORDER BY stream_version`,
        subject,
      )
      .toArray()
      .map((r) => ({ version: r.stream_version, source: r.source })),
  );
}

function resetSeam(subject: string): Promise<void> {
  return runInDurableObject(stubOf(subject), (log) => {
    log.testing.beforeCommandAppend = async () => {};
  });
}

describe("a partition log hosts any registered aggregate", () => {
  it("decides and appends in one call: versions follow, domain refusals come back as outcomes, empty decisions record nothing", async () => {
    const subject = newSubject();
    expect(await okVersion(run(subject, { kind: "add", by: 40 }))).toBe(1);
    expect(await okVersion(run(subject, { kind: "add", by: 50 }))).toBe(2);
    expect(await run(subject, { kind: "add", by: 20 })).toEqual({
      ok: false,
      code: "rejected",
      reason: "rejected",
      detail: `the counter is at 90; adding 20 passes ${COUNTER_LIMIT}`,
    });
    expect(await run(subject, { kind: "touch" })).toMatchObject({ ok: true, version: 2, events: [], sequence: 0 });
    const stored = await streamVersions(subject);
    expect(stored).toEqual([
      { version: 1, source: `/counters/${subject}` },
      { version: 2, source: `/counters/${subject}` },
    ]);
  });

  it("answers a re-sent command with an idempotency key with its first result", async () => {
    const subject = newSubject();
    const first = await run(subject, { kind: "add", by: 5 }, { idempotencyKey: "k-1" });
    const again = await run(subject, { kind: "add", by: 5 }, { idempotencyKey: "k-1" });
    expect(first).toMatchObject({ ok: true, version: 1, replayed: false, events: [{ id: "k-1.0", streamVersion: 1 }] });
    expect(again).toMatchObject({ ok: true, version: 1, replayed: true, events: [{ id: "k-1.0", streamVersion: 1 }] });
    expect(await streamVersions(subject)).toHaveLength(1);
  });

  it("parses what crosses the RPC boundary: unknown aggregates, malformed commands and the wrong partition are refused", async () => {
    const subject = newSubject();
    // Called as the other RPC tests call a refusing object (a wrapping async function).
    const refused = async (command: Record<string, unknown>, extra: Record<string, unknown> = {}) => run(subject, command, extra);
    await expect(refused({ kind: "add", by: 1 }, { aggregate: "no-such" })).rejects.toThrow(/no aggregate is registered/);
    await expect(refused({ kind: "add", by: -1 })).rejects.toThrow(/invalid test-counter command/);
    await expect(refused({ kind: "add", by: 1 }, { partition: (partitionOf(subject) + 1) % topic.partitions })).rejects.toThrow(
      /is not in events\//,
    );
    expect(await streamVersions(subject)).toEqual([]);
  });
});

describe("what the append or the topic refuses comes back as an outcome, nothing stored", () => {
  it("an overloaded partition answers overloaded with Retry-After", async () => {
    const subject = newSubject();
    await runInDurableObject(stubOf(subject), (log) => {
      log.testing.maxInFlight = 0;
    });
    expect(await run(subject, { kind: "add", by: 1 })).toMatchObject({
      ok: false,
      code: "overloaded",
      retryAfter: config.partitionLog.retryAfterSeconds,
    });
    await runInDurableObject(stubOf(subject), (log) => {
      log.testing.maxInFlight = config.partitionLog.maxInFlightAppends;
    });
    expect(await streamVersions(subject)).toEqual([]);
  });

  it("decided events the topic's schemas refuse are a schema_violation problem", async () => {
    const orders = findTopic(config, "orders");
    if (orders === undefined) throw new Error("the orders topic is missing");
    // An aggregate whose decider emits what the orders topic does not accept.
    hostedAggregates.register([
      {
        ...counterAggregate,
        name: "test-bad-orders",
        topic: orders,
        decider: { ...counterAggregate.decider, decide: () => [{ type: "orders.paid", data: { by: 1 } }] },
      } as unknown as AnyAggregate,
    ]);
    const subject = `bad-${crypto.randomUUID()}`;
    const outcome = await orderStub(subject).command({
      aggregate: "test-bad-orders",
      topic: "orders",
      partition: streamPartition(subject, orders.partitions),
      subject,
      command: { kind: "add", by: 1 },
      correlationId: "test",
      traceparent: TRACE,
      origin: ORIGIN,
    });
    expect(outcome).toMatchObject({ ok: false, code: "problem", problem: { code: "schema_violation" } });
    const stored = await runInDurableObject(
      orderStub(subject),
      (_log, state) => state.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM events WHERE subject = ?`, subject).one().n,
    );
    expect(stored).toBe(0);
  });
});

describe("outside writers between a command's decision and its append", () => {
  it("an outside append that commits first makes the command decide again, on the state that includes it", async () => {
    const subject = newSubject();
    await okVersion(run(subject, { kind: "add", by: 10 }));
    const stub = stubOf(subject);
    const appendAt = await outside(subject, 50, 1);
    await runInDurableObject(stub, (log) => {
      let once = true;
      log.testing.beforeCommandAppend = async () => {
        if (!once) return;
        once = false;
        expect(await log.append(appendAt)).toMatchObject({ ok: true });
      };
    });
    // 10 + 50 + 60 passes the limit: refused because the retry saw the outside event.
    expect(await run(subject, { kind: "add", by: 60 })).toMatchObject({ ok: false, code: "rejected" });
    expect(await run(subject, { kind: "add", by: 30 })).toMatchObject({ ok: true, version: 3, conflictRetries: 0 });
    expect((await streamVersions(subject)).map((e) => e.source)).toEqual([`/counters/${subject}`, "/outside", `/counters/${subject}`]);
    await resetSeam(subject);
  });

  it("a command that loses to the outside writer keeps its place in line: it lands right after, counted as one retry", async () => {
    const subject = newSubject();
    await okVersion(run(subject, { kind: "add", by: 1 }));
    const appendAt = await outside(subject, 2, 1);
    await runInDurableObject(stubOf(subject), (log) => {
      let once = true;
      log.testing.beforeCommandAppend = async () => {
        if (once) {
          once = false;
          await log.append(appendAt);
        }
      };
    });
    expect(await run(subject, { kind: "add", by: 3 })).toMatchObject({ ok: true, version: 3, conflictRetries: 1 });
    await resetSeam(subject);
  });

  it("when outside writers win every attempt, the command answers version_conflict after conflictRetries + 1 attempts and stores nothing", async () => {
    const subject = newSubject();
    await okVersion(run(subject, { kind: "add", by: 1 }));
    await runInDurableObject(stubOf(subject), (log) => {
      let version = 1;
      log.testing.beforeCommandAppend = async (s) => {
        const appended = await log.append(await outside(s, 1, version));
        if (appended.ok) version++;
      };
    });
    const attempts = config.commands.conflictRetries + 1;
    expect(await run(subject, { kind: "add", by: 1 })).toMatchObject({
      ok: false,
      code: "version_conflict",
      attempts,
      expectedVersion: attempts,
      currentVersion: attempts + 1,
    });
    const stored = await streamVersions(subject);
    expect(stored.filter((e) => e.source === `/counters/${subject}`)).toHaveLength(1);
    expect(stored.map((e) => e.version)).toEqual(Array.from({ length: attempts + 1 }, (_, i) => i + 1));
    await resetSeam(subject);
  });
});

describe("the in-memory aggregate", () => {
  it("is what later commands decide on while the object lives, and is rebuilt from snapshot and stream after eviction", async () => {
    const subject = newSubject();
    // Past the snapshot point (every 10 events) with a tail of two.
    for (let i = 0; i < 12; i++) await okVersion(run(subject, { kind: "add", by: 1 }));
    const stub = stubOf(subject);
    const snapshot = await runInDurableObject(stub, (_log, state) =>
      state.storage.sql.exec<{ version: number; state: string }>(`SELECT version, state FROM snapshots WHERE subject = ?`, subject).one(),
    );
    expect(snapshot).toEqual({ version: 10, state: "10" });
    // Make the stored tail unreadable: a command served from memory never reads it.
    await runInDurableObject(stub, (_log, state) => {
      state.storage.sql.exec(
        `UPDATE events SET body = replace(body, '"by":1', '"by":"x"') WHERE subject = ? AND stream_version > 10`,
        subject,
      );
    });
    expect(await okVersion(run(subject, { kind: "add", by: 1 }))).toBe(13);
    await evictDurableObject(stub);
    // Cold: snapshot (10) + the tampered tail must be read now, and refuses to fold.
    const cold = async () => run(subject, { kind: "add", by: 1 });
    await expect(cold()).rejects.toThrow(/not a counter event/);
    await runInDurableObject(stub, (_log, state) => {
      state.storage.sql.exec(`UPDATE events SET body = replace(body, '"by":"x"', '"by":1') WHERE subject = ?`, subject);
      // And an unreadable snapshot is ignored: the whole stream is folded instead.
      state.storage.sql.exec(`UPDATE snapshots SET state = 'garbage' WHERE subject = ?`, subject);
    });
    await evictDurableObject(stub);
    expect(await run(subject, { kind: "add", by: COUNTER_LIMIT - 13 + 1 })).toMatchObject({ ok: false, code: "rejected" });
    expect(await okVersion(run(subject, { kind: "add", by: COUNTER_LIMIT - 13 }))).toBe(14);
  });
});
