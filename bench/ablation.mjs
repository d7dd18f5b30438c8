#!/usr/bin/env node
// `npm run bench:ablation [-- --rounds N --seconds S --json]`: how far the ingest ratios move when
// the platform's observability and admission features are switched off, to tell which costs the
// issue-2 targets (single ≥ 0.8, batch ≥ 0.7 of the bare durable path) could still come from.
//
// Every variant runs the bundle `wrangler deploy` would upload; features are removed by switches
// the platform supports (EVENTLINE_METRICS=off, no RATE_LIMIT binding) or, where there is none, by a
// named patch of the built bundle that must match exactly once (else the run stops). The variants
// run in bench/server.mjs's workerd beside the platform and the bare baseline exactly as
// `npm run bench` starts them (Miniflare in a child process, so its log handling never shares a
// thread with the load generator), and are measured in interleaved rounds (A B C A B C…), so drift
// on this noisy machine hits them alike. A diagnostic, not a product figure: the figures to compare
// against targets come from `npm run bench`.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { childPids, cpuSeconds } from "./cpu.mjs";
import { BATCH, batchJson, eventJson, load, STRUCTURED } from "./load.mjs";
import { buildWorkers, startServer, stopServer } from "./stack.mjs";

const { values: opts } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "6" },
    json: { type: "boolean", default: false },
  },
});
const rounds = Number(opts.rounds);
const seconds = Number(opts.seconds);
if (!(rounds >= 1 && seconds > 0)) {
  console.error("usage: npm run bench:ablation -- [--rounds N] [--seconds S] [--json]");
  process.exit(2);
}
const say = (line) => console.log(line);
/** Progress goes to stderr, so `--json` output stays one document. */
const progress = (line) => console.error(line);

/** Patches of the built bundle: [what, pattern, replacement]. */
const PATCHES = {
  logs: [
    "structured logs (the logger's write returns before building the line)",
    /const write = (\/\* @__PURE__ \*\/ )?__name\(\(level, msg, fields\) => \{/,
    "$& return;",
  ],
  doValidation: ["the partition's check of its append input", /parseAppendInput\((\w+)\)/, "$1"],
};

/**
 * Each variant: what it removes, its bundle patches, EVENTLINE_METRICS and whether RATE_LIMIT is
 * bound. `platform` is server.mjs's own platform Worker, the one `npm run bench` measures.
 */
const VARIANTS = [
  { name: "platform", removes: "nothing (the Worker `npm run bench` measures)" },
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
    const found = code.match(new RegExp(pattern.source, "g"))?.length ?? 0;
    if (found !== 1) throw new Error(`patch "${name}" (${what}) must match the bundle once; ${pattern} matches ${found} times`);
    code = code.replace(pattern, replacement);
  }
  return code;
}

const bundles = await buildWorkers();
const platformCode = readFileSync(bundles.platform, "utf8");
const variants = VARIANTS.filter((v) => v.patches !== undefined).map((v) => ({
  name: `ablation-${v.name}`,
  code: patched(platformCode, v.patches),
  metrics: v.metrics,
  rateLimit: v.rateLimit,
}));
const persist = mkdtempSync(path.join(os.tmpdir(), "eventline-ablation-"));
const server = await startServer(bundles, persist, { variants });
try {
  const urls = {
    ...Object.fromEntries(VARIANTS.map((v) => [v.name, server.urls.variants[`ablation-${v.name}`] ?? server.urls.platform])),
    baseline: server.urls.baseline,
  };
  const names = Object.keys(urls);
  const workerd = childPids(server.child.pid);
  const cpu = () => {
    const seconds = cpuSeconds(workerd);
    if (seconds === null) throw new Error("cannot read workerd's CPU time (/proc): the ablation needs Linux");
    return seconds;
  };

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
    progress(`${scenario}: warming up…`);
    for (const name of names) await run(name, 2);
    const samples = Object.fromEntries(names.map((n) => [n, { perSec: [], cpuUs: [] }]));
    for (let round = 1; round <= rounds; round++) {
      for (const name of names) {
        // A moment for what the previous window left running (archive passes) to finish outside this one.
        await new Promise((resolve) => setTimeout(resolve, 500));
        const before = cpu();
        const r = await run(name, seconds);
        const used = cpu() - before;
        if (r.non2xx > 0 || r.errors > 0 || r.ok === 0) {
          throw new Error(`${scenario}/${name}: ${r.ok} ok, ${r.non2xx} non-2xx, ${r.errors} errors ${JSON.stringify(r.statusCodes)}`);
        }
        const events = r.ok * s.perRequest;
        samples[name].perSec.push(r.reqPerSec * s.perRequest);
        samples[name].cpuUs.push((used * 1e6) / events);
      }
      progress(`  ${scenario}: round ${round}/${rounds} done`);
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
      say("variant    events/s  ratio  CPU µs/event  CPU ratio  runs (events/s)       removes");
      for (const r of rows) {
        say(
          `${r.variant.padEnd(10)} ${String(r.eventsPerSec).padStart(8)}  ${r.ratio.toFixed(2).padStart(5)}  ${String(r.cpuUsPerEvent).padStart(12)}  ${r.cpuRatio.toFixed(2).padStart(9)}  ${r.runs.join(" / ").padEnd(20)}  ${r.removes}`,
        );
      }
    }
  }
} finally {
  await stopServer(server.child);
  rmSync(persist, { recursive: true, force: true });
}
