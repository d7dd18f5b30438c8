// Building the two Workers and running them (bench/server.mjs in a child process).
import { fork, spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import * as esbuild from "esbuild";

const bench = import.meta.dirname;
const root = path.resolve(bench, "..");
const build = path.join(bench, ".build");

/** `wrangler deploy --dry-run` into `out` (extra arguments: `--alias`). */
function wranglerBuild(out, extra = []) {
  const r = spawnSync(path.join(root, "node_modules", ".bin", "wrangler"), ["deploy", "--dry-run", "--outdir", out, ...extra], {
    cwd: root,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`wrangler deploy --dry-run failed (exit ${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return path.join(out, "index.js");
}

/** Every way the platform's sources spell their import of eventline.config.ts ("../../eventline.config"…). */
export function configImports(dirs = ["workers", "durable-objects", "shared", "sdk"]) {
  const found = new Set();
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (/\.(ts|mts|js|mjs)$/.test(entry.name))
        for (const m of readFileSync(file, "utf8").matchAll(/from\s+["']([^"']*\/eventline\.config(?:\.ts|\.js)?)["']/g)) found.add(m[1]);
    }
  };
  for (const dir of dirs) walk(path.join(root, dir));
  return [...found].sort();
}

/**
 * The platform built with bench/processor-config.ts in place of eventline.config.ts (wrangler's
 * `--alias` for each spelling of its import): the shipped config plus the bench's processor, its
 * topics and nothing else. Checked: the bundle must declare the bench's processor.
 */
function buildProcessorPlatform(out) {
  const aliases = configImports().flatMap((spec) => ["--alias", `${spec}:./bench/processor-config.ts`]);
  if (aliases.length === 0) throw new Error("no import of eventline.config found in the platform's sources");
  const bundle = wranglerBuild(out, aliases);
  if (!readFileSync(bundle, "utf8").includes('"bench-count-per-key"'))
    throw new Error(`${bundle}: the bench's processor config was not compiled in (wrangler --alias)`);
  return bundle;
}

/**
 * The platform exactly as `wrangler deploy` would upload it, and the bare baseline; with
 * `processors`, also the platform with the bench's processor config (bench/processor-config.ts).
 */
export async function buildWorkers({ processors = false } = {}) {
  rmSync(build, { recursive: true, force: true });
  mkdirSync(build, { recursive: true });

  const platform = wranglerBuild(path.join(build, "platform"));

  const baseline = path.join(build, "bare", "index.js");
  await esbuild.build({
    entryPoints: [path.join(bench, "baseline-worker.js")],
    outfile: baseline,
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    external: ["cloudflare:*"],
    logLevel: "warning",
  });
  return { platform, baseline, ...(processors ? { processors: buildProcessorPlatform(path.join(build, "processors")) } : {}) };
}

/** Which code was measured: HEAD, and whether the work tree differed from it. */
export function revision() {
  // --no-optional-locks: a read must never take the index lock others may be committing through.
  const git = (...args) => spawnSync("git", ["--no-optional-locks", ...args], { cwd: root, encoding: "utf8" });
  const head = git("rev-parse", "--short", "HEAD");
  if (head.status !== 0) return null;
  const dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results");
  return { commit: head.stdout.trim(), dirty: dirty.stdout.trim() !== "" };
}

export const versionOf = (pkg) => JSON.parse(readFileSync(path.join(root, "node_modules", pkg, "package.json"), "utf8")).version;

/**
 * Starts bench/server.mjs; resolves with the child and the Workers' loopback URLs. `extra` goes to
 * server.mjs's start() as well (`variants`, bench/ablation.mjs).
 */
export function startServer(bundles, persist, extra = {}) {
  const child = fork(path.join(bench, "server.mjs"), { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`bench server exited early (code ${code})`)));
    child.once("message", (msg) => {
      if (msg.error) reject(new Error(`bench server failed to start:\n${msg.error}`));
      else resolve({ child, urls: msg.ready });
    });
    child.send({ ...bundles, persist, ...extra });
  });
}

/** Runs one SQL query against the platform's D1 database in the server process. */
export function queryD1(child, sql, params = []) {
  const id = Math.random().toString(36).slice(2);
  return new Promise((resolve, reject) => {
    const onMessage = (msg) => {
      if (msg.queryResult?.id !== id) return;
      child.off("message", onMessage);
      if (msg.queryResult.error) reject(new Error(msg.queryResult.error));
      else resolve(msg.queryResult.rows);
    };
    child.on("message", onMessage);
    child.send({ query: { id, sql, params } });
  });
}

/** Disposes Miniflare; resolves with the platform's log-line counts (null if it had to be killed). */
export function stopServer(child) {
  return new Promise((resolve) => {
    if (!child.connected) {
      resolve(null);
      return;
    }
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
