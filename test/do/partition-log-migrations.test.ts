import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { PartitionLog } from "../../durable-objects/partition-log";
import { PARTITION_LOG_MIGRATIONS } from "../../durable-objects/partition-log/schema";
import { Streams } from "../../durable-objects/partition-log/streams";
import { migrate, type SqlMigration } from "../../durable-objects/sql-migrations";
import type { DeliveryMessage } from "../../sdk/messages";
import { formatSequence } from "../../shared/cloudevents";
import { canonicalJson, canonicalMembers, sha256Hex } from "../../shared/json";
import { createOldestTables, createPreMigrationTables, dropAllTables } from "./legacy-partition-log";

const TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const SUBSCRIPTION = "activity"; // a configured subscription of topic "events"
const ALL = PARTITION_LOG_MIGRATIONS.map((m) => m.id);

const eventOf = (id: string, subject?: string) => ({
  specversion: "1.0",
  id,
  source: "/legacy",
  type: "t",
  traceparent: TRACE,
  ...(subject === undefined ? {} : { subject }),
  data: { id },
});

/** An event's stored text, as the log writes it (server attributes merged in). */
function stored(partition: number, sequence: number, id: string, subject?: string, streamversion?: number): string {
  return canonicalJson({
    ...eventOf(id, subject),
    partition,
    sequence: formatSequence(sequence),
    receivedtime: new Date(1_700_000_000_000 + sequence).toISOString(),
    ...(streamversion === undefined ? {} : { streamversion }),
  });
}

const applied = (stub: DurableObjectStub<PartitionLog>) =>
  runInDurableObject(stub, (_i, state) =>
    state.storage.sql
      .exec<{ id: number }>("SELECT id FROM _migrations ORDER BY id")
      .toArray()
      .map((r) => r.id),
  );

/** Lays down an old object's storage in place of the current one, then evicts it so the next call loads it anew. */
async function asLegacy(stub: DurableObjectStub<PartitionLog>, fill: (sql: SqlStorage) => void): Promise<void> {
  await runInDurableObject(stub, (_i, state) => {
    dropAllTables(state.storage.sql);
    fill(state.storage.sql);
  });
  await evictDurableObject(stub);
}

async function appendInput(partition: number, id: string, subject: string) {
  return {
    topic: "events",
    partition,
    events: [
      {
        source: "/legacy",
        id,
        type: "t",
        subject,
        traceparent: TRACE,
        hash: await sha256Hex(id),
        members: canonicalMembers(eventOf(id, subject)),
        stream: true as const,
      },
    ],
  };
}

describe("the partition log's numbered migrations", () => {
  it("a new object applies every migration once, in order, and records each", async () => {
    const stub = env.PARTITION_LOG.getByName("events/40");
    expect(await applied(stub)).toEqual(ALL);
    await evictDurableObject(stub);
    expect(await applied(stub)).toEqual(ALL);
    expect(ALL).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("an object created before migrations loads with its events, streams, outbox, archive record and counters", async () => {
    const partition = 41;
    const stub = env.PARTITION_LOG.getByName(`events/${partition}`);
    const bodies = [stored(partition, 1, "old-1", "s-1", 1), stored(partition, 2, "old-2", "s-1", 2), stored(partition, 3, "old-3")];
    await asLegacy(stub, (sql) => {
      createPreMigrationTables(sql);
      sql.exec(`INSERT INTO meta (key, value) VALUES ('name', ?), ('head', '3')`, `events/${partition}`);
      bodies.forEach((body, i) => {
        const id = `old-${i + 1}`;
        sql.exec(
          `INSERT INTO events (sequence, source, id, hash, type, subject, traceparent, received_at, body, stream_version)
           VALUES (?, '/legacy', ?, ?, 't', ?, ?, ?, ?, ?)`,
          i + 1,
          id,
          "0".repeat(64),
          i < 2 ? "s-1" : null,
          TRACE,
          1_700_000_000_000 + i + 1,
          body,
          i < 2 ? i + 1 : null,
        );
      });
      sql.exec(`INSERT INTO streams (subject, version, last_sequence, updated_at) VALUES ('s-1', 2, 2, 1700000000002)`);
      sql.exec(`INSERT INTO snapshots (subject, version, schema, state, created_at) VALUES ('s-1', 1, 1, '{"n":1}', 1700000000001)`);
      // One event in transit (sent, due later), one never sent.
      sql.exec(`INSERT INTO outbox (subscription, sequence, prev, sent_at, due_at, sends) VALUES (?, 2, 1, 1, ?, 1)`, SUBSCRIPTION, 9e15);
      sql.exec(`INSERT INTO outbox (subscription, sequence, prev) VALUES (?, 3, 2)`, SUBSCRIPTION);
      sql.exec(`INSERT INTO routing (subscription, last_sequence, redelivered) VALUES (?, 3, 4)`, SUBSCRIPTION);
      sql.exec(
        `INSERT INTO segments (first, last, count, first_received_at, last_received_at, bytes, sha256, chain, key)
         VALUES (1, 1, 1, 1700000000001, 1700000000001, 10, ?, ?, 'topics/events/41/1-1.ndjson.gz')`,
        "a".repeat(64),
        "b".repeat(64),
      );
      sql.exec(`UPDATE append_metrics SET bytes = 123, duplicates = 2 WHERE id = 1`);
    });
    // Loaded by today's code: adopted, nothing lost.
    expect(await applied(stub)).toEqual(ALL);
    const read = await stub.read(2, 10);
    expect(read.events).toEqual(bodies.slice(1));
    expect(read.head).toBe(3);
    const stats = await stub.stats();
    expect(stats).toMatchObject({
      head: 3,
      first: 1,
      outbox: { [SUBSCRIPTION]: 1 },
      inTransit: { [SUBSCRIPTION]: 1 },
      redelivered: { [SUBSCRIPTION]: 4 },
      routed: { [SUBSCRIPTION]: 3 },
      archived: { first: 1, last: 1, segments: 1, bytes: 10 },
    });
    expect(await stub.streamInfo("s-1")).toMatchObject({ version: 2, lastSequence: 2 });
    expect((await stub.loadStream("s-1", 1)).snapshot).toEqual({ version: 1, schema: 1, state: '{"n":1}' });
    expect(await stub.metrics()).toMatchObject({ bytes: 123, duplicates: 2 });
    expect((await stub.manifest())?.segments.map((s) => s.key)).toEqual(["topics/events/41/1-1.ndjson.gz"]);
    // The log goes on where it stopped, and the unsent row goes out with the relay as before.
    const sent: DeliveryMessage[] = [];
    await runInDurableObject(stub, (instance: PartitionLog) => {
      instance.testing.send = async (_binding, bodies) => {
        sent.push(...bodies);
      };
    });
    const result = await stub.append(await appendInput(partition, "new-1", "s-1"));
    expect(result).toMatchObject({ ok: true, head: 4, events: [{ sequence: 4, streamVersion: 3 }] });
    await stub.relay();
    const relayed = sent.flatMap((m) => ("events" in m ? m.events.map((e) => e.sequence) : []));
    expect(relayed).toContain(3);
    expect(relayed).not.toContain(2); // in transit: left to redelivery, as before
  });

  it("an early object (before streams, delivery state and the archive) gets their tables and columns", async () => {
    const partition = 42;
    const stub = env.PARTITION_LOG.getByName(`events/${partition}`);
    const body = stored(partition, 1, "early-1");
    await asLegacy(stub, (sql) => {
      createOldestTables(sql);
      sql.exec(`INSERT INTO meta (key, value) VALUES ('name', ?)`, `events/${partition}`);
      sql.exec(
        `INSERT INTO events (sequence, source, id, hash, type, subject, traceparent, received_at, body)
         VALUES (1, '/legacy', 'early-1', ?, 't', NULL, ?, 1700000000001, ?)`,
        "0".repeat(64),
        TRACE,
        body,
      );
      sql.exec(`INSERT INTO outbox (subscription, sequence, prev) VALUES (?, 1, 0)`, SUBSCRIPTION);
      sql.exec(`INSERT INTO routing (subscription, last_sequence) VALUES (?, 1)`, SUBSCRIPTION);
    });
    expect(await applied(stub)).toEqual(ALL);
    expect((await stub.read(1, 10)).events).toEqual([body]);
    expect(await stub.stats()).toMatchObject({ head: 1, outbox: { [SUBSCRIPTION]: 1 }, inTransit: {}, archived: null });
    const columns = await runInDurableObject(stub, (_i, state) =>
      state.storage.sql
        .exec<{ name: string }>("PRAGMA table_info(outbox)")
        .toArray()
        .map((c) => c.name),
    );
    expect(columns).toEqual(["subscription", "sequence", "prev", "sent_at", "due_at", "sends", "through"]);
    const result = await stub.append(await appendInput(partition, "early-2", "s-2"));
    expect(result).toMatchObject({ ok: true, head: 2, events: [{ sequence: 2, streamVersion: 1 }] });
  });

  it("the runner applies only what is pending, and a failing migration leaves the storage as it was", async () => {
    const stub = env.PARTITION_LOG.getByName("events/43");
    await runInDurableObject(stub, (_i, state) => {
      const { storage } = state;
      const base: SqlMigration[] = [
        { id: 101, name: "t1", up: ({ sql }) => sql.exec("CREATE TABLE m_one (x INTEGER)") },
        { id: 102, name: "t2", up: (db) => db.addColumn("m_one", "y", "INTEGER") },
      ];
      // The object's own migrations are recorded already; only the new ones run.
      const all = [...PARTITION_LOG_MIGRATIONS, ...base];
      expect(migrate(storage, all, () => false)).toEqual({ applied: [101, 102], adopted: false });
      expect(migrate(storage, all, () => false)).toEqual({ applied: [], adopted: false });
      const failing: SqlMigration[] = [
        ...all,
        { id: 103, name: "t3", up: ({ sql }) => sql.exec("CREATE TABLE m_two (x INTEGER)") },
        {
          id: 104,
          name: "broken",
          up: () => {
            throw new Error("broken migration");
          },
        },
      ];
      expect(() => migrate(storage, failing, () => false)).toThrow("broken migration");
      const tables = storage.sql
        .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE name IN ('m_one', 'm_two')")
        .toArray()
        .map((r) => r.name);
      expect(tables).toEqual(["m_one"]);
      expect(storage.sql.exec<{ n: number }>("SELECT MAX(id) AS n FROM _migrations").one().n).toBe(102);
      expect(() =>
        migrate(
          storage,
          [base[1], base[0]].filter((m) => m !== undefined),
          () => false,
        ),
      ).toThrow("increasing");
    });
  });

  it("a capability works on its own over an object's storage and a host of its own (Streams)", async () => {
    const stub = env.PARTITION_LOG.getByName("events/44");
    await runInDurableObject(stub, (_i, state) => {
      const noArchive = { segmentHolding: () => undefined, lines: async () => [] };
      const streams = new Streams({ sql: state.storage.sql, now: () => 42 }, noArchive);
      state.storage.transactionSync(() => streams.record(new Map([["alone", { version: 2, lastSequence: 7 }]]), 41));
      expect(streams.info("alone")).toEqual({ subject: "alone", version: 2, lastSequence: 7, updatedAt: 41 });
      expect(streams.saveSnapshot({ subject: "alone", version: 2, schema: 1, state: "{}" })).toBe(true);
      expect(state.storage.sql.exec<{ created_at: number }>("SELECT created_at FROM snapshots WHERE subject = 'alone'").one()).toEqual({
        created_at: 42,
      });
      expect(() => streams.saveSnapshot({ subject: "alone", version: 3, schema: 1, state: "{}" })).toThrow("is at version 2");
    });
  });
});
