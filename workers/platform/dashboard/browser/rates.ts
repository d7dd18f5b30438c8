import { isNum, num, sum } from "./format";
import { state, WINDOW_MS } from "./state";
import type { Latency, Model, SubscriptionModel } from "./types";

/**
 * The figures the page shows. From GET /v1/metrics they are the server's recent window (`recent`:
 * rates, error rate and latency over the last 5 minutes, the figures GET /v1/health judges and
 * GET /v1/metrics/history gives the charts), so the badge, the table and the charts agree. Only a
 * server without them falls back to counter deltas between two polls. Either way, what moved since
 * the previous poll is marked `moving`: the graph animates those edges only.
 */
export function computeRates(model: Model, prev: Model | null): void {
  const dt = prev ? (model.at - prev.at) / 1000 : 0;
  const delta = (now: number, before: number | undefined) => (prev && dt > 0 && isNum(before) && now >= before ? now - before : null);
  const prevParts = new Map<string, number>();
  const prevSubs = new Map<string, SubscriptionModel>();
  if (prev) {
    for (const t of prev.topics) for (const p of t.partitions) prevParts.set(`${t.name}/${p.partition}`, p.appended);
    for (const x of prev.subscriptions) prevSubs.set(x.name, x);
  }
  const server = model.recent !== null;
  let totalIn: number | null = server ? (model.recent?.in ?? null) : prev ? 0 : null;
  for (const t of model.topics) {
    t.events = sum(t.partitions.map((p) => p.head));
    t.appended = sum(t.partitions.map((p) => p.appended));
    t.rate = server || prev ? 0 : null;
    t.moving = false;
    for (const p of t.partitions) {
      const d = delta(p.appended, prevParts.get(`${t.name}/${p.partition}`));
      p.moving = (d ?? 0) > 0;
      p.rate = p.serverRate ?? (d === null ? null : d / dt);
      if (p.rate !== null && t.rate !== null) t.rate += p.rate;
      t.moving ||= p.moving;
    }
    if (!server && t.rate !== null && totalIn !== null) totalIn += t.rate;
  }
  let totalOut: number | null = server ? (model.recent?.out ?? null) : prev ? 0 : null;
  let handledDelta = 0;
  let errorDelta = 0;
  for (const x of model.subscriptions) {
    const before = prevSubs.get(x.name);
    const handled = before ? delta(x.handled, before.handled) : null;
    const errors = before ? delta(x.retried + x.deadLettered, before.retried + before.deadLettered) : null;
    x.moving = (handled ?? 0) > 0 || (errors ?? 0) > 0;
    if (x.server) {
      x.rate = x.server.rate;
      x.errorRate = x.server.errorRate;
      continue;
    }
    x.rate = handled === null ? null : handled / dt;
    x.errorRate = handled === null || errors === null ? null : handled + errors > 0 ? errors / (handled + errors) : 0;
    if (x.rate !== null && totalOut !== null) totalOut += x.rate;
    handledDelta += handled ?? 0;
    errorDelta += errors ?? 0;
  }
  const prevResults = new Map(prev?.processors.map((p) => [p.name, p.results]) ?? []);
  for (const p of model.processors) p.moving = p.results > (prevResults.get(p.name) ?? p.results);
  if (!server) model.latency = latencyOf(model);
  const sample = model.recent ?? (prev ? { t: model.at, in: totalIn, out: totalOut, errorRate: 0, p50: null, p99: null } : null);
  if (sample && !server) {
    const attempts = handledDelta + errorDelta;
    sample.errorRate = attempts > 0 ? errorDelta / attempts : 0;
    sample.p50 = model.latency ? model.latency.p50 : null;
    sample.p99 = model.latency ? model.latency.p99 : null;
  }
  if (sample) addSample(sample);
  model.totalIn = totalIn;
  model.totalOut = totalOut;
}

/** Keeps the samples in time order and within the charts' span (the server's history, else 5 minutes). */
export function addSample(sample: Model["recent"] & {}): void {
  const samples = state.samples;
  const last = samples[samples.length - 1];
  if (last && last.t >= sample.t) return;
  samples.push(sample);
  const span = state.historyMs || WINDOW_MS;
  while (samples.length && (samples[0]?.t ?? 0) < sample.t - span) samples.shift();
}

/** The slowest subscription's end-to-end percentiles, else the slowest partition's append (servers without `recent`). */
function latencyOf(model: Model): Model["latency"] {
  const withE2e = model.subscriptions.filter((x) => x.e2e && x.e2e.count > 0 && isNum(x.e2e.p50));
  if (withE2e.length) {
    return {
      kind: "end-to-end",
      p50: Math.max(...withE2e.map((x) => num(x.e2e?.p50))),
      p99: Math.max(...withE2e.map((x) => num(x.e2e?.p99))),
    };
  }
  const parts: Latency[] = [];
  for (const t of model.topics) {
    for (const p of t.partitions)
      if (p.appendLatency && p.appendLatency.count > 0 && isNum(p.appendLatency.p50)) parts.push(p.appendLatency);
  }
  if (parts.length)
    return { kind: "append", p50: Math.max(...parts.map((l) => num(l.p50))), p99: Math.max(...parts.map((l) => num(l.p99))) };
  return null;
}
