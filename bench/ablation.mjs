#!/usr/bin/env node
// `npm run bench:ablation [-- --rounds N --seconds S --json]`: how far the ingest ratios move when
// the platform's observability and admission features are switched off, to tell which costs the
// issue-2 targets (single ≥ 0.8, batch ≥ 0.7 of the bare durable path) could still come from.
//
// Every variant runs the bundle `wrangler deploy` would upload; features are removed by switches
// the platform supports (EVENTLINE_METRICS=off, no RATE_LIMIT binding) or, where there is none, by a
// named patch of the built bundle that fails loudly when its text is no longer found. Variants and
// the bare baseline share one workerd and are measured in interleaved rounds (A B C A B C…), so
// drift on this noisy machine hits them alike. A diagnostic, not a product figure: the figures to
// compare against targets come from `npm run bench`.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Miniflare } from "miniflare";
import { parse } from "smol-toml";
import { BENCH_ADMIN_KEY, BENCH_KEKS } from "./auth.mjs";
import { childPids, cpuSeconds } from "./cpu.mjs";
import { BATCH, batchJson, eventJson, load, STRUCTURED } from "./load.mjs";
import { buildWorkers } from "./stack.mjs";

const { values: opts } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "5" },
    json: { type: "boolean", default: false },
  },
});
const rounds = Number(opts.rounds);
const seconds = Number(opts.seconds);
if (!(rounds >= 1 && seconds > 0)) {
  console.error("usage: npm run bench:ablation -- [--rounds N] [--seconds S] [--json]");
  process.exit(2);
}
const say = opts.json ? () => {} : (line) => console.log(line);

/** Patches of the built bundle: [what, pattern, replacement]. */
const PATCHES = {
  logs: ["structured logs (the logger's sink drops every line)", /sink = \(l\) => console\.log\(l\)/, "sink = (l) => {}"],
  doValidation: ["the partition's check of its append input", /parseArgs\(appendInputSchema, (\w+), "append input"\)/, "$1"],
};

/** Each variant: what it removes, its bundle patches, EVENTLINE_METRICS and whether RATE_LIMIT is bound. */
const VARIANTS = [
  { name: "platform", removes: "nothing (as `npm run bench`)", patches: [], metrics: "on", rateLimit: true },
  { name: "no-logs", removes: PATCHES.logs[0], patches: ["logs"], metrics: "on", rateLimit: true },
  {
    name: "stripped",
    removes: "logs, metrics (EVENTLINE_METRICS=off), the rate-limit check (no binding), the partition's input check",
    patches: ["logs", "doValidation"],
    metrics: "off",
    rateLimit: false,
  },
];

function patched(code, names) {
  for (const name of names) {
    const [what, pattern, replacement] = PATCHES[name];
    if (!pattern.test(code)) throw new Error(`patch "${name}" (${what}) no longer applies: ${pattern} is not in the bundle`);
    code = code.replace(pattern, replacement);
  }
  return code;
}

const manifest = (file, contents) => ({
  mainModule: path.basename(file),
  modulesRoot: path.dirname(file),
  modules: { [path.basename(file)]: { type: "esm", contents } },
});

const bundles = await buildWorkers();
const platformCode = readFileSync(bundles.platform, "utf8");
const wrangler = parse(readFileSync(path.join(import.meta.dirname, "..", "wrangler.toml"), "utf8"));
const objects = wrangler.durable_objects?.bindings ?? [];
const direct = { unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }], unsafeRegisterWorker: false };

const workers = VARIANTS.map((v) => ({
  config: {
    name: v.name,
    compatibilityDate: "2026-11-01",
    manifest: manifest(bundles.platform, patched(platformCode, v.patches)),
    env: {
      ...Object.fromEntries(objects.map((o) => [o.name, { type: "durable-object", worker: v.name, exportName: o.class_name }])),
      ...Object.fromEntries((wrangler.r2_buckets ?? []).map((b) => [b.binding, { type: "r2", name: `${b.bucket_name}-${v.name}` }])),
      DB: { type: "d1", id: "DB" },
      ...Object.fromEntries((wrangler.queues?.producers ?? []).map((p) => [p.binding, { type: "queue", name: p.queue }])),
      EVENTLINE_AUTH: { type: "text", value: "required" },
      EVENTLINE_METRICS: { type: "text", value: v.metrics },
      EVENTLINE_ADMIN_KEY: { type: "text", value: BENCH_ADMIN_KEY },
      EVENTLINE_KEKS: { type: "text", value: BENCH_KEKS },
      ...(v.rateLimit && { RATE_LIMIT: { type: "worker", worker: "ratelimit", exportName: "RateLimit" } }),
    },
    exports: Object.fromEntries(objects.map((o) => [o.class_name, { type: "durable-object", storage: "sqlite" }])),
  },
  dev: direct,
}));
workers.push(
  {
    config: {
      name: "baseline",
      compatibilityDate: "2026-11-01",
      manifest: manifest(bundles.baseline, readFileSync(bundles.baseline, "utf8")),
      env: { BARE_LOG: { type: "durable-object", worker: "baseline", exportName: "BareLog" } },
      exports: { BareLog: { type: "durable-object", storage: "sqlite" } },
    },
    dev: direct,
  },
  {
    config: {
      name: "ratelimit",
      compatibilityDate: "2026-11-01",
      manifest: manifest(
        path.join(import.meta.dirname, "ratelimit-worker.js"),
        readFileSync(path.join(import.meta.dirname, "ratelimit-worker.js"), "utf8"),
      ),
      env: { LIMIT: { type: "text", value: "100000000" }, PERIOD: { type: "text", value: "10" } },
    },
  },
);

const persist = mkdtempSync(path.join(os.tmpdir(), "eventline-ablation-"));
const mf = new Miniflare({
  host: "127.0.0.1",
  port: 0,
  logRequests: false,
  enableDevRegistry: false,
  telemetry: { enabled: false },
  resourcePersistencePath: persist,
  handleStructuredLogs: () => {},
  workers,
});
try {
  await mf.ready;
  const names = [...VARIANTS.map((v) => v.name), "baseline"];
  const urls = Object.fromEntries(await Promise.all(names.map(async (n) => [n, (await mf.unsafeGetDirectURL(n)).href])));
  const pids = () => childPids(process.pid);

  const scenarios = {
    single: { contentType: STRUCTURED, perRequest: 1, body: () => eventJson("bench"), bare: "/one" },
    batch: { contentType: BATCH, perRequest: 100, body: () => batchJson("bench", 100), bare: "/batch" },
  };
  const results = {};
  for (const [scenario, s] of Object.entries(scenarios)) {
    const run = (name, duration) =>
      load({
        url: new URL(name === "baseline" ? s.bare : "/v1/topics/orders/events", urls[name]).href,
        contentType: s.contentType,
        makeBody: s.body,
        connections: 16,
        duration,
      });
    say(`${scenario}: warming up…`);
    for (const name of names) await run(name, 2);
    const samples = Object.fromEntries(names.map((n) => [n, { perSec: [], cpuUs: [] }]));
    for (let round = 1; round <= rounds; round++) {
      for (const name of names) {
        const before = cpuSeconds(pids());
        const r = await run(name, seconds);
        if (r.non2xx > 0 || r.errors > 0)
          throw new Error(`${scenario}/${name}: ${r.non2xx} non-2xx, ${r.errors} errors ${JSON.stringify(r.statusCodes)}`);
        const events = r.ok * s.perRequest;
        samples[name].perSec.push(r.reqPerSec * s.perRequest);
        samples[name].cpuUs.push(((cpuSeconds(pids()) - before) * 1e6) / events);
      }
      say(`  round ${round}/${rounds} done`);
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const base = { perSec: median(samples.baseline.perSec), cpuUs: median(samples.baseline.cpuUs) };
    results[scenario] = names.map((name) => {
      const perSec = median(samples[name].perSec);
      const cpuUs = median(samples[name].cpuUs);
      return {
        variant: name,
        removes: VARIANTS.find((v) => v.name === name)?.removes ?? "(the bare durable path)",
        eventsPerSec: Math.round(perSec),
        ratio: Math.round((perSec / base.perSec) * 100) / 100,
        cpuUsPerEvent: Math.round(cpuUs),
        cpuRatio: Math.round((base.cpuUs / cpuUs) * 100) / 100,
        runs: samples[name].perSec.map(Math.round),
      };
    });
  }

  if (opts.json) {
    console.log(JSON.stringify({ rounds, seconds, results }, null, 2));
  } else {
    for (const [scenario, rows] of Object.entries(results)) {
      say(`\n${scenario} (median of ${rounds} × ${seconds} s; ratio = events/s ÷ baseline; CPU ratio = baseline µs ÷ variant µs)`);
      say("variant    events/s  ratio  CPU µs/event  CPU ratio  removes");
      for (const r of rows) {
        say(
          `${r.variant.padEnd(10)} ${String(r.eventsPerSec).padStart(8)}  ${r.ratio.toFixed(2).padStart(5)}  ${String(r.cpuUsPerEvent).padStart(12)}  ${r.cpuRatio.toFixed(2).padStart(9)}  ${r.removes}`,
        );
      }
    }
  }
} finally {
  await mf.dispose();
  rmSync(persist, { recursive: true, force: true });
}
