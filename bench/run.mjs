#!/usr/bin/env node
// `npm run bench`: ingest throughput and latency of the platform Worker against a bare Durable
// Object baseline, both under Miniflare on loopback. Not part of `npm test`: numbers depend on
// the machine, so it reports rather than asserts (BENCH_STRICT=1 makes missed targets exit 1).
//
// Knobs (env): BENCH_DURATION s per run (8), BENCH_RUNS (3), BENCH_WARMUP s (3),
// BENCH_CONNECTIONS (16), BENCH_BATCH_SIZE (100). Smoke run: BENCH_DURATION=1 BENCH_RUNS=1 BENCH_WARMUP=0.
import { fork, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as esbuild from "esbuild";
import { BATCH, batchJson, eventJson, keysCoveringPartitions, load, STRUCTURED } from "./load.mjs";
import { machine, markdown, ratio, summarize, textTable } from "./report.mjs";

const root = path.resolve(import.meta.dirname, "..");
const bench = import.meta.dirname;
const build = path.join(bench, ".build");

function intEnv(name, fallback, min) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer ≥ ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

const settings = {
  durationSec: intEnv("BENCH_DURATION", 8, 1),
  runs: intEnv("BENCH_RUNS", 3, 1),
  warmupSec: intEnv("BENCH_WARMUP", 3, 0),
  // Enough concurrency to keep workerd's single JS thread busy without the load generator
  // (same 2 cores) becoming the bottleneck.
  connections: intEnv("BENCH_CONNECTIONS", 16, 1),
  batchSize: intEnv("BENCH_BATCH_SIZE", 100, 1),
  compatibilityDate: "2026-11-01",
};

const TOPIC = "events";
const PARTITIONS = 4;
const INGEST = `/v1/topics/${TOPIC}/events`;
const ONE_KEY = "bench";
const SPREAD_KEYS = keysCoveringPartitions(PARTITIONS);

const versionOf = (pkg) => JSON.parse(readFileSync(path.join(root, "node_modules", pkg, "package.json"), "utf8")).version;

function buildPlatform() {
  const out = path.join(build, "platform");
  const wrangler = path.join(root, "node_modules", ".bin", "wrangler");
  const r = spawnSync(wrangler, ["deploy", "--dry-run", "--outdir", out], {
    cwd: root,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`wrangler deploy --dry-run failed (exit ${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return path.join(out, "index.js");
}

async function buildBaseline() {
  const outfile = path.join(build, "baseline", "index.js");
  await esbuild.build({
    entryPoints: [path.join(bench, "baseline-worker.js")],
    outfile,
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    external: ["cloudflare:*"],
    logLevel: "warning",
  });
  return outfile;
}

/** Starts bench/server.mjs and resolves with it and the Workers' URLs. */
function startServer(bundles, persist) {
  const child = fork(path.join(bench, "server.mjs"), { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`bench server exited early (code ${code})`)));
    child.once("message", (msg) => {
      if (msg.error) reject(new Error(`bench server failed to start:\n${msg.error}`));
      else resolve({ child, urls: msg.ready });
    });
    child.send({ ...bundles, persist });
  });
}

function stopServer(child) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve(null);
    }, 15_000);
    child.removeAllListeners("exit");
    child.once("message", (msg) => {
      clearTimeout(timer);
      resolve(msg.stopped ?? null);
    });
    child.send({ stop: true });
  });
}

async function post(url, contentType, body) {
  const res = await fetch(url, { method: "POST", headers: { "content-type": contentType }, body });
  const text = await res.text();
  if (res.status !== 202) throw new Error(`preflight POST ${url} → ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text);
}

/** Fails fast, with the server's own words, before spending minutes on a broken setup. */
async function preflight(urls) {
  const one = await post(new URL(INGEST, urls.platform), STRUCTURED, eventJson(ONE_KEY));
  if (one.events?.[0]?.duplicate !== false) throw new Error(`preflight: expected a fresh append, got ${JSON.stringify(one)}`);
  const spread = await post(new URL(INGEST, urls.platform), BATCH, `[${SPREAD_KEYS.map((k) => eventJson(k)).join(",")}]`);
  const hit = new Set(spread.events.map((e) => e.partition));
  if (hit.size !== PARTITIONS) throw new Error(`preflight: keys ${SPREAD_KEYS} hit partitions ${[...hit]}, expected all ${PARTITIONS}`);
  await post(new URL("/one", urls.baseline), STRUCTURED, eventJson(ONE_KEY));
  await post(new URL("/batch", urls.baseline), BATCH, batchJson(ONE_KEY, 2));
  return 1 + PARTITIONS;
}

function scenarios(urls) {
  let spread = 0;
  const n = settings.batchSize;
  return {
    ingestSingle: {
      label: "ingest single event, 1 partition",
      target: "platform",
      eventsPerRequest: 1,
      url: new URL(INGEST, urls.platform).href,
      contentType: STRUCTURED,
      makeBody: () => eventJson(ONE_KEY),
    },
    baselineSingle: {
      label: "baseline POST /one",
      target: "baseline",
      eventsPerRequest: 1,
      url: new URL("/one", urls.baseline).href,
      contentType: STRUCTURED,
      makeBody: () => eventJson(ONE_KEY),
    },
    ingestBatch: {
      label: `ingest batch of ${n}, 1 partition`,
      target: "platform",
      eventsPerRequest: n,
      url: new URL(INGEST, urls.platform).href,
      contentType: BATCH,
      makeBody: () => batchJson(ONE_KEY, n),
    },
    baselineBatch: {
      label: `baseline POST /batch (${n} rows)`,
      target: "baseline",
      eventsPerRequest: n,
      url: new URL("/batch", urls.baseline).href,
      contentType: BATCH,
      makeBody: () => batchJson(ONE_KEY, n),
    },
    ingestSpread: {
      label: `ingest single event, ${PARTITIONS} partitions`,
      target: "platform",
      eventsPerRequest: 1,
      url: new URL(INGEST, urls.platform).href,
      contentType: STRUCTURED,
      makeBody: () => eventJson(SPREAD_KEYS[spread++ % PARTITIONS]),
    },
  };
}

function checkHealthy(name, r) {
  const total = r.ok + r.non2xx + r.errors;
  if (r.ok === 0 || r.ok < total / 2) {
    throw new Error(`${name}: only ${r.ok} of ${total} requests got 2xx (status ${JSON.stringify(r.statusCodes)}, errors ${r.errors})`);
  }
}

async function storedEvents(platformUrl) {
  const res = await fetch(new URL(`/v1/topics/${TOPIC}`, platformUrl));
  const body = await res.json();
  return body.partitionStats.reduce((n, p) => n + p.count, 0);
}

async function main() {
  const started = Date.now();
  console.log("Building the platform Worker (wrangler --dry-run) and the baseline (esbuild)…");
  rmSync(build, { recursive: true, force: true });
  mkdirSync(build, { recursive: true });
  const bundles = { platform: buildPlatform(), baseline: await buildBaseline() };

  const persist = mkdtempSync(path.join(os.tmpdir(), "eventline-bench-"));
  let server;
  let logStats = null;
  try {
    server = await startServer(bundles, persist);
    let acknowledged = await preflight(server.urls);
    const all = scenarios(server.urls);
    const load1 = (s, duration) => load({ ...s, connections: settings.connections, duration });

    if (settings.warmupSec > 0) {
      console.log(`Warming up each scenario for ${settings.warmupSec} s…`);
      for (const [name, s] of Object.entries(all)) {
        const r = await load1(s, settings.warmupSec);
        checkHealthy(`${name} (warm-up)`, r);
        if (s.target === "platform") acknowledged += r.ok * s.eventsPerRequest;
      }
    }

    // Runs are interleaved (A B C … A B C …) so drift over time, such as growing tables or a
    // noisy neighbour, lands on every scenario alike instead of biasing the ratios.
    const runs = Object.fromEntries(Object.keys(all).map((k) => [k, []]));
    for (let i = 1; i <= settings.runs; i++) {
      for (const [name, s] of Object.entries(all)) {
        const r = await load1(s, settings.durationSec);
        checkHealthy(name, r);
        if (s.target === "platform") acknowledged += r.ok * s.eventsPerRequest;
        runs[name].push(r);
        const failed = r.non2xx + r.errors ? `, ${r.non2xx} non-2xx, ${r.errors} errors` : "";
        console.log(
          `  run ${i}/${settings.runs}  ${s.label.padEnd(36)} ${Math.round(r.reqPerSec * s.eventsPerRequest)
            .toString()
            .padStart(7)} ${s.eventsPerRequest === 1 ? "req/s" : "ev/s "}  p50 ${r.p50} ms  p99 ${r.p99} ms${failed}`,
        );
      }
    }

    // Every acknowledged event must be stored exactly once; in-flight requests at the end of a
    // run may be stored without being counted, hence "at least".
    const stored = await storedEvents(server.urls.platform);
    const scenarioResults = Object.fromEntries(Object.entries(all).map(([k, s]) => [k, summarize(s, runs[k])]));
    const sr = scenarioResults;
    const results = {
      command: "npm run bench",
      date: new Date().toISOString(),
      machine: machine(),
      settings: {
        ...settings,
        miniflare: versionOf("miniflare"),
        workerd: versionOf("workerd"),
        wrangler: versionOf("wrangler"),
        autocannon: versionOf("autocannon"),
        singlePartitionKey: ONE_KEY,
        spreadPartitionKeys: SPREAD_KEYS,
      },
      scenarios: scenarioResults,
      ratios: [
        ratio("single-event ingest ÷ baseline", sr.ingestSingle, sr.baselineSingle, 0.8),
        ratio("batch ingest ÷ baseline", sr.ingestBatch, sr.baselineBatch, 0.7),
        ratio(`${PARTITIONS} partitions ÷ 1 partition`, sr.ingestSpread, sr.ingestSingle),
      ],
      checks: { acknowledgedEvents: acknowledged, storedEvents: stored, allAcknowledgedStored: stored >= acknowledged },
      elapsedSec: 0,
    };
    logStats = await stopServer(server.child);
    server = undefined;
    results.platformLogLines = logStats;
    results.elapsedSec = Math.round((Date.now() - started) / 1000);

    const outDir = path.join(bench, "results");
    mkdirSync(outDir, { recursive: true });
    writeFileSync(path.join(outDir, "latest.json"), `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(path.join(outDir, "latest.md"), markdown(results));

    console.log(`\n${textTable(results)}`);
    console.log(
      `Stored ${stored} events for ${acknowledged} acknowledged (${results.checks.allAcknowledgedStored ? "ok" : "MISSING EVENTS"}).`,
    );
    if (logStats?.samples.length)
      console.log(`Platform warnings/errors (first ${logStats.samples.length}):\n${logStats.samples.join("\n")}`);
    console.log(`Wrote bench/results/latest.json and latest.md in ${results.elapsedSec} s.`);

    if (!results.checks.allAcknowledgedStored) process.exitCode = 1;
    if (process.env.BENCH_STRICT === "1" && results.ratios.some((r) => r.pass === false)) process.exitCode = 1;
  } finally {
    if (server) await stopServer(server.child);
    rmSync(persist, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`\n✖ bench failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
