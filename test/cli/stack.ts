import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { freePort, stopProcessGroup } from "../../scripts/processes.mjs";

export { freePort };

/**
 * Global setup of the CLI tests: the real local stack, as `npm start` runs it (without the
 * example consumer Worker), on a free port with its state in a temporary directory. Tests get
 * its base URL with `inject("eventlineUrl")`. Tests that need a stack of their own (the docs'
 * examples, which assume a fresh one) call `startStack`.
 */

declare module "vitest" {
  interface ProvidedContext {
    eventlineUrl: string;
    /** The stack's admin API key (the CLI gets it as EVENTLINE_TOKEN). */
    eventlineToken: string;
  }
}

const root = path.resolve(import.meta.dirname, "../..");
const bin = (name: string) => path.join(root, "node_modules", ".bin", name);
// wrangler needs Node ≥ 22.12: put the Node running the tests (node_modules/.bin/node under npm) first.
const env = {
  ...process.env,
  PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ""}`,
  WRANGLER_SEND_METRICS: "false",
};

async function waitForHealth(url: string, dev: ChildProcess, output: () => string, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (dev.exitCode !== null || dev.signalCode !== null)
      throw new Error(`wrangler dev exited (${dev.exitCode ?? dev.signalCode}):\n${output()}`);
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`the local stack did not answer ${url}/health within ${timeoutMs / 1000} s:\n${output()}`);
}

export interface Stack {
  url: string;
  /** The stack's admin API key. */
  token: string;
  /** Ends wrangler and its workerd, and removes the state directory (unless the caller gave it). */
  stop: () => Promise<void>;
}

/**
 * Starts the real local stack, as `npm start` runs it, on a free port with its state in a new
 * temporary directory: D1 migrations applied, fresh secrets given as --var (they win over any
 * developer's .dev.vars), loopback webhook targets allowed as `npm start` allows them.
 * `configs` are the wrangler configs run together (the platform's first); `vars` more --var values;
 * `identity` (newStackIdentity) restarts a stack on the state, port and secrets it had.
 */
/** A stack that outlives a restart: same state directory, port and secrets (the caller removes the directory). */
export interface StackIdentity {
  state: string;
  port: number;
  token: string;
  keks: string;
}

export async function newStackIdentity(): Promise<StackIdentity> {
  return {
    state: await mkdtemp(path.join(os.tmpdir(), "eventline-cli-")),
    port: await freePort(),
    token: `evl_clitestadmin_${randomBytes(32).toString("base64url")}`,
    keks: `v1:${randomBytes(32).toString("base64")}`,
  };
}

export async function startStack(
  configs: string[] = ["wrangler.toml"],
  vars: Record<string, string> = {},
  identity?: StackIdentity,
): Promise<Stack> {
  const own = identity === undefined;
  const { state, port, token, keks } = identity ?? (await newStackIdentity());
  const migrate = spawnSync(bin("wrangler"), ["d1", "migrations", "apply", "DB", "--local", "--persist-to", state], {
    cwd: root,
    env,
    encoding: "utf8",
  });
  if (migrate.status !== 0) throw new Error(`wrangler d1 migrations apply failed:\n${migrate.stdout}\n${migrate.stderr}`);

  const url = `http://127.0.0.1:${port}`;
  const args = ["dev", ...configs.flatMap((c) => ["-c", c]), "--port", String(port), "--persist-to", state, "--ip", "127.0.0.1"];
  // detached: its own process group, so stopping ends wrangler and the workerd it started.
  const dev = spawn(
    bin("wrangler"),
    [
      ...args,
      "--var",
      `EVENTLINE_ADMIN_KEY:${token}`,
      "--var",
      `EVENTLINE_KEKS:${keks}`,
      "--var",
      "EVENTLINE_WEBHOOK_ALLOW:loopback",
      ...Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
    ],
    {
      cwd: root,
      env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let log = "";
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString("utf8")).slice(-20_000);
  };
  dev.stdout?.on("data", keep);
  dev.stderr?.on("data", keep);
  const teardown = async () => {
    await stopProcessGroup(dev);
    if (own) await rm(state, { recursive: true, force: true });
  };
  try {
    await waitForHealth(url, dev, () => log);
  } catch (err) {
    await teardown();
    throw err;
  }
  return { url, token, stop: teardown };
}

/** The platform Worker alone (without the example consumer Worker), shared by every test file. */
export default async function setup(project: TestProject) {
  const stack = await startStack();
  project.provide("eventlineUrl", stack.url);
  project.provide("eventlineToken", stack.token);
  return stack.stop;
}
