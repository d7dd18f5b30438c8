import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { PartitionLog } from "../../durable-objects/partition-log";
import { partitionName } from "../../sdk/partition-name";
import { formatOffset } from "../../shared/live-stream/protocol";
import { event, expectAccepted, partitionKeyFor, postBatch, request } from "../helpers";
import { sseSplitter } from "../sse";

/**
 * Topic partitions followed live (`GET /v1/topics/{t}/partitions/{p}/stream`, ADR 0046): offsets
 * are sequences, catch-up pages the log, live readers wait on the partition object's hibernatable
 * sockets and get each commit within milliseconds, resume from their last offset with nothing lost
 * or repeated, and an object with 200 waiting readers holds nothing but those sockets.
 * (Isolated storage per file: this file owns partition 1 of `events`.)
 */

const TOPIC = "events";
const P = 1;
const KEY = partitionKeyFor(P, 4, "live");
const path = `/v1/topics/${TOPIC}/partitions/${P}/stream`;
const sockets = (partition = P) =>
  runInDurableObject(
    env.PARTITION_LOG.getByName(partitionName(TOPIC, partition)),
    (_log: PartitionLog, state) => state.getWebSockets().length,
  );

async function publish(types: string[], partition = P): Promise<number[]> {
  const key = partition === P ? KEY : partitionKeyFor(partition, 4, "live");
  const acks = await expectAccepted(
    await postBatch(
      TOPIC,
      types.map((type) => event({ type, partitionkey: key })),
    ),
  );
  for (const ack of acks) expect(ack.partition).toBe(partition);
  return acks.map((a) => a.sequence);
}

type Stored = { type: string; sequence: string };

/** Reads SSE from `res` until `done(events)`; returns every data event's CloudEvents and the last control. */
async function follow(res: Response, done: (events: Stored[]) => boolean) {
  const reader = res.body?.getReader();
  if (reader === undefined) throw new Error("no body");
  const decoder = new TextDecoder();
  const sse = sseSplitter();
  const events: Stored[] = [];
  let control: Record<string, unknown> = {};
  while (!done(events)) {
    const { done: ended, value } = await reader.read();
    if (ended) break;
    for (const { event, data } of sse.push(decoder.decode(value, { stream: true }))) {
      if (event === "data") events.push(...(JSON.parse(data) as Stored[]));
      if (event === "control") control = JSON.parse(data) as Record<string, unknown>;
    }
  }
  await reader.cancel();
  return { events, control };
}

describe("partition streams", () => {
  it("catch-up: offsets are sequences, -1 starts at the first event, now at the head", async () => {
    const seqs = await publish(["a.one", "a.two", "a.three"]);
    const all = await request(`${path}?offset=-1`);
    expect(all.headers.get("content-type")).toBe("application/json");
    const events = (await all.json()) as Stored[];
    expect(events.map((e) => e.type)).toEqual(["a.one", "a.two", "a.three"]);
    expect(events.map((e) => Number(e.sequence))).toEqual(seqs);
    expect(all.headers.get("stream-next-offset")).toBe(formatOffset(seqs[2] as number));
    expect(all.headers.get("stream-up-to-date")).toBe("true");
    const middle = await request(`${path}?offset=${formatOffset(seqs[0] as number)}`);
    expect(((await middle.json()) as Stored[]).map((e) => e.type)).toEqual(["a.two", "a.three"]);
    const head = await request(path, { method: "HEAD" });
    expect(head.headers.get("stream-next-offset")).toBe(formatOffset(seqs[2] as number));
    expect(await (await request(`${path}?offset=now`)).json()).toEqual([]);
    expect((await request(`${path}?offset=${formatOffset(9_999)}`)).status).toBe(400);
    expect((await request(`/v1/topics/${TOPIC}/partitions/9/stream?offset=-1`)).status).toBe(404);
    expect((await request(`${path}?offset=-1&filter=${encodeURIComponent("{nope")}`)).status).toBe(400);
  });

  it("live SSE: each commit within milliseconds, resumable from the last offset with nothing lost or repeated", async () => {
    const before = await request(`${path}?offset=now`);
    const start = before.headers.get("stream-next-offset");
    const res = await request(`${path}?offset=${start}&live=sse`);
    expect(res.status).toBe(200);
    const first = follow(res, (events) => events.length >= 3);
    await expect.poll(() => sockets(), { timeout: 5000, interval: 10 }).toBeGreaterThan(0);
    const committed = Date.now();
    const seqs = await publish(["b.one", "b.two", "b.three"]);
    const { events, control } = await first;
    expect(Date.now() - committed).toBeLessThan(2000);
    expect(events.map((e) => Number(e.sequence))).toEqual(seqs);
    expect(control.streamNextOffset).toBe(formatOffset(seqs[2] as number));
    // The reader is gone; more commits meanwhile; it resumes from its last offset.
    const later = await publish(["b.four", "b.five"]);
    const resumed = await follow(await request(`${path}?offset=${control.streamNextOffset}&live=sse`), (e) => e.length >= 2);
    expect(resumed.events.map((e) => Number(e.sequence))).toEqual(later);
  });

  it("long-poll and filter: waits for the next matching event only", async () => {
    const start = (await request(`${path}?offset=now`)).headers.get("stream-next-offset");
    const filter = encodeURIComponent(JSON.stringify({ type: ["c.wanted"] }));
    const poll = request(`${path}?offset=${start}&live=long-poll&filter=${filter}`);
    await expect.poll(() => sockets(), { timeout: 5000, interval: 10 }).toBeGreaterThan(0);
    await publish(["c.other"]);
    const [wanted] = await publish(["c.wanted"]);
    const res = await poll;
    expect(res.status).toBe(200);
    expect(((await res.json()) as Stored[]).map((e) => e.type)).toEqual(["c.wanted"]);
    expect(res.headers.get("stream-next-offset")).toBe(formatOffset(wanted as number));
  });

  it("200 live readers of one partition each get every event; waiting, the object holds only their sockets", {
    timeout: 90_000,
  }, async () => {
    // A partition no other test of this file reads, so every socket it holds is one of these readers'
    // (under a loaded full run a socket of an earlier reader was seen to linger: docs/limits.md).
    const Q = 2;
    const own = `/v1/topics/${TOPIC}/partitions/${Q}/stream`;
    const start = (await request(`${own}?offset=now`)).headers.get("stream-next-offset");
    expect(await sockets(Q)).toBe(0);
    const readers = await Promise.all(Array.from({ length: 200 }, () => request(`${own}?offset=${start}&live=sse`)));
    const results = readers.map((res) => follow(res, (events) => events.length >= 2));
    await expect.poll(() => sockets(Q), { timeout: 20_000, interval: 50 }).toBe(200);
    // Nothing else is in flight on the object: a call is answered at once, not queued behind the readers.
    const asked = Date.now();
    await env.PARTITION_LOG.getByName(partitionName(TOPIC, Q)).stats();
    expect(Date.now() - asked).toBeLessThan(1000);
    const seqs = await publish(["d.one", "d.two"], Q);
    for (const { events } of await Promise.all(results)) expect(events.map((e) => Number(e.sequence))).toEqual(seqs);
    await expect.poll(() => sockets(Q), { timeout: 20_000, interval: 50 }).toBe(0);
  });
});
