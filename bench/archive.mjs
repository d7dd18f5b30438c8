// Archive and replay scenarios: seal what is unarchived now (POST /v1/topics/{topic}/archive),
// read the archived segments from R2 inside workerd (the archive verify route gets every segment,
// hashes it, gunzips it and parses every line: the raw read figure), then replay the whole topic
// to the subscription that consumed it live and measure when the replayed events are *handled*
// (bench/handled.mjs). `ratio` is replay handled/s ÷ live handled/s (issue 15); the raw read
// stays beside it so reading the archive is seen never to be the bottleneck. Archive throughput
// over the whole run comes from the partitions' own "archived" log lines (events sealed per
// second of archiving work), collected by bench/server.mjs.
import { authFetch } from "./auth.mjs";
import { appliedCount, handledTimes, steady, subscriptionStatus, waitHandled } from "./handled.mjs";

async function json(res) {
  const text = await res.text();
  if (!res.ok) throw new Error(`${res.url} → ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

export async function archiveAndReplay({ platform, queryD1, topic, subscription, rate, timeoutSec, window, liveHandledPerSec }) {
  const sealStarted = performance.now();
  const sealed = await json(await authFetch(new URL(`/v1/topics/${topic}/archive`, platform), { method: "POST" }));
  const sealMs = performance.now() - sealStarted;
  const sealedEvents = sealed.partitions.reduce((n, p) => n + p.sealed.reduce((m, s) => m + s.count, 0), 0);
  const stats = await json(await authFetch(new URL(`/v1/topics/${topic}`, platform)));
  const archivedEvents = stats.partitionStats.reduce((n, p) => n + (p.archived === null ? 0 : p.archived.last - p.archived.first + 1), 0);
  const segments = stats.partitionStats.reduce((n, p) => n + (p.archived?.segments ?? 0), 0);
  const bytes = stats.partitionStats.reduce((n, p) => n + (p.archived?.bytes ?? 0), 0);
  const heads = stats.partitionStats.reduce((n, p) => n + p.head, 0);

  const readStarted = performance.now();
  const verified = await json(await authFetch(new URL(`/v1/topics/${topic}/archive?verify=true`, platform)));
  const readMs = performance.now() - readStarted;
  const bad = verified.partitions.filter((p) => !p.verified.ok);
  if (bad.length > 0) throw new Error(`archive verification failed: ${JSON.stringify(bad.map((p) => p.verified.problems))}`);
  const raw = { events: archivedEvents, objects: segments, ms: readMs };

  // The replay: a rebuild of the subscription's projection (POST /v1/projections/{name}/rebuild),
  // which clears its read model, idempotency records and checkpoints and then runs a replay job
  // from sequence 1, so every replayed event is one the subscription has not handled and has to
  // apply, like a live one. The same consumer handled the live events (bench/e2e.mjs), which
  // makes replay handled/s ÷ live handled/s a like-for-like comparison. The job's rate limit is
  // set at the API's maximum, above what this machine handles (`rateBound` says if it was not).
  const expected = heads;
  const before = (await subscriptionStatus(platform)).counts.handled;
  const rebuildStarted = Date.now();
  const rebuilt = await json(
    await authFetch(new URL(`/v1/projections/${subscription}/rebuild`, platform), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ rate }),
    }),
  );
  const id = rebuilt.replay.id;
  const { series } = await waitHandled({ platform, before, expected, since: rebuildStarted, timeoutSec, label: "replay" });
  // The job has usually finished sending long before the consumer is done; wait for its end state.
  let view = await json(await authFetch(new URL(`/v1/replays/${id}`, platform)));
  while (view.state === "running" && Date.now() - rebuildStarted < timeoutSec * 1000) {
    await new Promise((r) => setTimeout(r, 200));
    view = await json(await authFetch(new URL(`/v1/replays/${id}`, platform)));
  }
  const replayMs = view.finishedAt === null ? null : Date.parse(view.finishedAt) - Date.parse(view.createdAt);
  const replayPerSec = replayMs === null ? null : Math.round((view.sent / Math.max(1, replayMs)) * 1000);
  // The consumer is done (or timed out): D1 can be read now (see bench/handled.mjs).
  const applied = await appliedCount(queryD1);
  const times = (await handledTimes(queryD1, undefined, rebuildStarted)).map((r) => r.processed_at);
  const steadyState = steady(times, series, expected, window);
  const lastHandled = times.length > 0 ? Math.max(...times) : series.at(-1)[0];
  const handledPerSec = steadyState?.eventsPerSec ?? null;
  const rawPerSec = Math.round((raw.events / raw.ms) * 1000);
  const round3 = (n) => Math.round(n * 1000) / 1000;
  return {
    topic,
    subscription,
    seal: { events: sealedEvents, ms: Math.round(sealMs), eventsPerSec: sealMs > 0 ? Math.round((sealedEvents / sealMs) * 1000) : null },
    archive: {
      events: archivedEvents,
      of: heads,
      segments,
      bytes,
      bytesPerEvent: archivedEvents ? Math.round(bytes / archivedEvents) : null,
    },
    rawRead: { events: raw.events, segments: raw.objects, ms: Math.round(raw.ms), eventsPerSec: rawPerSec },
    replay: {
      id: view.id,
      via: `POST /v1/projections/${subscription}/rebuild`,
      rate,
      state: view.state,
      sent: view.sent,
      scanned: view.scanned,
      // Job created → job done (everything sent), and the send rate over it.
      ms: replayMs,
      eventsPerSec: replayPerSec,
      // On the consumer's side: the events applied, the steady-state rate and the whole run's.
      expected,
      handled: applied,
      complete: applied >= expected,
      handledPerSec,
      steadyState,
      wholeRunHandledPerSec: Math.round((Math.min(applied, expected) / Math.max(1, lastHandled - rebuildStarted)) * 1000),
      // The job sent as fast as its rate lets it (≥ 90%): pacing, not reading, bounded the sending.
      sentAtRateLimit: replayPerSec !== null && replayPerSec >= 0.9 * rate,
      // The handled rate came near the job's rate limit (≥ 90%), so the limit, not the consumer,
      // may be what bounds the ratio: raise --replay-rate (and the API's maximum) to measure it.
      rateBound: handledPerSec !== null && handledPerSec >= 0.9 * rate,
    },
    // Replay handled events/s ÷ live (end-to-end) handled events/s: the same subscription, both steady state.
    ratio: handledPerSec === null || !liveHandledPerSec ? null : round3(handledPerSec / liveHandledPerSec),
    liveHandledPerSec,
    // What ratio meant before issue 15: the job's send rate ÷ the raw archive read.
    sentOverRawRead: replayPerSec === null ? null : round3(replayPerSec / rawPerSec),
    handledOverRawRead: handledPerSec === null ? null : round3(handledPerSec / rawPerSec),
  };
}
