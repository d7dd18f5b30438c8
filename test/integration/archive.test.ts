import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { PartitionLog } from "../../durable-objects/partition-log";
import { gunzip, segmentLines } from "../../durable-objects/partition-log/archive/format";
import { formatSequence } from "../../shared/cloudevents";
import { partitionFor } from "../../shared/partitioner";
import { allAcknowledged, event, expectAccepted, partitionKeyFor, postBatch, readAll, request, waitFor } from "../helpers";

/**
 * The R2 archive: segments of 100 events here (each partition's `segmentEvents` override; the
 * shipped config uses 1,000), each verified before it counts, trimmed only once archived and past retention; reads cross from R2
 * into the log without the reader noticing.
 */

const TOPIC = "events";
const PARTITIONS = 4;

const keyFor = (partition: number, salt: string) => partitionKeyFor(partition, PARTITIONS, salt);

const stub = (partition: number) => env.PARTITION_LOG.getByName(`${TOPIC}/${partition}`);

/** Segments of 100 events in this partition, so a few hundred events make several. */
async function smallSegments(partition: number): Promise<void> {
  await runInDurableObject(stub(partition), (instance: PartitionLog) => {
    instance.testing.segmentEvents = 100;
  });
}

/**
 * Commits `n` events to the partition. Segments stay the topic's size until a test archives (the
 * partition's alarm would otherwise seal 100-event segments while the test waits for consumers).
 */
async function publish(partition: number, n: number, salt: string): Promise<void> {
  const key = keyFor(partition, salt);
  for (let i = 0; i < n; i += 100) {
    const batch = Array.from({ length: Math.min(100, n - i) }, (_, k) => event({ partitionkey: key, data: { i: i + k, salt } }));
    await expectAccepted(await postBatch(TOPIC, batch));
  }
}

/** Raw stored text of a partition, read through the DO (archive + log). */
async function storedText(partition: number): Promise<string[]> {
  const out: string[] = [];
  for (let from = 1; ; ) {
    const page = await stub(partition).read(from, 1000);
    out.push(...page.events);
    if (page.last === null || page.last >= page.head) return out;
    from = page.last + 1;
  }
}

/** Waits until every subscription has acknowledged the partition's events (trimming keeps the others). */
async function outboxDrained(partition: number): Promise<void> {
  expect(await allAcknowledged(TOPIC, partition)).toEqual([]);
}

/** Archives with retention 0 (everything archived may go), as time passing would allow. */
async function archiveAndTrimAll(partition: number) {
  await outboxDrained(partition);
  await runInDurableObject(stub(partition), (instance: PartitionLog) => {
    instance.testing.retentionMs = 0;
    instance.testing.segmentEvents = 100;
  });
  return stub(partition).archiveNow();
}

async function r2Objects(partition: number): Promise<string[]> {
  const listed = await env.ARCHIVE.list({ prefix: `topics/${TOPIC}/${partition}/` });
  return listed.objects.map((o) => o.key).sort();
}

describe("archive", () => {
  it("segments + log tail are byte-identical to the events as ingested, contiguous, and the chain verifies", async () => {
    const p = 0;
    await publish(p, 250, "equal");
    const ingested = await storedText(p);
    expect(ingested).toHaveLength(250);

    const result = await archiveAndTrimAll(p);
    expect(result.sealed.map((s) => [s.first, s.last, s.count])).toEqual([
      [1, 100, 100],
      [101, 200, 100],
      [201, 250, 50],
    ]);
    expect(result.archivedThrough).toBe(250);
    expect(result.trimmed).toBe(250);
    // More events after archiving stay in the log: the tail.
    await publish(p, 30, "equal-tail");
    const stats = await stub(p).stats();
    expect(stats).toMatchObject({ head: 280, first: 251, count: 30, archived: { first: 1, last: 250, segments: 3 } });

    // The raw R2 objects, gunzipped and concatenated, then the log's own rows: the whole log.
    const fromR2: string[] = [];
    for (const segment of result.sealed) {
      const object = await env.ARCHIVE.get(segment.key);
      expect(object).not.toBeNull();
      fromR2.push(...segmentLines(await gunzip(await (object as R2ObjectBody).arrayBuffer())));
    }
    const tail = await runInDurableObject(stub(p), (_i, state) =>
      state.storage.sql.exec<{ body: string }>("SELECT body FROM events ORDER BY sequence").toArray(),
    );
    const whole = [...fromR2, ...tail.map((r) => r.body)];
    expect(whole.slice(0, 250)).toEqual(ingested);
    expect(whole.map((text) => (JSON.parse(text) as { sequence: string }).sequence)).toEqual(
      Array.from({ length: 280 }, (_, i) => formatSequence(i + 1)),
    );
    // Reads cross from R2 into the log unnoticed, exactly as stored.
    expect((await storedText(p)).slice(0, 250)).toEqual(ingested);
    const served = await readAll(TOPIC, p, 64);
    expect(served.map((e) => Number(e.sequence))).toEqual(Array.from({ length: 280 }, (_, i) => i + 1));

    const manifest = (await (await request(`/v1/topics/${TOPIC}/archive?verify=true`)).json()) as {
      partitions: { partition: number; segments: unknown[]; verified: { ok: boolean; problems: unknown[] } }[];
    };
    expect(manifest.partitions[p]).toMatchObject({ segments: expect.any(Array), verified: { ok: true, problems: [] } });
    expect(manifest.partitions[p]?.segments).toHaveLength(3);
    // Commit times are RFC 3339 strings, as every timestamp of the API (the R2 manifest keeps epoch ms).
    const stored = (await stub(p).manifest())?.segments ?? [];
    const rfc3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
    for (const [i, segment] of ((manifest.partitions[p]?.segments ?? []) as Record<string, unknown>[]).entries()) {
      expect(segment.firstReceivedAt).toMatch(rfc3339);
      expect(segment.lastReceivedAt).toMatch(rfc3339);
      expect(Date.parse(segment.firstReceivedAt as string)).toBe(stored[i]?.firstReceivedAt);
      expect(Date.parse(segment.lastReceivedAt as string)).toBe(stored[i]?.lastReceivedAt);
      expect(segment).toMatchObject({ first: stored[i]?.first, last: stored[i]?.last, sha256: stored[i]?.sha256 });
    }
    const topic = (await (await request(`/v1/topics/${TOPIC}`)).json()) as { partitionStats: { archived: unknown; first: number }[] };
    expect(topic.partitionStats[p]).toMatchObject({ first: 251, archived: { first: 1, last: 250, segments: 3 } });
  });

  it("detects an altered or a deleted segment", async () => {
    const p = 1;
    await publish(p, 200, "tamper");
    await archiveAndTrimAll(p);
    const [first, second] = (await stub(p).manifest())?.segments ?? [];
    expect(second).toBeDefined();
    expect((await stub(p).verify()).ok).toBe(true);

    // Altered: same key, different (valid gzip) content.
    const original = await (await env.ARCHIVE.get(first?.key ?? ""))?.arrayBuffer();
    const text = await gunzip(original as ArrayBuffer);
    const tampered = new Blob([new TextEncoder().encode(text.replace('"salt":"tamper"', '"salt":"TAMPER"'))])
      .stream()
      .pipeThrough(new CompressionStream("gzip"));
    await env.ARCHIVE.put(first?.key ?? "", await new Response(tampered).arrayBuffer());
    const altered = await stub(p).verify();
    expect(altered.ok).toBe(false);
    expect(altered.problems).toEqual([expect.objectContaining({ key: first?.key, problem: expect.stringContaining("differs") })]);

    // Deleted.
    await env.ARCHIVE.put(first?.key ?? "", original as ArrayBuffer);
    expect((await stub(p).verify()).ok).toBe(true);
    await env.ARCHIVE.delete(second?.key ?? "");
    const deleted = await stub(p).verify();
    expect(deleted.problems).toEqual([{ key: second?.key, problem: "missing from R2" }]);
  });

  it("a crash between the R2 put and the commit loses nothing and writes no duplicate segment", async () => {
    const p = 2;
    await publish(p, 150, "crash");
    await outboxDrained(p);
    await runInDurableObject(stub(p), (instance: PartitionLog) => {
      instance.testing.segmentEvents = 100;
      instance.testing.afterSegmentPut = async () => {
        throw new Error("simulated crash after the put");
      };
    });
    const crash = async () => {
      await stub(p).archiveNow();
    };
    await expect(crash()).rejects.toThrow(/simulated crash/);
    // The object is in R2 but the partition did not record it: nothing is archived, nothing trimmed.
    expect(await r2Objects(p)).toEqual([`topics/${TOPIC}/${p}/${formatSequence(1)}-${formatSequence(100)}.ndjson.gz`]);
    expect((await stub(p).stats()).archived).toBeNull();
    expect(await storedText(p)).toHaveLength(150);

    // Restart, and more events arrive before the next pass: the pending range is sealed as it was.
    await evictDurableObject(stub(p));
    await publish(p, 80, "crash-more");
    await archiveAndTrimAll(p);
    // Read from the manifest: the partition's alarm may have sealed the pending range while the
    // test waited for the subscriptions to acknowledge, before archiveNow ran.
    expect((await stub(p).manifest())?.segments.map((s) => [s.first, s.last])).toEqual([
      [1, 100],
      [101, 200],
      [201, 230],
    ]);
    const keys = await r2Objects(p);
    expect(keys.filter((k) => k.endsWith(".ndjson.gz"))).toHaveLength(3);
    expect((await stub(p).verify()).ok).toBe(true);
    const all = await storedText(p);
    expect(all.map((t) => (JSON.parse(t) as { sequence: string }).sequence)).toEqual(
      Array.from({ length: 230 }, (_, i) => formatSequence(i + 1)),
    );
  });

  it("never trims unarchived events or events still in the outbox, and never reuses a sequence after trimming", async () => {
    const p = 3;
    await publish(p, 40, "keep");
    await outboxDrained(p);
    // Retention 0, but nothing archived yet: a forced pass archives first, so trimming waits for
    // what a subscription has not acknowledged (here an outbox row the test puts back).
    // As if `activity` had not acknowledged 35 (its message lost): the row is back, the checkpoint before it.
    await env.DB.prepare("UPDATE checkpoints SET sequence = 34 WHERE subscription = 'activity' AND topic = ? AND partition = ?")
      .bind(TOPIC, p)
      .run();
    await runInDurableObject(stub(p), (instance: PartitionLog, state) => {
      instance.testing.retentionMs = 0;
      state.storage.sql.exec(
        "INSERT OR IGNORE INTO outbox (subscription, sequence, prev, sent_at, due_at, sends) VALUES ('activity', 35, 34, ?, ?, 1)",
        Date.now(),
        Date.now() + 3_600_000,
      );
    });
    const kept = await stub(p).archiveNow();
    expect(kept.archivedThrough).toBe(40);
    expect(kept.trimmed).toBe(34);
    expect((await stub(p).stats()).first).toBe(35);
    // Acknowledged once the subscription's checkpoint covers it.
    await env.DB.prepare("UPDATE checkpoints SET sequence = 40 WHERE subscription = 'activity' AND topic = ? AND partition = ?")
      .bind(TOPIC, p)
      .run();
    expect((await stub(p).archiveNow()).trimmed).toBe(6);
    expect((await stub(p).stats()).count).toBe(0);
    // Everything trimmed, then restarted: the next event still gets 41.
    await evictDurableObject(stub(p));
    const [ack] = await expectAccepted(await postBatch(TOPIC, [event({ partitionkey: keyFor(p, "keep") })]));
    expect(ack?.sequence).toBe(41);
    expect((await storedText(p)).length).toBe(41);
  });

  it("retention ages segments as a whole, by their newest event, and trims them oldest first", async () => {
    // `orders` has no subscriptions (no outbox) and no other test here writes to it.
    const orders = env.PARTITION_LOG.getByName("orders/0");
    const key = partitionKeyFor(0, 4, "retention");
    await runInDurableObject(orders, (instance: PartitionLog) => {
      instance.testing.segmentEvents = 100;
    });
    const paid = (i: number) => event({ type: "orders.paid", partitionkey: key, data: { orderId: `o-${i}`, amount: i, currency: "EUR" } });
    await expectAccepted(
      await postBatch(
        "orders",
        Array.from({ length: 100 }, (_, i) => paid(i)),
      ),
    );
    await expectAccepted(
      await postBatch(
        "orders",
        Array.from({ length: 100 }, (_, i) => paid(100 + i)),
      ),
    );
    await expectAccepted(
      await postBatch(
        "orders",
        Array.from({ length: 50 }, (_, i) => paid(200 + i)),
      ),
    );
    const hour = 3_600_000;
    const archived = await runInDurableObject(orders, (instance: PartitionLog) => {
      instance.testing.retentionMs = hour;
      return instance.archiveNow();
    });
    expect(archived.sealed.map((s) => [s.first, s.last])).toEqual([
      [1, 100],
      [101, 200],
      [201, 250],
    ]);
    expect(archived.trimmed).toBe(0);
    // Segment 1 wholly two hours old; segment 2's first events as old, its newest ten minutes old.
    const setAges = (ages: [first: number, newestAgeMs: number][]) =>
      runInDurableObject(orders, (instance: PartitionLog, state) => {
        for (const [first, age] of ages) {
          state.storage.sql.exec(
            "UPDATE segments SET first_received_at = ?, last_received_at = ? WHERE first = ?",
            Date.now() - 2 * hour,
            Date.now() - age,
            first,
          );
          state.storage.sql.exec(
            "UPDATE events SET received_at = ? WHERE sequence BETWEEN ? AND ?",
            Date.now() - 2 * hour,
            first,
            first + 49,
          );
        }
        return instance.archiveNow();
      });
    expect(
      (
        await setAges([
          [1, 2 * hour],
          [101, 10 * 60_000],
        ])
      ).trimmed,
    ).toBe(100);
    expect(await orders.stats()).toMatchObject({ head: 250, first: 101, count: 150 });
    // The next trim is due when segment 2's newest event passes retention (in ~50 min), not when
    // its first event did (an hour ago): the alarm must not fire again and again meanwhile.
    await runInDurableObject(orders, (_i, state) => state.storage.setAlarm(Date.now()));
    expect(await runDurableObjectAlarm(orders)).toBe(true);
    const next = await runInDurableObject(orders, (_i, state) => state.storage.getAlarm());
    expect((next ?? 0) - Date.now()).toBeGreaterThan(45 * 60_000);
    expect(await orders.stats()).toMatchObject({ first: 101 });
    // Once segment 2's newest event is past retention too, the whole segment goes; 3 stays.
    expect((await setAges([[101, hour + 60_000]])).trimmed).toBe(100);
    expect(await orders.stats()).toMatchObject({ head: 250, first: 201, count: 50, archived: { first: 1, last: 250, segments: 3 } });
    // Every event still reads, from R2 and then the log.
    const all: string[] = [];
    for (let from = 1; ; ) {
      const page = await orders.read(from, 1000);
      all.push(...page.events);
      if (page.last === null || page.last >= page.head) break;
      from = page.last + 1;
    }
    expect(all.map((t) => (JSON.parse(t) as { sequence: string }).sequence)).toEqual(
      Array.from({ length: 250 }, (_, i) => formatSequence(i + 1)),
    );
  });

  it("the alarm seals a segment when it is full, or when its oldest event is old enough", async () => {
    const p = partitionFor({ id: "x", partitionkey: "alarm-full" }, PARTITIONS);
    await smallSegments(p);
    const before = (await stub(p).stats()).archived?.last ?? 0;
    const head = (await stub(p).stats()).head;
    // Fill whatever is unarchived up to a full segment.
    const n = 100 - ((head - before) % 100);
    const batch = Array.from({ length: n }, () => event({ partitionkey: "alarm-full" }));
    await expectAccepted(await postBatch(TOPIC, batch));
    await outboxDrained(p);
    await runDurableObjectAlarm(stub(p));
    const full = await waitFor(
      () => stub(p).stats(),
      (s) => (s.archived?.last ?? 0) >= head + n,
      10_000,
    );
    expect(full.archived?.last).toBe(head + n);

    // A few events, then time passes (their commit times moved back past segmentSeconds).
    await expectAccepted(await postBatch(TOPIC, [event({ partitionkey: "alarm-full" }), event({ partitionkey: "alarm-full" })]));
    await runDurableObjectAlarm(stub(p));
    expect((await stub(p).stats()).archived?.last).toBe(head + n);
    await runInDurableObject(stub(p), (_i, state) => state.storage.sql.exec("UPDATE events SET received_at = received_at - 60000"));
    await runDurableObjectAlarm(stub(p));
    expect((await stub(p).stats()).archived?.last).toBe(head + n + 2);
  });

  it("a stream whose early events were trimmed still reads whole, from the archive and then the log", async () => {
    const subject = `archived-stream-${crypto.randomUUID()}`;
    const p = partitionFor({ id: subject, subject }, PARTITIONS);
    const append = (n: number) =>
      request(`/v1/topics/${TOPIC}/streams/${subject}/events`, {
        method: "POST",
        headers: { "content-type": "application/cloudevents-batch+json" },
        body: JSON.stringify(Array.from({ length: n }, (_, i) => event({ data: { i } }))),
      });
    expect((await append(5)).status).toBe(201);
    await archiveAndTrimAll(p);
    expect((await append(3)).status).toBe(201);
    const page = await stub(p).readStream(subject, 1, 100);
    expect(page.events.map((e) => (JSON.parse(e) as { streamversion: number }).streamversion)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect((await stub(p).readStream(subject, 4, 2)).last).toBe(5);
    const loaded = await stub(p).loadStream(subject, 1);
    expect(loaded).toMatchObject({ snapshot: null, version: 8, complete: true });
    expect(loaded.events).toHaveLength(8);
  });

  it("rewrites a manifest that fell behind its segments (a stop between the commit and the manifest write)", async () => {
    const p = 3;
    await publish(p, 100, "manifest");
    await archiveAndTrimAll(p);
    expect((await stub(p).verify()).ok).toBe(true);
    // As if the object stopped after committing its last segment but before writing manifest.json.
    const key = `topics/${TOPIC}/${p}/manifest.json`;
    const before = JSON.parse(await ((await env.ARCHIVE.get(key)) as R2ObjectBody).text()) as { segments: unknown[] };
    await env.ARCHIVE.put(key, JSON.stringify({ ...before, segments: before.segments.slice(0, -1) }));
    await runInDurableObject(stub(p), (_i, state) => state.storage.sql.exec("DELETE FROM meta WHERE key = 'manifest_chain'"));
    expect((await stub(p).verify()).ok).toBe(false);
    // The next pass has nothing to seal, but brings the manifest up to date.
    expect((await stub(p).archiveNow()).sealed).toEqual([]);
    expect(await stub(p).verify()).toMatchObject({ ok: true, problems: [] });
  });

  it("after a failed pass, archiving backs off: new appends and relay alarms do not retry it early", async () => {
    const p = 0;
    let attempts = 0;
    const failing = (instance: PartitionLog) => {
      instance.testing.segmentEvents = 1;
      instance.testing.afterSegmentPut = async () => {
        attempts++;
        throw new Error("R2 is down");
      };
    };
    await runInDurableObject(stub(p), failing);
    await publish(p, 3, "backoff");
    await runInDurableObject(stub(p), failing);
    await outboxDrained(p);
    await runDurableObjectAlarm(stub(p));
    expect(attempts).toBe(1);
    // More events, each making a segment due at once, and the relay's alarm runs: no new attempt.
    await expectAccepted(await postBatch(TOPIC, [event({ partitionkey: keyFor(p, "backoff") })]));
    await outboxDrained(p);
    await runDurableObjectAlarm(stub(p));
    expect(attempts).toBe(1);
    const next = await runInDurableObject(stub(p), (_i, state) => state.storage.getAlarm());
    expect((next ?? 0) - Date.now()).toBeGreaterThan(20_000);
  });
});

describe("POST /v1/topics/{topic}/archive", () => {
  it("answers the sealed segments with their commit times as RFC 3339 strings", async () => {
    // R2 works again for partition 0 (the test before made its puts fail); small segments everywhere.
    for (const p of [0, 1, 2, 3]) {
      await outboxDrained(p);
      await runInDurableObject(stub(p), (instance: PartitionLog) => {
        instance.testing.afterSegmentPut = async () => {};
        instance.testing.retentionMs = 0;
        instance.testing.segmentEvents = 50;
      });
    }
    await publish(3, 60, "rfc3339");
    await outboxDrained(3);
    const res = await request(`/v1/topics/${TOPIC}/archive`, { method: "POST" });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { partitions: { sealed: Record<string, unknown>[] }[] };
    const sealed = body.partitions.flatMap((x) => x.sealed);
    expect(sealed.length).toBeGreaterThan(0);
    for (const segment of sealed) {
      for (const field of ["firstReceivedAt", "lastReceivedAt"]) {
        expect(segment[field]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        expect(Date.now() - Date.parse(segment[field] as string)).toBeLessThan(600_000);
      }
      expect(Date.parse(segment.firstReceivedAt as string)).toBeLessThanOrEqual(Date.parse(segment.lastReceivedAt as string));
    }
  });
});
