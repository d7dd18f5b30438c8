#!/usr/bin/env node
// `npm run bench:cpu [-- --rounds N --seconds S --only single|batch]`: workerd CPU µs per event of
// the platform's ingest beside the bare durable path (bench/baseline-worker.js), single events and
// batches of 100, in interleaved runs (platform, baseline, platform, …) in one workerd. CPU per
// event comes from /proc (all of workerd's threads), unprofiled; it is much steadier than req/s on
// a shared machine, and the minimum over the runs the least disturbed. For comparing revisions
// (run it in each checkout): the figures to hold against targets come from `npm run bench`.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { childPids, cpuSeconds } from "./cpu.mjs";
import { BATCH, batchJson, eventJson, load, STRUCTURED } from "./load.mjs";
import { start } from "./server.mjs";
import { buildWorkers } from "./stack.mjs";

const USAGE = "usage: npm run bench:cpu -- [--rounds N] [--seconds S] [--only single|batch]";
let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      rounds: { type: "string", default: "3" },
      seconds: { type: "string", default: "5" },
      only: { type: "string" },
      help: { type: "boolean", default: false },
    },
  }));
} catch (err) {
  console.error(`${err.message}\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  console.log(USAGE);
  process.exit(0);
}
const rounds = Number(opts.rounds);
const seconds = Number(opts.seconds);
if (!(rounds >= 1 && seconds > 0) || (opts.only !== undefined && !["single", "batch"].includes(opts.only))) {
  console.error(USAGE);
  process.exit(2);
}

const persist = mkdtempSync(path.join(os.tmpdir(), "eventline-cpu-"));
const bundles = await buildWorkers();
const { mf, urls } = await start({ ...bundles, persist });
const ingest = new URL("/v1/topics/orders/events", urls.platform).href;
const scenarios = [
  ...(opts.only === "batch"
    ? []
    : [
        { name: "single: platform", url: ingest, contentType: STRUCTURED, body: () => eventJson("bench"), events: 1 },
        {
          name: "single: baseline",
          url: new URL("/one", urls.baseline).href,
          contentType: STRUCTURED,
          body: () => eventJson("bench"),
          events: 1,
        },
      ]),
  ...(opts.only === "single"
    ? []
    : [
        { name: "batch: platform", url: ingest, contentType: BATCH, body: () => batchJson("bench", 100), events: 100 },
        {
          name: "batch: baseline",
          url: new URL("/batch", urls.baseline).href,
          contentType: BATCH,
          body: () => batchJson("bench", 100),
          events: 100,
        },
      ]),
];
const cpu = new Map(scenarios.map((s) => [s.name, []]));
try {
  const run = (s, duration) => load({ url: s.url, contentType: s.contentType, makeBody: s.body, connections: 16, duration });
  for (const s of scenarios) await run(s, 2); // warm-up: JIT, the objects' first load
  for (let r = 0; r < rounds; r++) {
    for (const s of scenarios) {
      const pids = childPids(process.pid);
      const before = cpuSeconds(pids);
      const result = await run(s, seconds);
      const after = cpuSeconds(pids);
      if (result.non2xx > 0) throw new Error(`${s.name}: ${result.non2xx} non-2xx responses ${JSON.stringify(result.statusCodes)}`);
      if (before !== null && after !== null) cpu.get(s.name).push(((after - before) * 1e6) / (result.ok * s.events));
    }
  }
} finally {
  await mf.dispose();
  rmSync(persist, { recursive: true, force: true });
}
const min = (xs) => Math.min(...xs);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
console.log("workerd CPU µs/event: min, median (runs)");
for (const [name, xs] of cpu)
  console.log(`${name.padEnd(18)} ${min(xs).toFixed(1)}  ${median(xs).toFixed(1)}  (${xs.map((x) => x.toFixed(1)).join(" / ")})`);
for (const kind of ["single", "batch"]) {
  const p = cpu.get(`${kind}: platform`);
  const b = cpu.get(`${kind}: baseline`);
  if (p?.length && b?.length) console.log(`${kind}: baseline ÷ platform CPU/event ${(min(b) / min(p)).toFixed(2)} (minima)`);
}
