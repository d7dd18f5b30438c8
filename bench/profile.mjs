#!/usr/bin/env node
// `npm run bench:profile -- [single|batch] [seconds]`: V8 CPU profiles of workerd's isolates while
// the platform ingests, taken through workerd's own inspector; `deliver [events]` profiles delivery
// instead: events published to `events` as fast as ingest takes them (as bench/e2e.mjs does) until
// the `activity` consumer has applied them all, so the relay, the queue consumer and its D1
// settling are in the profile; `commands [seconds]` profiles the orders demo's commands on
// distinct orders (bench/commands.mjs), the projections they feed included; `processors [events]`
// the processor scenario (bench/processors.mjs: events through the bench's count-per-key processor
// until every instance applied them and appended its results), on the platform built with the
// bench's processor config, whose isolate is then the one broken down.
//
// Every isolate is profiled at once: the platform (ingest Worker, PartitionLog objects with the
// outbox relay, the queue consumer) and Miniflare's own objects that stand in for D1 and the
// queue broker. For each it prints busy CPU (µs per event), then the platform's time by source
// file (the bundle's `// path` markers), by package, and by the innermost frame of our own code
// (so the SQLite `exec`, D1 calls or zod work a function causes count towards it), and the top
// functions by self time. workerd's CPU from /proc over the same run is the check on the sum.
// Writes bench/results/profile-<scenario>[-<isolate>].cpuprofile (open in Chrome DevTools →
// Performance, or VS Code). For finding where time goes; the figures to compare against targets
// come from `npm run bench`. BENCH_PROFILE_TOP sets the rows per table (default 25).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { distinctCommands } from "./commands.mjs";
import { childPids, cpuSeconds } from "./cpu.mjs";
import { analyse, bundleModules, top } from "./cpuprofile.mjs";
import { publish } from "./e2e.mjs";
import { subscriptionStatus, waitHandled } from "./handled.mjs";
import { BATCH, batchJson, eventJson, load, STRUCTURED } from "./load.mjs";
import { processorBench } from "./processors.mjs";
import { start } from "./server.mjs";
import { buildWorkers } from "./stack.mjs";

const scenario = process.argv[2] ?? "single";
const byEvents = scenario === "deliver" || scenario === "processors";
const seconds = Number(process.argv[3] ?? (scenario === "deliver" ? 10_000 : scenario === "processors" ? 50_000 : 8));
if (!["single", "batch", "deliver", "commands", "processors"].includes(scenario) || !(seconds > 0)) {
  console.error("usage: npm run bench:profile -- [single|batch|commands] [seconds] | deliver [events] | processors [events]");
  process.exit(2);
}
const INSPECTOR_PORT = Number(process.env.BENCH_INSPECTOR_PORT ?? 9329);

/** A minimal Chrome DevTools Protocol client over Node's WebSocket. */
async function connect(url) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve, { once: true });
    ws.addEventListener("error", () => reject(new Error(`cannot open inspector ${url}`)), { once: true });
  });
  let nextId = 1;
  const pending = new Map();
  ws.addEventListener("message", async (e) => {
    const msg = JSON.parse(typeof e.data === "string" ? e.data : Buffer.from(await e.data.arrayBuffer()).toString("utf8"));
    const waiter = pending.get(msg.id);
    if (waiter === undefined) return;
    pending.delete(msg.id);
    if (msg.error) waiter.reject(new Error(`${msg.error.message} (${msg.error.code})`));
    else waiter.resolve(msg.result);
  });
  ws.addEventListener("close", () => {
    for (const waiter of pending.values()) waiter.reject(new Error("the inspector closed the connection"));
    pending.clear();
  });
  return {
    send: (method, params = {}) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}

// Sampling every 100 µs in seven isolates doubles workerd's CPU; every 500 µs keeps the profiler cheap.
const INTERVAL_US = Number(process.env.BENCH_PROFILE_INTERVAL_US ?? 500);
const TOP = Number(process.env.BENCH_PROFILE_TOP ?? 25);

const persist = mkdtempSync(path.join(os.tmpdir(), "eventline-profile-"));
const bundles = await buildWorkers({ processors: scenario === "processors" });
const { mf, urls } = await start({ ...bundles, persist, inspectorPort: INSPECTOR_PORT });
/** The isolate broken down by source file: the platform, or the platform built with the bench's processor config. */
const OURS = scenario === "processors" ? "core:user:platform-processors" : "core:user:platform";
const ourBundle = scenario === "processors" ? bundles.processors : bundles.platform;
try {
  // workerd names its isolates after their services: core:user:platform is ours; d1:db is
  // Miniflare's D1 object, queues:queue:<name> its queue brokers, the rest idle helpers.
  const targets = await (await fetch(`http://127.0.0.1:${INSPECTOR_PORT}/json/list`)).json();
  if (!targets.some((t) => t.id === OURS)) throw new Error(`the inspector does not list the platform's isolate ${OURS}`);
  const sessions = await Promise.all(targets.map(async (t) => ({ id: t.id, cdp: await connect(t.webSocketDebuggerUrl) })));
  for (const { cdp } of sessions) {
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.setSamplingInterval", { interval: INTERVAL_US });
  }

  const url = new URL("/v1/topics/orders/events", urls.platform).href;
  /** Publishes `events` events to `events` and waits until the activity consumer handled them. */
  const deliver = async (events) => {
    const before = (await subscriptionStatus(urls.platform)).counts.handled;
    const ids = Array.from({ length: events }, (_, i) => `prof-${i}-${Math.random().toString(36).slice(2, 8)}`);
    const started = Date.now();
    await publish(urls.platform, ids, 100, 8);
    const { series } = await waitHandled({
      platform: urls.platform,
      before,
      expected: events,
      since: started,
      timeoutSec: 600,
      label: "deliver",
      drained: true,
    });
    return { reqPerSec: (series.at(-1)[1] / (Date.now() - started)) * 1000, non2xx: 0, events };
  };
  const commands = async (durationSec) => {
    const r = await distinctCommands({ platform: urls.platform, durationSec, concurrency: 8 });
    const non2xx = Object.entries(r.statuses).reduce((n, [status, count]) => n + (status.startsWith("2") ? 0 : count), 0);
    return { reqPerSec: r.commands / r.durationSec, non2xx };
  };
  /** The processor scenario once (its event times and ids are its own: no warm-up run on the same processor). */
  const processors = async (events) => {
    const db = await mf.getD1Database("DB", "platform");
    const queryD1 = async (sql, params) =>
      (
        await db
          .prepare(sql)
          .bind(...params)
          .all()
      ).results;
    const r = await processorBench({ platform: urls.platformProcessors, queryD1, events, timeoutSec: 600, runs: 1, rebuild: false });
    console.log(
      `processor: ${r.eventsPerSec} events/s applied; results exact: ${r.results.exact}; watermark → result p99 ${r.watermarkToResultMs.p99} ms`,
    );
    return { reqPerSec: r.eventsPerSec ?? 0, non2xx: 0, events: events + r.ticks };
  };
  const run = (duration) =>
    scenario === "processors"
      ? processors(duration)
      : scenario === "deliver"
        ? deliver(duration)
        : scenario === "commands"
          ? commands(duration)
          : scenario === "single"
            ? load({ url, contentType: STRUCTURED, makeBody: () => eventJson("bench"), connections: 16, duration })
            : load({ url, contentType: BATCH, makeBody: () => batchJson("bench", 100), connections: 16, duration });
  if (scenario !== "processors") await run(scenario === "deliver" ? 500 : 2); // warm-up: JIT, the Durable Objects' first load
  const workerd = childPids(process.pid);
  const cpuBefore = cpuSeconds(workerd);
  const dry = process.env.BENCH_PROFILE_DRY === "1";
  if (!dry) for (const { cdp } of sessions) await cdp.send("Profiler.start");
  const result = await run(seconds);
  const profiles = [];
  if (!dry) for (const { id, cdp } of sessions) profiles.push({ id, profile: (await cdp.send("Profiler.stop")).profile });
  const cpuAfter = cpuSeconds(workerd);
  for (const { cdp } of sessions) cdp.close();

  const perSecond = scenario === "batch" ? result.reqPerSec * 100 : result.reqPerSec;
  // Events the profiled run took in: what µs per event divides by.
  const events = byEvents ? result.events : Math.round(perSecond * seconds);
  const over = byEvents ? `${seconds} events published until ${scenario === "deliver" ? "handled" : "applied"}` : `${seconds} s`;
  console.log(`${scenario}: ${perSecond.toFixed(0)} events/s over ${over} (profiling slows it); ${result.non2xx} non-2xx`);
  const perEvent = (us) => (us / events).toFixed(1).padStart(8);
  if (cpuBefore !== null && cpuAfter !== null) {
    console.log(`workerd process CPU: ${perEvent((cpuAfter - cpuBefore) * 1e6)} µs/event (all threads, from /proc)`);
  }

  const bundleModule = bundleModules(ourBundle);
  const moduleOf = (url, line) => (path.basename(url) === path.basename(ourBundle) ? bundleModule(line) : url);
  const outDir = path.join(import.meta.dirname, "results");
  mkdirSync(outDir, { recursive: true });
  console.log("\nbusy CPU by isolate (µs/event; idle samples left out)");
  const analysed = [];
  for (const { id, profile } of profiles) {
    const a = analyse(profile, { intervalUs: INTERVAL_US, moduleOf });
    if (a.busyUs / events < 0.5) continue;
    analysed.push({ id, a });
    const file = id === OURS ? `profile-${scenario}` : `profile-${scenario}-${id.replaceAll(/[^\w-]+/g, "_")}`;
    writeFileSync(path.join(outDir, `${file}.cpuprofile`), JSON.stringify(profile));
    console.log(`${perEvent(a.busyUs)}  ${id} → bench/results/${file}.cpuprofile`);
  }
  const table = (title, map) => {
    console.log(`\n${title}`);
    for (const [key, us] of top(map, TOP)) console.log(`${perEvent(us)}  ${key}`);
  };
  for (const { id, a } of analysed) {
    console.log(`\n=== ${id} ===`);
    if (id === OURS) {
      table("µs/event by package (self time; ours = our own source)", a.byPackage);
      table("µs/event by module (self time)", a.byModule);
      table("µs/event by owner (innermost frame of our code: its own time plus the library and native calls it made)", a.byOwner);
    }
    table("µs/event by function (self time)", a.byFunction);
  }
} finally {
  await mf.dispose();
  rmSync(persist, { recursive: true, force: true });
}
