// End-to-end scenario: events/s from ingest until the `activity` subscription's consumer has
// handled them (a D1 upsert per event: as close to a no-op as a consumer with exactly-once
// effects gets), and the commit → handled latency of each event (its `receivedtime` in the log
// against its `processed_at` in D1). Runs on a fresh stack, before the ingest load, so no backlog
// from other scenarios is in the queue.

import { authFetch } from "./auth.mjs";
import { median } from "./report.mjs";

const SUBSCRIPTION = "activity";

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function status(platform) {
  const res = await authFetch(new URL(`/v1/subscriptions/${SUBSCRIPTION}`, platform));
  return res.json();
}

async function publish(platform, ids, batchSize, concurrency) {
  const batches = [];
  for (let i = 0; i < ids.length; i += batchSize) batches.push(ids.slice(i, i + batchSize));
  const acks = [];
  let next = 0;
  const worker = async () => {
    while (next < batches.length) {
      const batch = batches[next++];
      const body = JSON.stringify(
        batch.map((id, k) => ({ specversion: "1.0", id, source: "/bench/e2e", type: "bench.e2e", subject: `e2e-${k % 64}`, data: { k } })),
      );
      const res = await authFetch(new URL("/v1/topics/events/events", platform), {
        method: "POST",
        headers: { "content-type": "application/cloudevents-batch+json" },
        body,
      });
      if (res.status !== 202) throw new Error(`e2e publish → ${res.status}: ${(await res.text()).slice(0, 300)}`);
      acks.push(...(await res.json()).events);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return acks;
}

/** Commit times of the published events, read back from their partitions. */
async function commitTimes(platform, acks) {
  const byPartition = new Map();
  for (const a of acks) {
    const r = byPartition.get(a.partition) ?? { min: Infinity, max: 0 };
    byPartition.set(a.partition, { min: Math.min(r.min, a.sequence), max: Math.max(r.max, a.sequence) });
  }
  const times = new Map();
  for (const [partition, { min, max }] of byPartition) {
    for (let from = min; from <= max; from += 1000) {
      const res = await authFetch(new URL(`/v1/topics/events/partitions/${partition}/events?from=${from}&limit=1000`, platform));
      for (const e of (await res.json()).events) times.set(e.id, Date.parse(e.receivedtime));
    }
  }
  return times;
}

export async function endToEnd({ platform, queryD1, events, batchSize, concurrency, timeoutSec }) {
  const before = (await status(platform)).counts.handled;
  const ids = Array.from({ length: events }, (_, i) => `e2e-${i}-${Math.random().toString(36).slice(2, 8)}`);
  const started = Date.now();
  const acks = await publish(platform, ids, batchSize, concurrency);
  const published = Date.now();
  let s;
  for (;;) {
    s = await status(platform);
    if ((s.counts.handled - before >= events && s.lag === 0) || Date.now() - started > timeoutSec * 1000) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const done = Date.now();
  const handled = s.counts.handled - before;
  const commits = await commitTimes(platform, acks);
  const rows = await queryD1(`SELECT event_id, processed_at FROM processed_events WHERE subscription = ? AND source = '/bench/e2e'`, [
    SUBSCRIPTION,
  ]);
  const latencies = rows.filter((r) => commits.has(r.event_id)).map((r) => r.processed_at - commits.get(r.event_id));
  return {
    label: `ingest → ${SUBSCRIPTION} consumer handled`,
    events,
    handled,
    deadLettered: s.counts.deadLettered,
    complete: handled >= events && s.lag === 0,
    eventsPerSec: Math.round((handled / (done - started)) * 1000),
    ingestEventsPerSec: Math.round((events / (published - started)) * 1000),
    commitToHandledMs: {
      samples: latencies.length,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      median: median(latencies),
      max: Math.max(...latencies),
    },
    settings: { batchSize, concurrency },
  };
}
