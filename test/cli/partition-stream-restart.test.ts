import { rm } from "node:fs/promises";
import { afterAll, describe, expect, it } from "vitest";
import { sseSplitter } from "../sse";
import { newStackIdentity, type Stack, type StackIdentity, startStack } from "./stack";

/**
 * A live SSE reader of one partition (`GET …/partitions/{p}/stream?live=sse`) while producers post
 * under load, and the whole stack (wrangler and workerd) is killed and started again on the same
 * state: the reader reconnects from the last `streamNextOffset` it saw and ends with every committed
 * event of the partition exactly once, in order, including every event whose POST was acknowledged.
 */

const TOPIC = "events";
/** The partition every event of the test goes to (its one partition key's). */
let partition = -1;
let identity: StackIdentity | undefined;
let stack: Stack | undefined;

afterAll(async () => {
  await stack?.stop();
  if (identity !== undefined) await rm(identity.state, { recursive: true, force: true });
});

interface Seen {
  id: string;
  sequence: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Follows the partition over SSE from `offset`, reconnecting after any failure until `stop()`. */
function follower(url: () => string, token: string) {
  const seen: Seen[] = [];
  let offset = "-1";
  let reconnects = 0;
  let stopped = false;
  let current: AbortController | undefined;
  const done = (async () => {
    while (!stopped) {
      current = new AbortController();
      try {
        const res = await fetch(`${url()}/v1/topics/${TOPIC}/partitions/${partition}/stream?offset=${offset}&live=sse`, {
          headers: { authorization: `Bearer ${token}` },
          signal: current.signal,
        });
        if (res.status !== 200 || res.body === null) throw new Error(`status ${res.status}`);
        const decoder = new TextDecoder();
        const sse = sseSplitter();
        for await (const chunk of res.body) {
          for (const { event, data } of sse.push(decoder.decode(chunk as Uint8Array, { stream: true }))) {
            if (event === "data") {
              for (const e of JSON.parse(data) as { id: string; sequence: string }[]) seen.push({ id: e.id, sequence: Number(e.sequence) });
            } else if (event === "control") {
              offset = (JSON.parse(data) as { streamNextOffset: string }).streamNextOffset;
            }
          }
        }
      } catch {
        // the stack is down or the connection broke: reconnect from the last offset
      }
      if (!stopped) {
        reconnects++;
        await sleep(200);
      }
    }
  })();
  return {
    seen,
    reconnects: () => reconnects,
    async stop() {
      stopped = true;
      current?.abort();
      await done;
    },
  };
}

/** Posts batches of 10 events to the partition until stopped; returns the ids whose POST answered 202. */
function producer(url: () => string, token: string) {
  const acked = new Set<string>();
  let stopped = false;
  let n = 0;
  const done = (async () => {
    while (!stopped) {
      const batch = Array.from({ length: 10 }, () => ({
        specversion: "1.0",
        id: `restart-${n++}`,
        source: "/restart-test",
        type: "test.load",
        partitionkey: "restart-key",
        data: { n },
      }));
      try {
        const res = await fetch(`${url()}/v1/topics/${TOPIC}/events`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/cloudevents-batch+json" },
          body: JSON.stringify(batch),
          signal: AbortSignal.timeout(5000),
        });
        if (res.status === 202) {
          const body = (await res.json()) as { events: { id: string; partition: number }[] };
          for (const e of body.events) if (e.partition === partition) acked.add(e.id);
        }
      } catch {
        // the stack is down: this batch may or may not have committed
      }
      await sleep(20);
    }
  })();
  return {
    acked,
    async stop() {
      stopped = true;
      await done;
    },
  };
}

describe("a live partition reader across a stack restart", () => {
  it("reconnects from its last offset and has every committed event exactly once, in order", async () => {
    identity = await newStackIdentity();
    stack = await startStack(["wrangler.toml"], {}, identity);
    const url = () => `http://127.0.0.1:${identity?.port}`;
    const { token } = identity;
    // Every event carries one partition key, so all of them go to one partition: the probe says which.
    const probe = await fetch(`${url()}/v1/topics/${TOPIC}/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/cloudevents+json" },
      body: JSON.stringify({
        specversion: "1.0",
        id: "restart-probe",
        source: "/restart-test",
        type: "test.load",
        partitionkey: "restart-key",
      }),
    });
    expect(probe.status).toBe(202);
    partition = ((await probe.json()) as { events: { partition: number }[] }).events[0]?.partition ?? -1;

    const reader = follower(url, token);
    const load = producer(url, token);
    await sleep(3000);
    const beforeKill = reader.seen.length;
    await stack.stop(); // SIGTERM, then SIGKILL for whatever of the group outlives it
    stack = await startStack(["wrangler.toml"], {}, identity);
    await sleep(3000);
    await load.stop();

    const head = Number(
      (
        await fetch(`${url()}/v1/topics/${TOPIC}/partitions/${partition}/stream`, {
          method: "HEAD",
          headers: { authorization: `Bearer ${token}` },
        })
      ).headers
        .get("stream-next-offset")
        ?.split("_")[1],
    );
    const deadline = Date.now() + 30_000;
    while ((reader.seen.at(-1)?.sequence ?? 0) < head && Date.now() < deadline) await sleep(100);
    await reader.stop();

    expect(beforeKill).toBeGreaterThan(0);
    expect(reader.reconnects()).toBeGreaterThan(0);
    // Every committed event of the partition, once, in order: sequences 1..head without a gap or repeat.
    expect(reader.seen.map((e) => e.sequence)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
    const ids = new Set(reader.seen.map((e) => e.id));
    expect(ids.size).toBe(head);
    // Every acknowledged event among them (unacknowledged ones may have committed too).
    for (const id of load.acked) expect(ids.has(id), id).toBe(true);
    expect(load.acked.size).toBeGreaterThan(50);
    // The same as a catch-up read of the whole partition.
    const all: string[] = [];
    for (let offset = "-1"; ; ) {
      const res = await fetch(`${url()}/v1/topics/${TOPIC}/partitions/${partition}/stream?offset=${offset}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const page = (await res.json()) as { id: string }[];
      all.push(...page.map((e) => e.id));
      offset = res.headers.get("stream-next-offset") ?? offset;
      if (res.headers.get("stream-up-to-date") === "true") break;
    }
    expect(reader.seen.map((e) => e.id)).toEqual(all);
  }, 240_000);
});
