import { spawn } from "node:child_process";
import path from "node:path";
import { describe, expect, inject, it } from "vitest";
import { cli, until } from "./helpers";

/**
 * Ctrl-C on `tail --follow` run as the README runs it — `npx eventline …` on a terminal — is a clean
 * stop: exit 0, no stack trace. The terminal is a pseudo-terminal from util-linux `script`, so Ctrl-C
 * is a key typed on it, and the terminal's line discipline decides what becomes of it, as in a shell:
 * with a SIGINT to the whole foreground group, npx's /bin/sh died of it and npx exited 130.
 */

const root = path.resolve(import.meta.dirname, "../..");

/** The head of a partition of "events", through the API. */
async function head(partition: number): Promise<number> {
  const res = await fetch(`${inject("eventlineUrl")}/v1/topics/events`, {
    headers: { authorization: `Bearer ${inject("eventlineToken")}` },
  });
  const body = (await res.json()) as { partitionStats: { partition: number; head: number }[] };
  return body.partitionStats.find((p) => p.partition === partition)?.head ?? 0;
}

/** Runs `command` on a pseudo-terminal; `type` writes keys to it. Resolves with script's (= the command's) exit. */
function onTerminal(command: string) {
  const env = { ...process.env, EVENTLINE_URL: inject("eventlineUrl"), EVENTLINE_TOKEN: inject("eventlineToken") };
  // -q: no banner; -e: exit with the command's status; -c: the command; /dev/null: no typescript file.
  const child = spawn("script", ["-qec", command, "/dev/null"], { cwd: root, env, stdio: ["pipe", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (c: Buffer) => {
    output += c.toString("utf8");
  });
  child.stderr.on("data", (c: Buffer) => {
    output += c.toString("utf8");
  });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal }));
  });
  return { output: () => output, type: (keys: string) => child.stdin.write(keys), done, child };
}

describe("Ctrl-C on a terminal", () => {
  it("`npx eventline tail --follow` exits 0 without a stack trace", async () => {
    const run = Math.random().toString(36).slice(2, 10);
    const from = (await head(3)) + 1;
    // Node ≥ 22.12 for the CLI, as npm scripts run it: the Node running the tests first on the PATH.
    const tail = onTerminal(
      `PATH=${path.dirname(process.execPath)}:$PATH npx --no-install eventline tail events --partition 3 --follow --interval 100 --from ${from}`,
    );
    try {
      // Following: an event published after the tail began shows up (subject alice: partition 3).
      const id = `interrupt-${run}`;
      expect((await cli(["publish", "events", "--type", "cli.test.interrupt", "--subject", "alice", "--id", id])).code).toBe(0);
      await until(() => tail.output().includes(id) || tail.child.exitCode !== null, "the followed event", 30_000);
      expect(tail.output()).toContain(id);
      tail.type("\x03");
      const exit = await tail.done;
      expect(exit).toEqual({ code: 0, signal: null });
      expect(tail.output()).not.toMatch(/\n\s+at |Error|ERR!/);
    } finally {
      tail.child.kill("SIGKILL");
    }
  });
});
