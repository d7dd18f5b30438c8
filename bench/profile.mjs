#!/usr/bin/env node
// `npm run bench:profile -- [single|batch] [seconds]`: a V8 CPU profile of the platform's isolate
// (Worker and Durable Objects) while it ingests, taken through workerd's inspector; `deliver
// [events]` profiles delivery instead: events published to `events` as fast as ingest takes them
// (as bench/e2e.mjs does) until the `activity` consumer has applied them all, so the relay, the
// queue consumer and its D1 settling are in the profile. Prints the
// functions with the most self time and writes bench/results/profile-<scenario>.cpuprofile
// (open it in Chrome DevTools → Performance, or VS Code). For finding where ingest time goes;
// the figures to compare against targets come from `npm run bench`.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { publish } from "./e2e.mjs";
import { subscriptionStatus, waitHandled } from "./handled.mjs";
import { BATCH, batchJson, eventJson, load, STRUCTURED } from "./load.mjs";
import { start } from "./server.mjs";
import { buildWorkers } from "./stack.mjs";

const scenario = process.argv[2] ?? "single";
const seconds = Number(process.argv[3] ?? (scenario === "deliver" ? 10_000 : 8));
if (!["single", "batch", "deliver"].includes(scenario) || !(seconds > 0)) {
  console.error("usage: npm run bench:profile -- [single|batch] [seconds] | deliver [events]");
  process.exit(2);
}
const INSPECTOR_PORT = Number(process.env.BENCH_INSPECTOR_PORT ?? 9329);

/** A minimal Chrome DevTools Protocol client over Node's WebSocket. */
async function connect(url) {
  // Miniflare's inspector proxy only accepts local origins (undici's WebSocket takes headers).
  const ws = new WebSocket(url, { headers: { origin: "http://localhost" } });
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

/** Self time per function (name + file:line), largest first, as shares of all samples. */
function topFunctions(profile, n) {
  const byNode = new Map(profile.nodes.map((node) => [node.id, node]));
  const counts = new Map();
  for (const id of profile.samples) counts.set(id, (counts.get(id) ?? 0) + 1);
  const total = profile.samples.length;
  const byFunction = new Map();
  for (const [id, count] of counts) {
    const { functionName, url, lineNumber } = byNode.get(id).callFrame;
    const key = `${functionName || "(anonymous)"} ${url ? `${path.basename(url)}:${lineNumber + 1}` : ""}`.trim();
    byFunction.set(key, (byFunction.get(key) ?? 0) + count);
  }
  return [...byFunction]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([fn, count]) => ({ share: count / total, fn }));
}

const persist = mkdtempSync(path.join(os.tmpdir(), "eventline-profile-"));
const bundles = await buildWorkers();
const { mf, urls } = await start({ ...bundles, persist, inspectorPort: INSPECTOR_PORT });
try {
  const targets = await (await fetch(`http://127.0.0.1:${INSPECTOR_PORT}/json/list`)).json();
  const target = targets.find((t) => t.id.endsWith("-platform"));
  if (target === undefined) throw new Error("the inspector lists no targets");
  const cdp = await connect(target.webSocketDebuggerUrl);
  await cdp.send("Profiler.enable");
  await cdp.send("Profiler.setSamplingInterval", { interval: 100 });

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
    });
    return { reqPerSec: (series.at(-1)[1] / (Date.now() - started)) * 1000, non2xx: 0 };
  };
  const run = (duration) =>
    scenario === "deliver"
      ? deliver(duration)
      : scenario === "single"
        ? load({ url, contentType: STRUCTURED, makeBody: () => eventJson("bench"), connections: 16, duration })
        : load({ url, contentType: BATCH, makeBody: () => batchJson("bench", 100), connections: 16, duration });
  await run(scenario === "deliver" ? 500 : 2); // warm-up: JIT, the Durable Objects' first load
  await cdp.send("Profiler.start");
  const result = await run(seconds);
  const { profile } = await cdp.send("Profiler.stop");
  cdp.close();

  const out = path.join(import.meta.dirname, "results", `profile-${scenario}.cpuprofile`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(profile));
  const perSecond = scenario === "batch" ? result.reqPerSec * 100 : result.reqPerSec;
  const over = scenario === "deliver" ? `${seconds} events published until handled` : `${seconds} s`;
  console.log(`${scenario}: ${perSecond.toFixed(0)} events/s over ${over} (profiling slows it); ${result.non2xx} non-2xx`);
  console.log(`profile of "${target.title}" → ${path.relative(process.cwd(), out)}\n`);
  console.log("self time  function");
  for (const { share, fn } of topFunctions(profile, Number(process.env.BENCH_PROFILE_TOP ?? 40))) {
    console.log(`${(share * 100).toFixed(1).padStart(8)}%  ${fn}`);
  }
} finally {
  await mf.dispose();
  rmSync(persist, { recursive: true, force: true });
}
