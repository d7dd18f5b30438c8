// Live partition reads (GET …/partitions/{p}/stream, ADR 0046): commit → received latency of an
// SSE reader of one partition while events are posted at a steady rate in batches, and catch-up
// read throughput of the stream route ÷ the partition-read route (…/events) over the same events.
// Commit time is each event's `receivedtime` (set by the platform at ingest, on this machine's
// clock); received time is when the reader parsed the data event carrying it.

import { authFetch } from "./auth.mjs";
import { percentile } from "./handled.mjs";

const TOPIC = "events";
const KEY = "bench-live";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Follows `url` over SSE; `received` maps event id → ms when its data event was parsed. */
function follow(url) {
  const received = new Map();
  const controller = new AbortController();
  const done = (async () => {
    const res = await authFetch(url, { signal: controller.signal });
    if (res.status !== 200 || res.body === null) throw new Error(`live read answered ${res.status}`);
    const decoder = new TextDecoder();
    let text = "";
    try {
      for await (const chunk of res.body) {
        text += decoder.decode(chunk, { stream: true });
        for (let cut = text.indexOf("\n\n"); cut >= 0; cut = text.indexOf("\n\n")) {
          const block = text.slice(0, cut);
          text = text.slice(cut + 2);
          if (!block.startsWith("event: data")) continue;
          const now = Date.now();
          const data = block
            .split("\n")
            .filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5))
            .join("\n");
          for (const e of JSON.parse(data)) received.set(e.id, { at: now, committed: Date.parse(e.receivedtime) });
        }
      }
    } catch (err) {
      if (!controller.signal.aborted) throw err;
    }
  })();
  return { received, stop: () => controller.abort(), done };
}

/** Reads the whole partition page by page through `next(offsetOrFrom)`; events/s. */
async function timedCatchUp(read) {
  const started = performance.now();
  let events = 0;
  for (let cursor = null; ; ) {
    const page = await read(cursor);
    events += page.count;
    cursor = page.next;
    if (page.done) break;
  }
  const seconds = (performance.now() - started) / 1000;
  return { events, seconds: Math.round(seconds * 1000) / 1000, eventsPerSec: seconds > 0 ? Math.round(events / seconds) : null };
}

/**
 * @param {{ platform: string, seconds: number, rate: number, batchSize: number }} options
 */
export async function liveBench({ platform, seconds, rate, batchSize }) {
  const post = (events) =>
    authFetch(new URL(`/v1/topics/${TOPIC}/events`, platform), {
      method: "POST",
      headers: { "content-type": "application/cloudevents-batch+json" },
      body: JSON.stringify(events),
    });
  let n = 0;
  const batch = () =>
    Array.from({ length: batchSize }, () => ({
      specversion: "1.0",
      id: `live-${n++}`,
      source: "/bench/live",
      type: "bench.live",
      partitionkey: KEY,
      data: { n },
    }));
  const probe = await (await post(batch())).json();
  const partition = probe.events[0].partition;
  const base = `/v1/topics/${TOPIC}/partitions/${partition}`;
  const head = await authFetch(new URL(`${base}/stream`, platform), { method: "HEAD" });
  const reader = follow(new URL(`${base}/stream?offset=${head.headers.get("stream-next-offset")}&live=sse`, platform));
  await sleep(300);

  // A steady schedule: batch i leaves at start + i × interval, whatever the previous answers took.
  const interval = (batchSize / rate) * 1000;
  const batches = Math.round((seconds * rate) / batchSize);
  const acked = [];
  const start = performance.now();
  const inFlight = [];
  for (let i = 0; i < batches; i++) {
    const wait = start + i * interval - performance.now();
    if (wait > 0) await sleep(wait);
    inFlight.push(
      post(batch()).then(async (res) => {
        if (res.status === 202) for (const e of (await res.json()).events) acked.push(e.id);
      }),
    );
  }
  await Promise.all(inFlight);
  const postedSec = (performance.now() - start) / 1000;
  const deadline = Date.now() + 30_000;
  while (acked.some((id) => !reader.received.has(id)) && Date.now() < deadline) await sleep(50);
  reader.stop();
  await reader.done;
  const latencies = acked
    .map((id) => reader.received.get(id))
    .filter((r) => r !== undefined)
    .map((r) => Math.max(0, r.at - r.committed))
    .sort((a, b) => a - b);

  const limit = 1000;
  const stream = await timedCatchUp(async (offset) => {
    const res = await authFetch(new URL(`${base}/stream?offset=${offset ?? "-1"}`, platform));
    const events = await res.json();
    return { count: events.length, next: res.headers.get("stream-next-offset"), done: res.headers.get("stream-up-to-date") === "true" };
  });
  const route = await timedCatchUp(async (from) => {
    const page = await (await authFetch(new URL(`${base}/events?from=${from ?? 1}&limit=${limit}`, platform))).json();
    return { count: page.events.length, next: page.next.from, done: !page.hasMore };
  });
  return {
    topic: TOPIC,
    partition,
    rateEventsPerSec: rate,
    batchSize,
    postedEvents: acked.length,
    postedOverSec: Math.round(postedSec * 100) / 100,
    received: latencies.length,
    allReceived: latencies.length === acked.length,
    commitToReceivedMs: {
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: latencies.at(-1) ?? null,
      target: { p99: 50 },
    },
    catchUp: {
      stream,
      eventsRoute: route,
      streamOverEventsRoute: route.eventsPerSec ? Math.round((stream.eventsPerSec / route.eventsPerSec) * 1000) / 1000 : null,
    },
  };
}
