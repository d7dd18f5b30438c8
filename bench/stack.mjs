// Building the two Workers and running them (bench/server.mjs in a child process).
import { fork, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import * as esbuild from "esbuild";

const bench = import.meta.dirname;
const root = path.resolve(bench, "..");
const build = path.join(bench, ".build");

/** The platform exactly as `wrangler deploy` would upload it, and the bare baseline. */
export async function buildWorkers() {
  rmSync(build, { recursive: true, force: true });
  mkdirSync(build, { recursive: true });

  const out = path.join(build, "platform");
  const r = spawnSync(path.join(root, "node_modules", ".bin", "wrangler"), ["deploy", "--dry-run", "--outdir", out], {
    cwd: root,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`wrangler deploy --dry-run failed (exit ${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);

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
  return { platform: path.join(out, "index.js"), baseline };
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
