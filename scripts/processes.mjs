// Child-process helpers shared by scripts/readme-examples.mjs and the CLI tests' stack (test/cli/stack.ts).
import { createServer } from "node:net";

/**
 * A TCP port free on 127.0.0.1 right now.
 * @returns {Promise<number>}
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Ends the process group of `child`, spawned `detached` (so wrangler and the workerd it started go
 * too): SIGTERM, SIGKILL after 5 s if it has not exited, then SIGKILL for whatever of the group
 * outlived it. Does nothing if the child has already ended.
 * @param {import("node:child_process").ChildProcess} child
 * @returns {Promise<void>}
 */
export async function stopProcessGroup(child) {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const group = -child.pid;
  const signal = (/** @type {NodeJS.Signals} */ s) => {
    try {
      process.kill(group, s);
    } catch {}
  };
  signal("SIGTERM");
  const timer = setTimeout(() => signal("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
  signal("SIGKILL");
}
