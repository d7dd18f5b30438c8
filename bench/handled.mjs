// "Handled", measured on the consumer's side: the `activity` subscription counts every event it
// handled (subscription_stats, shown by GET /v1/subscriptions/activity), its read model counts
// every effect it applied (event_type_activity.events, one row per topic and type), and its
// idempotency records say when each event was settled (processed_events.processed_at, written in
// the same D1 batch as the effect). None of them is what the platform *sent*. The end-to-end and
// replay scenarios wait on the first and derive rates and latencies from the other two.
//
// While events flow, progress is polled over HTTP, never through Miniflare's D1 proxy: its calls
// block the server process's thread until workerd answers, so that thread stops draining
// workerd's log output, and workerd, busy logging, blocks on the full pipe — a deadlock seen here
// at 20,000 events. D1 is read only once the consumer is done.
import { authFetch } from "./auth.mjs";

export const SUBSCRIPTION = "activity";
export const TOPIC = "events";

export function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Effects the activity projection applied for `TOPIC` (optionally one event type). */
export async function appliedCount(queryD1, type) {
  const rows =
    type === undefined
      ? await queryD1(`SELECT COALESCE(SUM(events), 0) AS n FROM event_type_activity WHERE topic = ?`, [TOPIC])
      : await queryD1(`SELECT COALESCE(SUM(events), 0) AS n FROM event_type_activity WHERE topic = ? AND type = ?`, [TOPIC, type]);
  return rows[0]?.n ?? 0;
}

/** The subscription's count of handled events and its lag, from its status route. */
export async function subscriptionStatus(platform) {
  const res = await authFetch(new URL(`/v1/subscriptions/${SUBSCRIPTION}`, platform));
  if (!res.ok) throw new Error(`GET /v1/subscriptions/${SUBSCRIPTION} → ${res.status}: ${(await res.text()).slice(0, 300)}`);
  return res.json();
}

/**
 * Polls the subscription's status until it has handled `expected` events more than `before` (and,
 * with `drained`, shows no lag) or `timeoutSec` passes. Returns the (time, handled since `before`)
 * series, the fallback for the steady-state rate when processed_events has no per-event times.
 * 100 ms between polls: each is one request to the workerd that also runs the consumer.
 */
export async function waitHandled({ platform, before, expected, since, timeoutSec, label, drained = false }) {
  const series = [];
  let shown = Date.now();
  for (;;) {
    const s = await subscriptionStatus(platform);
    const n = s.counts.handled - before;
    const now = Date.now();
    series.push([now, n]);
    if ((n >= expected && (!drained || s.lag === 0)) || now - since > timeoutSec * 1000) return { series, status: s };
    if (now - shown >= 5000) {
      shown = now;
      console.log(`  ${label}: ${n}/${expected} handled after ${Math.round((now - since) / 1000)} s (lag ${s.lag})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Handled events/s in steady state: over the events between the `window` shares (in %) of
 * `expected`, so start-up (queue batch windows, cold isolates) and the tail (the last partial
 * batches) are left out. `times` are the handled times (ms) of the events; several events may
 * share one time (a batch settled at once), so the rate counts the events handled after the
 * window's first time up to its last. Null when fewer than the window's end were handled.
 */
export function steadyRate(times, expected, [lo, hi]) {
  const sorted = [...times].sort((a, b) => a - b);
  const first = Math.floor((lo / 100) * expected);
  const last = Math.ceil((hi / 100) * expected) - 1;
  if (last >= sorted.length || last <= first) return null;
  const t0 = sorted[first];
  const t1 = sorted[last];
  if (t1 <= t0) return null;
  const upTo = (t) => {
    // Events handled at or before t: binary search for the last index with time ≤ t.
    let a = 0;
    let b = sorted.length;
    while (a < b) {
      const m = (a + b) >> 1;
      if (sorted[m] <= t) a = m + 1;
      else b = m;
    }
    return a;
  };
  const events = upTo(t1) - upTo(t0);
  return { eventsPerSec: Math.round((events / (t1 - t0)) * 1000), events, ms: t1 - t0, windowPct: [lo, hi] };
}

/** The same rate from the polled (time, count) series: coarser (100 ms), used when per-event times are missing. */
export function steadyRateFromSeries(series, expected, [lo, hi]) {
  const at = (share) => series.find(([, n]) => n >= (share / 100) * expected);
  const a = at(lo);
  const b = at(hi);
  if (a === undefined || b === undefined || b[0] <= a[0]) return null;
  return { eventsPerSec: Math.round(((b[1] - a[1]) / (b[0] - a[0])) * 1000), events: b[1] - a[1], ms: b[0] - a[0], windowPct: [lo, hi] };
}

/** Handled times (ms) of the activity subscription's events (from `source`, or all), settled since `since`. */
export async function handledTimes(queryD1, source, since = 0) {
  const bySource = source === undefined ? "" : " AND source = ?";
  return queryD1(
    `SELECT event_id, processed_at FROM processed_events
     WHERE subscription = ? AND outcome = 'handled' AND processed_at >= ?${bySource}`,
    [SUBSCRIPTION, since, ...(source === undefined ? [] : [source])],
  );
}

/** The steady-state rate, from per-event times when the consumer recorded one per event, else the series. */
export function steady(times, series, expected, window) {
  if (times.length >= expected) {
    const r = steadyRate(times, expected, window);
    if (r !== null) return { ...r, from: "processed_events.processed_at" };
  }
  const r = steadyRateFromSeries(series, expected, window);
  return r === null ? null : { ...r, from: "the subscription's handled count polled every 100 ms" };
}
