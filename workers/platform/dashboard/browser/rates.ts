import { isNum, num, sum } from "./format";
import { state, WINDOW_MS } from "./state";
import type { Latency, Model, SubscriptionModel } from "./types";

/**
 * Rates from counter deltas against the previous poll (null on the first poll or after a reset),
 * the latency the charts show, and one chart sample per poll (the last 5 minutes are kept).
 */
export function computeRates(model: Model, prev: Model | null): void {
  const dt = prev ? (model.at - prev.at) / 1000 : 0;
  const rate = (now: number, before: number | undefined) => (prev && dt > 0 && isNum(before) && now >= before ? (now - before) / dt : null);
  const prevParts = new Map<string, number>();
  const prevSubs = new Map<string, SubscriptionModel>();
  if (prev) {
    for (const t of prev.topics) for (const p of t.partitions) prevParts.set(`${t.name}/${p.partition}`, p.appended);
    for (const x of prev.subscriptions) prevSubs.set(x.name, x);
  }
  let totalIn: number | null = prev ? 0 : null;
  for (const t of model.topics) {
    t.events = sum(t.partitions.map((p) => p.head));
    t.appended = sum(t.partitions.map((p) => p.appended));
    t.rate = prev ? 0 : null;
    for (const p of t.partitions) {
      p.rate = rate(p.appended, prevParts.get(`${t.name}/${p.partition}`));
      if (p.rate !== null && t.rate !== null) t.rate += p.rate;
    }
    if (t.rate !== null && totalIn !== null) totalIn += t.rate;
  }
  let totalOut: number | null = prev ? 0 : null;
  let handledDelta = 0;
  let errorDelta = 0;
  for (const x of model.subscriptions) {
    const before = prevSubs.get(x.name);
    x.rate = before ? rate(x.handled, before.handled) : null;
    x.errorRate = before ? rate(x.retried + x.deadLettered, before.retried + before.deadLettered) : null;
    if (before && x.rate !== null) {
      if (totalOut !== null) totalOut += x.rate;
      handledDelta += x.handled - before.handled;
    }
    if (before && x.errorRate !== null) errorDelta += x.retried + x.deadLettered - before.retried - before.deadLettered;
  }
  model.latency = latencyOf(model);
  if (prev) {
    const attempts = handledDelta + errorDelta;
    state.samples.push({
      t: model.at,
      in: totalIn,
      out: totalOut,
      errorRate: attempts > 0 ? errorDelta / attempts : 0,
      p50: model.latency ? model.latency.p50 : null,
      p99: model.latency ? model.latency.p99 : null,
    });
    while (state.samples.length && (state.samples[0]?.t ?? 0) < model.at - WINDOW_MS) state.samples.shift();
  }
  model.totalIn = totalIn;
  model.totalOut = totalOut;
}

/** The slowest subscription's end-to-end percentiles, else the slowest partition's append. */
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
