import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, inject } from "vitest";
import { type RunningProcess, startProcess } from "../run-process";

/** Runs `node bin/eventline.mjs` as a child process, with the Node running the tests. */

export const CLI = path.resolve(import.meta.dirname, "../../bin/eventline.mjs");

export interface Options {
  /** Base URL passed as `--url` (default: the test stack's); null passes none. */
  url?: string | null;
  /** Written to stdin, which is then closed. */
  input?: string;
  /** Extra environment variables (EVENTLINE_URL is unset, EVENTLINE_TOKEN is the stack's admin key, otherwise). */
  env?: Record<string, string>;
}

/** Starts the CLI. stdout and stderr are pipes (never a TTY). */
export function start(args: string[], { url = inject("eventlineUrl"), input, env: extra = {} }: Options = {}): RunningProcess {
  const env = { ...process.env };
  delete env.EVENTLINE_URL;
  env.EVENTLINE_TOKEN = inject("eventlineToken");
  return startProcess(process.execPath, [CLI, ...(url === null ? [] : ["--url", url]), ...args], { env: { ...env, ...extra } }, input);
}

/** Runs the CLI to the end. */
export const cli = (args: string[], options?: Options) => start(args, options).done;

/** Waits until `check` is true (polling every 50 ms), or fails after `timeoutMs`. */
export async function until(check: () => boolean, what: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Parses NDJSON output. */
export const ndjson = (text: string): Record<string, unknown>[] =>
  text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>);

const tempDirs: string[] = [];
afterAll(() => Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true }))));

/** A temporary directory, removed after the file's tests. */
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "eventline-cli-test-"));
  tempDirs.push(dir);
  return dir;
}
