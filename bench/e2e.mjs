// End-to-end scenario: events published as fast as ingest takes them (batches of 100, several
// requests in flight) to `events`, until the `activity` subscription's consumer has handled them
// (a D1 upsert per event: as close to a no-op as a consumer with exactly-once effects gets).
// `eventsPerSec` is the steady state: handled events/s between the first and last few percent of
// the events (bench/handled.mjs), from the consumer's own records, so neither start-up nor the
// tail, nor what the platform merely sent, counts. Commit → handled latency per event: its
// `receivedtime` in the log against its `processed_at` in D1. Runs on a fresh stack, before the
// ingest load, so no backlog from other scenarios is in the queue.

import { authFetch } from "./auth.mjs";
import { appliedCount, handledTimes, percentile, SUBSCRIPTION, steady, subscriptionStatus, TOPIC, waitHandled } from "./handled.mjs";
import { median } from "./report.mjs";

const SOURCE = "/bench/e2e";
const TYPE = "bench.e2e";

/**
 * One batch POST, sent again (up to 3 times) when the connection fails: the events' ids make the
 * platform store a resent event once, and a busy 2-core machine does reset a socket now and then.
 */
async function postBatch(url, body) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await authFetch(url, { method: "POST", headers: { "content-type": "application/cloudevents-batch+json" }, body });
    } catch (err) {
      if (attempt >= 3) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

export async function publish(platform, ids, batchSize, concurrency) {
  const batches = [];
  for (let i = 0; i < ids.length; i += batchSize) batches.push(ids.slice(i, i + batchSize));
  const acks = [];
  let next = 0;
  const worker = async () => {
    while (next < batches.length) {
      const batch = batches[next++];
      const body = JSON.stringify(
        batch.map((id, k) => ({ specversion: "1.0", id, source: SOURCE, type: TYPE, subject: `e2e-${k % 64}`, data: { k } })),
      );
      const res = await postBatch(new URL(`/v1/topics/${TOPIC}/events`, platform), body);
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
      const res = await authFetch(new URL(`/v1/topics/${TOPIC}/partitions/${partition}/events?from=${from}&limit=1000`, platform));
      for (const e of (await res.json()).events) times.set(e.id, Date.parse(e.receivedtime));
    }
  }
  return times;
}

export async function endToEnd({ platform, queryD1, events, batchSize, concurrency, timeoutSec, window }) {
  const before = (await subscriptionStatus(platform)).counts.handled;
  const ids = Array.from({ length: events }, (_, i) => `e2e-${i}-${Math.random().toString(36).slice(2, 8)}`);
  const started = Date.now();
  // Publishing and watching the consumer overlap: the events are handled while others arrive.
  const watching = waitHandled({ platform, before, expected: events, since: started, timeoutSec, label: "end to end", drained: true });
  const acks = await publish(platform, ids, batchSize, concurrency);
  const published = Date.now();
  const { series, status: s } = await watching;
  const handled = s.counts.handled - before;
  // The consumer is done (or timed out): D1 can be read now (see bench/handled.mjs).
  const applied = await appliedCount(queryD1, TYPE);
  const commits = await commitTimes(platform, acks);
  const rows = (await handledTimes(queryD1, SOURCE)).filter((r) => commits.has(r.event_id));
  const latencies = rows.map((r) => r.processed_at - commits.get(r.event_id));
  const firstCommit = Math.min(...commits.values());
  const lastHandled = rows.length > 0 ? Math.max(...rows.map((r) => r.processed_at)) : series.at(-1)[0];
  const steadyState = steady(
    rows.map((r) => r.processed_at),
    series,
    events,
    window,
  );
  return {
    label: `ingest → ${SUBSCRIPTION} consumer handled`,
    events,
    // The subscription's own count (subscription_stats) and the read model's effects for these events.
    handled,
    applied,
    deadLettered: s.counts.deadLettered,
    lag: s.lag,
    complete: applied >= events && s.lag === 0,
    exactlyOnce: applied === events,
    // Steady-state handled events/s (see the file comment); null when the window's end was not reached.
    eventsPerSec: steadyState?.eventsPerSec ?? null,
    steadyState,
    // From the first commit until the last event was handled, start-up and tail included.
    wholeRunEventsPerSec: Math.round((Math.min(applied, events) / Math.max(1, lastHandled - firstCommit)) * 1000),
    ingestEventsPerSec: Math.round((events / (published - started)) * 1000),
    publishMs: published - started,
    commitToHandledMs: {
      samples: latencies.length,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      median: latencies.length ? median(latencies) : null,
      max: latencies.length ? Math.max(...latencies) : null,
    },
    settings: { batchSize, concurrency, timeoutSec },
  };
}
