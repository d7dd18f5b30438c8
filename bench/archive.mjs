// Archive and replay scenarios: seal what is unarchived now (POST /v1/topics/{topic}/archive),
// then replay the whole topic to one subscription as fast as the job goes (rate 10,000/s), and
// read the same archived segments from R2 inside workerd as the yardstick: the archive verify
// route gets every segment, hashes it, gunzips it and parses every line. Archive throughput over the whole run comes from the partitions' own "archived"
// log lines (events sealed per second of archiving work), collected by bench/server.mjs.
import { authFetch } from "./auth.mjs";

async function json(res) {
  const text = await res.text();
  if (!res.ok) throw new Error(`${res.url} → ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

export async function archiveAndReplay({ platform, topic, subscription, timeoutSec }) {
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

  const created = await json(
    await authFetch(new URL("/v1/replays", platform), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ topic, from: { sequence: 1 }, subscription, rate: 10_000 }),
    }),
  );
  const replayStarted = performance.now();
  let view = created;
  let shown = 0;
  while (view.state === "running") {
    if (performance.now() - replayStarted > timeoutSec * 1000) throw new Error(`replay ${view.id} still running after ${timeoutSec} s`);
    await new Promise((r) => setTimeout(r, 100));
    view = await json(await authFetch(new URL(`/v1/replays/${created.id}`, platform)));
    if (performance.now() - replayStarted > shown + 2000) {
      shown += 2000;
      console.log(`  replay ${view.scanned}/${view.total} scanned, ${view.sent} sent, ${view.eventsPerSecond} events/s`);
    }
  }
  if (view.state !== "done") throw new Error(`replay ended ${view.state}: ${view.error}`);
  const replayMs = Date.parse(view.finishedAt) - Date.parse(view.createdAt);
  const replayPerSec = Math.round((view.sent / replayMs) * 1000);
  const rawPerSec = Math.round((raw.events / raw.ms) * 1000);
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
    replay: { id: view.id, sent: view.sent, scanned: view.scanned, ms: replayMs, eventsPerSec: replayPerSec },
    ratio: Math.round((replayPerSec / rawPerSec) * 1000) / 1000,
  };
}
