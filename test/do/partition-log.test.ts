import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { AppendInput, PartitionLog } from "../../durable-objects/partition-log";
import { formatSequence } from "../../shared/cloudevents";
import { canonicalJson, canonicalMembers, sha256Hex } from "../../shared/json";
import { partitionFor } from "../../shared/partitioner";
import { allHeads, event, expectAccepted, expectProblem, postBatch, postStructured, readAll } from "../helpers";

const TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

function eventOf(id: string, variant = ""): Record<string, unknown> {
  return { specversion: "1.0", id, source: "/do", type: "t", traceparent: TRACE, data: { id, variant } };
}

async function input(topic: string, partition: number, ids: string[], variant = ""): Promise<AppendInput> {
  return {
    topic,
    partition,
    events: await Promise.all(
      ids.map(async (id) => ({
        source: "/do",
        id,
        type: "t",
        traceparent: TRACE,
        hash: await sha256Hex(`${id}${variant}`),
        members: canonicalMembers(eventOf(id, variant)),
      })),
    ),
  };
}

function rows(stub: DurableObjectStub<PartitionLog>) {
  return runInDurableObject(stub, (_instance, state) =>
    state.storage.sql
      .exec<{ sequence: number; id: string; body: string }>("SELECT sequence, id, body FROM events ORDER BY sequence")
      .toArray(),
  );
}

describe("PartitionLog", () => {
  it("assigns contiguous sequences from 1 and stores canonical JSON with server attributes", async () => {
    const stub = env.PARTITION_LOG.getByName("events/0");
    const result = await stub.append(await input("events", 0, ["a", "b", "c"]));
    expect(result).toMatchObject({ ok: true, head: 3, events: [{ sequence: 1 }, { sequence: 2 }, { sequence: 3 }] });
    const stored = await rows(stub);
    expect(stored.map((r) => r.sequence)).toEqual([1, 2, 3]);
    const first = JSON.parse(stored[0]?.body ?? "{}") as Record<string, unknown>;
    expect(first).toMatchObject({ id: "a", partition: 0, sequence: formatSequence(1) });
    // Canonical: keys in sorted order at the top level.
    expect(Object.keys(first)).toEqual([...Object.keys(first)].sort());
    // Byte for byte the canonical JSON of the event with the server attributes.
    expect(stored[0]?.body).toBe(
      canonicalJson({ ...eventOf("a"), partition: 0, sequence: formatSequence(1), receivedtime: first.receivedtime }),
    );
  });

  it("never changes the stored bytes of a committed event", async () => {
    const stub = env.PARTITION_LOG.getByName("events/1");
    await stub.append(await input("events", 1, ["x", "y"]));
    const before = await rows(stub);
    await stub.append(await input("events", 1, ["x", "y", "z"]));
    await stub.append(await input("events", 1, ["y"]));
    await evictDurableObject(stub);
    await stub.append(await input("events", 1, ["w"]));
    const after = await rows(stub);
    expect(after.slice(0, 2)).toEqual(before);
    expect(after.map((r) => r.id)).toEqual(["x", "y", "z", "w"]);
  });

  it("rolls the whole call back when one event conflicts (atomic per call)", async () => {
    const stub = env.PARTITION_LOG.getByName("events/2");
    await stub.append(await input("events", 2, ["keep"]));
    const result = await stub.append({
      ...(await input("events", 2, ["n1"])),
      events: [
        ...(await input("events", 2, ["n1"])).events,
        ...(await input("events", 2, ["keep"], "changed")).events,
        ...(await input("events", 2, ["n2"])).events,
      ],
    });
    expect(result).toMatchObject({ ok: false, code: "duplicate_conflict", id: "keep", sequence: 1 });
    expect((await rows(stub)).map((r) => r.id)).toEqual(["keep"]);
    expect(await stub.stats()).toMatchObject({ head: 1, count: 1, first: 1 });
    const next = await stub.append(await input("events", 2, ["n1"]));
    expect(next).toMatchObject({ ok: true, events: [{ id: "n1", sequence: 2, duplicate: false }] });
  });

  it("keeps its head across eviction, so sequences are never reused", async () => {
    const stub = env.PARTITION_LOG.getByName("events/3");
    await stub.append(await input("events", 3, ["p", "q"]));
    await evictDurableObject(stub);
    expect(await stub.stats()).toMatchObject({ head: 2, count: 2, first: 1 });
    const again = await stub.append(await input("events", 3, ["q", "r"]));
    expect(again).toMatchObject({
      ok: true,
      head: 3,
      events: [
        { id: "q", sequence: 2, duplicate: true },
        { id: "r", sequence: 3, duplicate: false },
      ],
    });
  });

  it("derives its head at startup from the log and meta 'head', whichever is higher", async () => {
    const stub = env.PARTITION_LOG.getByName("events/4");
    await stub.append(await input("events", 4, ["h1", "h2"]));
    // Commits don't write meta 'head': rows are only appended, so MAX(sequence) is the head.
    const meta = await runInDurableObject(stub, (_instance, state) =>
      state.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'head'").toArray(),
    );
    expect(meta).toEqual([]);
    await evictDurableObject(stub);
    expect(await stub.stats()).toMatchObject({ head: 2 });
    // A head persisted above the newest row (as trimming must do before deleting) is kept.
    await runInDurableObject(stub, (_instance, state) => {
      state.storage.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('head', '10')");
    });
    await evictDurableObject(stub);
    const next = await stub.append(await input("events", 4, ["h3"]));
    expect(next).toMatchObject({ ok: true, head: 11, events: [{ id: "h3", sequence: 11, duplicate: false }] });
  });

  it("chains outbox rows per subscription across calls, rollbacks and eviction", async () => {
    const stub = env.PARTITION_LOG.getByName("events/5");
    const holdOutbox = () =>
      runInDurableObject(stub, (instance: PartitionLog) => {
        instance.testing.send = async () => {
          throw new Error("queue held by the test");
        };
      });
    const outboxRows = () =>
      runInDurableObject(stub, (_instance, state) => ({
        outbox: state.storage.sql
          .exec<{ sequence: number; prev: number }>("SELECT sequence, prev FROM outbox WHERE subscription = 'activity' ORDER BY sequence")
          .toArray(),
        routed: state.storage.sql.exec<{ last_sequence: number }>("SELECT last_sequence FROM routing WHERE subscription = 'activity'").one()
          .last_sequence,
      }));
    await holdOutbox();
    await stub.append(await input("events", 5, ["c1", "c2"]));
    await stub.append(await input("events", 5, ["c2", "c3"]));
    // A call that rolls back must not move the chain.
    const conflict = await stub.append({
      ...(await input("events", 5, [])),
      events: [...(await input("events", 5, ["c4"])).events, ...(await input("events", 5, ["c1"], "changed")).events],
    });
    expect(conflict).toMatchObject({ ok: false, code: "duplicate_conflict" });
    await stub.append(await input("events", 5, ["c5"]));
    expect(await outboxRows()).toEqual({
      outbox: [
        { sequence: 1, prev: 0 },
        { sequence: 2, prev: 1 },
        { sequence: 3, prev: 2 },
        { sequence: 4, prev: 3 },
      ],
      routed: 4,
    });
    await evictDurableObject(stub);
    await holdOutbox();
    await stub.append(await input("events", 5, ["c6", "c7"]));
    expect(await outboxRows()).toMatchObject({
      outbox: expect.arrayContaining([
        { sequence: 5, prev: 4 },
        { sequence: 6, prev: 5 },
      ]),
      routed: 6,
    });
  });

  it("evaluates filters against the event as stored (server attributes included); unfiltered routes take every event", async () => {
    const stub = env.PARTITION_LOG.getByName("events/6");
    await runInDurableObject(stub, (instance: PartitionLog) => {
      instance.testing.send = async () => {
        throw new Error("queue held by the test");
      };
    });
    await stub.setRuntimeRoutes([
      { name: "hook-all", filter: null },
      { name: "hook-even", filter: { sequence: [{ suffix: "0" }, { suffix: "2" }, { suffix: "4" }, { suffix: "6" }, { suffix: "8" }] } },
      { name: "hook-data", filter: { data: { variant: ["b"] }, partition: [6] } },
    ]);
    await stub.append(await input("events", 6, ["f1", "f2", "f3"]));
    await stub.append(await input("events", 6, ["f4"], "b"));
    const rows = await runInDurableObject(stub, (_instance, state) =>
      state.storage.sql
        .exec<{ subscription: string; sequence: number }>(
          "SELECT subscription, sequence FROM outbox WHERE subscription LIKE 'hook-%' ORDER BY subscription, sequence",
        )
        .toArray(),
    );
    expect(rows).toEqual([
      { subscription: "hook-all", sequence: 1 },
      { subscription: "hook-all", sequence: 2 },
      { subscription: "hook-all", sequence: 3 },
      { subscription: "hook-all", sequence: 4 },
      { subscription: "hook-data", sequence: 4 },
      { subscription: "hook-even", sequence: 2 },
      { subscription: "hook-even", sequence: 4 },
    ]);
  });

  it("refuses to serve a second (topic, partition)", async () => {
    const stub = env.PARTITION_LOG.getByName("orders/0");
    await stub.append(await input("orders", 0, ["o1"]));
    const wrong = async () => stub.append(await input("events", 0, ["o2"]));
    await expect(wrong()).rejects.toThrow(/orders\/0 was called as events\/0/);
  });

  it("validates its RPC arguments", async () => {
    const stub = env.PARTITION_LOG.getByName("orders/1");
    const bad = async () => stub.append({ topic: "orders", partition: 1, events: [] });
    await expect(bad()).rejects.toThrow();
    const badRead = async () => stub.read(0, 10);
    await expect(badRead()).rejects.toThrow();
    const good = await input("orders", 1, ["v1"]);
    const mismatched = async () => stub.append({ ...good, events: good.events.map((e) => ({ ...e, id: "other" })) });
    await expect(mismatched()).rejects.toThrow(/must match/);
    const untraced = async () =>
      // Deliberately ill-typed: the object must refuse what the type system would have.
      stub.append({
        ...good,
        events: good.events.map((e) => ({ ...e, traceparent: undefined, members: e.members.filter(([k]) => k !== "traceparent") })),
      } as unknown as AppendInput);
    await expect(untraced()).rejects.toThrow(/traceparent/);
    // The stored members must agree with the columns and be in canonical (sorted) order.
    const otherBody = async () =>
      stub.append({
        ...good,
        events: good.events.map((e) => ({ ...e, members: e.members.map(([k, v]) => [k, k === "id" ? '"other"' : v] as [string, string]) })),
      });
    await expect(otherBody()).rejects.toThrow(/must match/);
    const unsorted = async () => stub.append({ ...good, events: good.events.map((e) => ({ ...e, members: [...e.members].reverse() })) });
    await expect(unsorted()).rejects.toThrow(/sorted/);
    const noMembers = async () => stub.append({ ...good, events: good.events.map((e) => ({ ...e, members: [] })) });
    await expect(noMembers()).rejects.toThrow();
    expect(await stub.stats()).toMatchObject({ head: 0, count: 0, first: 0 });
  });
});

describe("backpressure", () => {
  it("answers 503 with Retry-After beyond the in-flight bound, and stores exactly the acknowledged events", async () => {
    const key = "backpressure";
    const [probe] = await expectAccepted(await postStructured("events", event({ partitionkey: key })));
    const partition = probe?.partition ?? -1;
    const stub = env.PARTITION_LOG.getByName(`events/${partition}`);
    await runInDurableObject(stub, (instance: PartitionLog) => {
      instance.testing.maxInFlight = 2;
    });
    const headBefore = (await allHeads()).events?.[partition] ?? -1;
    const sent = Array.from({ length: 120 }, (_, i) => event({ id: `bp-${i}`, partitionkey: key }));
    const responses = await Promise.all(sent.map((e) => postStructured("events", e)));
    const accepted: string[] = [];
    let rejected = 0;
    for (const [i, res] of responses.entries()) {
      if (res.status === 202) {
        accepted.push(String(sent[i]?.id));
        await res.body?.cancel();
      } else {
        const problem = await expectProblem(res, 503);
        expect(problem.code).toBe("overloaded");
        expect(res.headers.get("retry-after")).toBe("1");
        rejected++;
      }
    }
    expect(rejected).toBeGreaterThan(0);
    expect(accepted.length).toBeGreaterThan(0);
    const stored = (await readAll("events", partition)).map((e) => e.id).filter((id) => id.startsWith("bp-"));
    expect(stored.sort()).toEqual(accepted.sort());
    const heads = await allHeads();
    expect(heads.events?.[partition]).toBe(headBefore + accepted.length);
  });
});

describe("a partition that fails unexpectedly", () => {
  it("gives 500 with per-event outcomes (unknown there, stored elsewhere), and the retry after recovery is safe", async () => {
    const broken = partitionForKey("fault-a");
    const healthy = partitionForKey("fault-b");
    expect(broken).not.toBe(healthy);
    const stub = env.PARTITION_LOG.getByName(`events/${broken}`);
    await expectAccepted(await postStructured("events", event({ partitionkey: "fault-a" })));
    // Fault injection: make the object believe it serves another partition, so append throws.
    await runInDurableObject(stub, (instance: PartitionLog) => {
      (instance as unknown as { opened: { log: { name: string } } }).opened.log.name = "events/99";
    });
    const batch = [event({ id: "f-1", partitionkey: "fault-a" }), event({ id: "f-2", partitionkey: "fault-b" })];
    const problem = await expectProblem(await postBatch("events", batch), 500);
    expect(problem.code).toBe("internal");
    expect(problem.events).toEqual([
      expect.objectContaining({ id: "f-1", partition: broken, status: "unknown" }),
      expect.objectContaining({ id: "f-2", partition: healthy, status: "stored" }),
    ]);
    await evictDurableObject(stub);
    const acks = await expectAccepted(await postBatch("events", batch));
    expect(acks.map((a) => a.duplicate)).toEqual([false, true]);
  });
});

function partitionForKey(key: string): number {
  return partitionFor({ id: "", partitionkey: key }, 4);
}
