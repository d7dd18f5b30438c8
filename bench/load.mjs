// Request bodies and the autocannon runner. Bodies are built from pre-serialized fragments so
// the load generator, which shares the 2 cores with workerd, spends as little CPU as possible.
import autocannon from "autocannon";
import { AUTH_HEADERS } from "./auth.mjs";

export const STRUCTURED = "application/cloudevents+json";
export const BATCH = "application/cloudevents-batch+json";

/** shared/partitioner.ts's FNV-1a 32; re-stated here so plain node can run the bench. */
export function fnv1a32(key) {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(key)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/** The first `bench-N` key landing on each partition, so a spread run hits every partition. */
export function keysCoveringPartitions(partitions) {
  const keys = new Array(partitions);
  for (let n = 0, found = 0; found < partitions; n++) {
    const key = `bench-${n}`;
    const p = fnv1a32(key) % partitions;
    if (keys[p] === undefined) {
      keys[p] = key;
      found++;
    }
  }
  return keys;
}

// Ids must never repeat within one bench (a repeat is a cheap duplicate, not an append); the
// prefix keeps them unique even against a reused state directory.
const idPrefix = `b${Date.now().toString(36)}`;
let nextId = 0;

// Valid for the `orders` topic's "orders.shipped" schema, so the ingest path includes data
// validation; a type no subscription or processor takes (the demo processors read orders.paid and
// orders.placed), so the ingest scenarios measure ingest, not the work routed events cause.
const DATA = JSON.stringify({ orderId: "o-1234567-bench-payload", carrier: "bench-carrier-1" });

/** A small event (~250 bytes), the same bytes for the platform and the baseline. */
export function eventJson(partitionkey) {
  return `{"specversion":"1.0","id":"${idPrefix}-${nextId++}","source":"/bench/load","type":"orders.shipped","partitionkey":"${partitionkey}","datacontenttype":"application/json","data":${DATA}}`;
}

export function batchJson(partitionkey, size) {
  const events = new Array(size);
  for (let i = 0; i < size; i++) events[i] = eventJson(partitionkey);
  return `[${events.join(",")}]`;
}

/**
 * One autocannon run. `makeBody` is called per request so every request carries fresh ids.
 * Throughput counts only 2xx responses: a fast stream of errors must not look like speed.
 */
export async function load({ url, contentType, makeBody, connections, duration }) {
  const result = await autocannon({
    url,
    method: "POST",
    connections,
    duration,
    headers: { "content-type": contentType, ...AUTH_HEADERS },
    requests: [{ setupRequest: (req) => ({ ...req, body: makeBody() }) }],
    // Generous: a batch under load can take a while, and a timeout would hide a slow server.
    timeout: 30,
    renderProgressBar: false,
    renderResultsTable: false,
  });
  const ok = result["2xx"];
  return {
    ok,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, s]) => [code, s.count])),
    reqPerSec: ok / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    durationSec: result.duration,
  };
}
