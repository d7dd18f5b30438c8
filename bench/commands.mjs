// Command-side scenarios (event sourcing + CQRS on the orders demo): commands/s on distinct
// orders, commands/s on one hot order (every client writes the same stream; the partition log
// runs its commands in turn, and any conflict retries or 409s are counted), and the time from
// sending a command until the orders read model shows it. Each command is a real HTTP request:
// one call to the order's partition log, which decides on the aggregate it holds in memory and
// appends in one transaction (ADR 0040).

import { authFetch } from "./auth.mjs";

const json = (body) => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] * 10) / 10;
}

async function send(platform, path, body) {
  const started = performance.now();
  const res = await authFetch(new URL(path, platform), json(body));
  const text = await res.text();
  return { status: res.status, body: text.startsWith("{") ? JSON.parse(text) : text, ms: performance.now() - started };
}

/** Runs `workers` loops of `step` for `durationSec`; tallies statuses, latencies and conflict retries. */
async function run(durationSec, workers, step) {
  const stats = { ok: 0, statuses: {}, latencies: [], conflictRetries: 0 };
  const record = (r) => {
    stats.statuses[r.status] = (stats.statuses[r.status] ?? 0) + 1;
    if (r.status === 200 || r.status === 201) {
      stats.ok++;
      stats.latencies.push(r.ms);
      stats.conflictRetries += r.body.conflictRetries ?? 0;
    }
    return r;
  };
  const deadline = Date.now() + durationSec * 1000;
  const started = Date.now();
  await Promise.all(Array.from({ length: workers }, (_, w) => step(w, record, () => Date.now() < deadline)));
  const seconds = (Date.now() - started) / 1000;
  return {
    commands: stats.ok,
    commandsPerSec: Math.round(stats.ok / seconds),
    statuses: stats.statuses,
    p50: percentile(stats.latencies, 50),
    p99: percentile(stats.latencies, 99),
    conflictRetries: stats.conflictRetries,
    durationSec: Math.round(seconds * 10) / 10,
  };
}

const line = (sku, unitPrice = 1000) => ({ sku, quantity: 1, unitPrice });

/** Distinct orders: each worker places its own orders and runs each through add-line and pay. */
function distinctOrders(platform) {
  return async (w, record, going) => {
    while (going()) {
      const placed = record(await send(platform, "/v1/orders", { customerId: `bench-${w}`, currency: "EUR", lines: [line("A")] }));
      if (placed.status !== 201) continue;
      const id = placed.body.orderId;
      if (!going()) break;
      record(await send(platform, `/v1/orders/${id}/add-line`, { line: line("B", 500) }));
      if (!going()) break;
      record(await send(platform, `/v1/orders/${id}/pay`, { amount: 1500, currency: "EUR" }));
    }
  };
}

/** One hot order: every worker adds and removes its own line, so all of them write one stream. */
function hotOrder(platform, orderId) {
  return async (w, record, going) => {
    for (let n = 0; going(); n++) {
      const sku = `W${w}-${n}`;
      const added = record(await send(platform, `/v1/orders/${orderId}/add-line`, { line: line(sku) }));
      if (added.status === 200) record(await send(platform, `/v1/orders/${orderId}/remove-line`, { sku }));
    }
  };
}

/** Command sent → read model shows it: place an order, then poll the view until it is there. */
async function visibility(platform, samples, concurrency) {
  const latencies = [];
  let next = 0;
  const worker = async () => {
    while (next++ < samples) {
      const started = performance.now();
      const placed = await send(platform, "/v1/orders", { customerId: "bench-visible", currency: "EUR", lines: [line("A")] });
      if (placed.status !== 201) throw new Error(`visibility: place → ${placed.status}: ${JSON.stringify(placed.body).slice(0, 300)}`);
      for (;;) {
        const res = await authFetch(new URL(`/v1/orders/${placed.body.orderId}`, platform));
        await res.arrayBuffer();
        if (res.status === 200) break;
        if (performance.now() - started > 30_000) throw new Error("visibility: order not visible after 30 s");
        await new Promise((r) => setTimeout(r, 5));
      }
      latencies.push(performance.now() - started);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { samples: latencies.length, p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: percentile(latencies, 100) };
}

async function drained(platform, timeoutSec) {
  const deadline = Date.now() + timeoutSec * 1000;
  for (;;) {
    const lags = await Promise.all(
      ["orders-view", "customer-summary"].map(
        async (name) => (await (await authFetch(new URL(`/v1/subscriptions/${name}`, platform))).json()).lag,
      ),
    );
    if (lags.every((lag) => lag === 0)) return;
    if (Date.now() > deadline) throw new Error(`projections still behind after ${timeoutSec} s: lag ${lags}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Only the distinct-orders scenario (bench/profile.mjs `commands`). */
export function distinctCommands({ platform, durationSec, concurrency }) {
  return run(durationSec, concurrency, distinctOrders(platform));
}

export async function commandBench({ platform, durationSec, concurrency, visibilitySamples }) {
  const show = (label, r) =>
    console.log(
      `  ${label.padEnd(16)} ${String(r.commandsPerSec).padStart(5)} commands/s  p50 ${r.p50} ms  p99 ${r.p99} ms  conflict retries ${r.conflictRetries}  ${JSON.stringify(r.statuses)}`,
    );
  const distinct = await run(durationSec, concurrency, distinctOrders(platform));
  show("distinct orders", distinct);
  const placed = await send(platform, "/v1/orders", { customerId: "bench-hot", currency: "EUR", lines: [line("BASE")] });
  if (placed.status !== 201) throw new Error(`hot order: place → ${placed.status}`);
  const hot = await run(durationSec, concurrency, hotOrder(platform, placed.body.orderId));
  show("one hot order", hot);
  // Let the projections drain the backlog the load left, so visibility measures a command alone.
  await drained(platform, 180);
  const visible = await visibility(platform, visibilitySamples, 4);
  console.log(`  command → visible p50 ${visible.p50} ms  p99 ${visible.p99} ms  (${visible.samples} samples)`);
  return { distinct, hot: { ...hot, orderId: placed.body.orderId }, visible };
}
