#!/usr/bin/env node
// @ts-check
// `npm run reset [-- --state DIR]`: wipes the local stack's state (D1, Durable Objects, R2, queues:
// .wrangler/state by default), so the README's examples start from nothing again. Refuses while
// `npm start` is running on that state (its pid file, scripts/start.mjs). Keeps .dev.vars (the
// local admin key and key-encryption key): the same EVENTLINE_TOKEN keeps working.
import { existsSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_STATE, PID_FILE } from "./local-state.mjs";

/** True when a process with this id exists (signal 0 only checks). @param {number} pid */
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return /** @type {NodeJS.ErrnoException} */ (err).code === "EPERM";
  }
}

const { values } = parseArgs({ options: { state: { type: "string" } } });
const root = path.join(import.meta.dirname, "..");
const state = path.resolve(root, values.state ?? DEFAULT_STATE);
const shown = path.relative(process.cwd(), state) || ".";

if (!existsSync(state)) {
  console.log(`Nothing to reset: ${shown} does not exist.`);
  process.exit(0);
}
const pidFile = path.join(state, PID_FILE);
const pid = existsSync(pidFile) ? Number.parseInt(readFileSync(pidFile, "utf8"), 10) : Number.NaN;
if (Number.isSafeInteger(pid) && pid > 0 && alive(pid)) {
  console.error(`✖ npm start is running on ${shown} (pid ${pid}): stop it first (Ctrl-C in its terminal), then run npm run reset again.`);
  process.exit(1);
}
rmSync(state, { recursive: true, force: true });
console.log(`Removed ${shown}: the next npm start begins with empty topics, read models and archive (.dev.vars and its key are kept).`);
