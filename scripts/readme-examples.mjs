#!/usr/bin/env node
// @ts-check
/**
 * `node scripts/readme-examples.mjs [--url URL]`: runs every shell example of README.md, in order,
 * in one bash session (so `export`s carry over), and compares each answer with what the README
 * shows (scripts/readme/steps.mjs). Without --url it first starts a stack of its own the way the
 * README does (`npm start`, scripts/start.mjs) on a free port, never 8787, with its state in a new
 * temporary directory, and stops it at the end. With --url it runs against that stack
 * (EVENTLINE_TOKEN must be set; the examples assume a fresh one: `npm run reset`).
 * Exit 0 when every step answered what the README shows, 1 otherwise. test/cli/readme.test.ts
 * runs it in `npm test`.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { freePort, stopProcessGroup } from "./processes.mjs";
import { problems, readmeSteps } from "./readme/steps.mjs";

const root = path.resolve(import.meta.dirname, "..");
// wrangler and the CLI need Node ≥ 22.12: the Node running this script first on PATH (under npm
// that is node_modules/.bin/node, from the node@22 devDependency).
const env = {
  ...process.env,
  PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ""}`,
  WRANGLER_SEND_METRICS: "false",
};

/** @typedef {import("./readme/steps.mjs").Step} Step */
/** @typedef {{ step: Step, code: number | null, stdout: string, stderr: string, statuses: number[], problems: string[] }} StepResult */

/**
 * `npm start` (scripts/start.mjs) on a free port with its state in a temporary directory; resolves
 * once it printed its banner. `output()` is everything it printed so far.
 * @param {{ timeoutMs?: number }} [options]
 * @returns {Promise<{ url: string, output: () => string, stop: () => Promise<void> }>}
 */
export async function startLocalStack({ timeoutMs = 180_000 } = {}) {
  const state = await mkdtemp(path.join(os.tmpdir(), "eventline-readme-"));
  const port = await freePort();
  // detached: its own process group, so stopping ends start.mjs, wrangler and workerd.
  const child = spawn(process.execPath, ["scripts/start.mjs", "--port", String(port), "--persist-to", state], {
    cwd: root,
    env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (/** @type {Buffer} */ chunk) => {
    output += chunk.toString("utf8");
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const stop = async () => {
    await stopProcessGroup(child);
    await rm(state, { recursive: true, force: true });
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ready = /Eventline is running at (http\S+)/.exec(output);
    if (ready?.[1] !== undefined) return { url: ready[1], output: () => output, stop };
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`npm start did not become ready (${child.exitCode ?? child.signalCode ?? "timed out"}):\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * Runs the README's steps in one bash session against `url` (EVENTLINE_URL; EVENTLINE_TOKEN is
 * whatever the README's own block sets, or the environment's), recording each step's output, exit
 * code and the status of each of its curl calls.
 * @param {{ url: string, readme?: string, timeoutMs?: number }} options
 * @returns {Promise<StepResult[]>}
 */
export async function runReadme({ url, readme = path.join(root, "README.md"), timeoutMs = 240_000 }) {
  const steps = readmeSteps(await readFile(readme, "utf8"));
  const dir = await mkdtemp(path.join(os.tmpdir(), "eventline-readme-run-"));
  try {
    const script = [
      // curl as the README runs it, plus its status recorded per step (calls inside $(…) too).
      'curl() { local s; s=$(command curl --max-time 30 -w "%{http_code}" -o "$D/body" "$@") || { echo 000 >> "$D/status-$STEP"; return 7; }',
      '  echo "$s" >> "$D/status-$STEP"; cat "$D/body"; }',
      ...steps.flatMap((step, n) => [`STEP=${n}`, `{ ${step.command}`, `} > "$D/out-${n}" 2> "$D/err-${n}"; echo $? > "$D/rc-${n}"`]),
    ].join("\n");
    await writeFile(path.join(dir, "readme.sh"), script);
    const bash = spawn("bash", [path.join(dir, "readme.sh")], {
      cwd: root,
      env: { ...env, EVENTLINE_URL: url, D: dir },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    bash.stderr.on("data", (c) => {
      stderr += c.toString("utf8");
    });
    const timer = setTimeout(() => bash.kill("SIGKILL"), timeoutMs);
    await new Promise((resolve, reject) => {
      bash.once("error", reject);
      bash.once("close", resolve);
    });
    clearTimeout(timer);
    const read = (/** @type {string} */ name) => readFile(path.join(dir, name), "utf8").catch(() => undefined);
    /** @type {StepResult[]} */
    const results = [];
    for (const [n, step] of steps.entries()) {
      const rc = await read(`rc-${n}`);
      const run = {
        code: rc === undefined ? null : Number(rc.trim()),
        stdout: (await read(`out-${n}`)) ?? "",
        stderr: (await read(`err-${n}`)) ?? (rc === undefined ? `not run (bash: ${stderr.trim().slice(-300)})` : ""),
        statuses: ((await read(`status-${n}`)) ?? "")
          .split("\n")
          .filter((s) => s.trim() !== "")
          .map(Number),
      };
      results.push({ step, ...run, problems: problems(step, run) });
    }
    return results;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main() {
  const { values } = parseArgs({ options: { url: { type: "string" } } });
  const stack = values.url === undefined ? await startLocalStack() : undefined;
  const url = values.url ?? stack?.url ?? "";
  try {
    console.log(`Running README.md's examples against ${url}`);
    const results = await runReadme({ url });
    for (const r of results) {
      const first = r.step.command.split("\n")[0] ?? "";
      console.log(
        `${r.problems.length === 0 ? "✓" : "✗"} README.md:${r.step.line}  ${first.length > 100 ? `${first.slice(0, 99)}…` : first}`,
      );
      for (const p of r.problems) console.log(`    ${p.replace(/\n/g, "\n    ")}`);
    }
    const failed = results.filter((r) => r.problems.length > 0).length;
    console.log(`\n${results.length - failed} of ${results.length} steps answered what the README shows.`);
    process.exitCode = failed === 0 ? 0 : 1;
  } finally {
    await stack?.stop();
  }
}

if (process.argv[1] === import.meta.filename) await main();
