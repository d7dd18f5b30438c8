#!/usr/bin/env node
// `npm start [-- [--verbose] wrangler dev args]`: checks the config, applies the local D1
// migrations (quietly, unless they fail), then runs the whole local stack with `wrangler dev`
// (state persists in .wrangler/state, or --persist-to) and prints a short banner once it is ready.
// Quiet by default (scripts/dev-output.mjs); `--verbose` or EVENTLINE_LOG=debug shows every line.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { banner, createOutputFilter } from "./dev-output.mjs";
import { DEFAULT_STATE, PID_FILE } from "./local-state.mjs";

const root = path.join(import.meta.dirname, "..");
const bin = (name) => path.join(root, "node_modules", ".bin", name);

function run(cmd, args) {
  const result = spawnSync(cmd, args, { stdio: "inherit" });
  if (result.status !== 0) {
    console.error(`\n✖ ${path.basename(cmd)} ${args.join(" ")} failed (exit ${result.status ?? result.signal})`);
    process.exit(result.status ?? 1);
  }
}

/**
 * Local secrets: .dev.vars is created from .dev.vars.example on first start, each value
 * "generate" replaced by a fresh random one (an admin API key, a key-encryption key). It is
 * git-ignored and never overwritten.
 */
function ensureDevVars() {
  const root = path.join(import.meta.dirname, "..");
  const target = path.join(root, ".dev.vars");
  if (existsSync(target)) return;
  const generated = {
    EVENTLINE_ADMIN_KEY: () => `evl_localadmin00_${randomBytes(32).toString("base64url")}`,
    EVENTLINE_KEKS: () => `v1:${randomBytes(32).toString("base64")}`,
  };
  const text = readFileSync(path.join(root, ".dev.vars.example"), "utf8").replace(/^([A-Z_]+)=generate$/gm, (line, name) =>
    name in generated ? `${name}=${generated[name]()}` : line,
  );
  writeFileSync(target, text, { mode: 0o600 });
  console.log("Created .dev.vars with a local admin API key (EVENTLINE_ADMIN_KEY) and a key-encryption key.");
  console.log('Use it:  export EVENTLINE_TOKEN=$(sed -n "s/^EVENTLINE_ADMIN_KEY=//p" .dev.vars)\n');
}

/**
 * Settings added to .dev.vars.example after a developer's .dev.vars was created: appended (with
 * their comment) when .dev.vars does not mention them at all, so an existing local stack keeps
 * working as the example describes. A line commented out by hand counts as a choice and stays.
 */
function addNewDevVars() {
  const target = path.join(import.meta.dirname, "..", ".dev.vars");
  const current = readFileSync(target, "utf8");
  const additions = [
    {
      name: "EVENTLINE_WEBHOOK_ALLOW",
      text: '\n# Webhook targets that are not public but allowed: the local stack allows loopback receivers\n# (see .dev.vars.example and docs/security.md "Webhook targets").\nEVENTLINE_WEBHOOK_ALLOW=loopback\n',
    },
    {
      name: "EVENTLINE_CLIENT_IP",
      text: '\n# Every local request is one client address (a local client can send its own cf-connecting-ip;\n# see .dev.vars.example and docs/security.md "Failed authentications and the client address").\nEVENTLINE_CLIENT_IP=local\n',
    },
  ].filter(({ name }) => !new RegExp(`^\\s*#?\\s*${name}=`, "m").test(current));
  for (const { name, text } of additions) {
    appendFileSync(target, `${current.endsWith("\n") ? "" : "\n"}${text}`);
    console.log(`Added ${name} to .dev.vars (${text.trim().split("\n").at(-1)}).`);
  }
}

/** The value of `--name X` / `--name=X` in `args`, or undefined. */
function argValue(args, name) {
  for (const [i, arg] of args.entries()) {
    if (arg === name) return args[i + 1];
    if (arg.startsWith(`${name}=`)) return arg.slice(name.length + 1);
  }
  return undefined;
}

/** The D1 migrations, quietly: one line when they succeed, wrangler's whole output when they fail. */
function migrate(state) {
  const args = ["d1", "migrations", "apply", "DB", "--local", ...(state === undefined ? [] : ["--persist-to", state])];
  const result = spawnSync(bin("wrangler"), args, { encoding: "utf8" });
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}`;
  if (result.status !== 0) {
    process.stderr.write(output);
    console.error(`\n✖ wrangler ${args.join(" ")} failed (exit ${result.status ?? result.signal})`);
    process.exit(result.status ?? 1);
  }
  const applied = /About to apply (\d+) migration/.exec(output)?.[1];
  console.log(applied === undefined ? "D1 migrations: up to date" : `D1 migrations: ${applied} applied`);
}

const given = process.argv.slice(2);
const verbose = given.includes("--verbose") || /^debug$/i.test(process.env.EVENTLINE_LOG ?? "");
const wranglerArgs = given.filter((arg) => arg !== "--verbose");
const persistTo = argValue(wranglerArgs, "--persist-to");
const state = persistTo ?? DEFAULT_STATE;

ensureDevVars();
addNewDevVars();
const devVars = readFileSync(path.join(root, ".dev.vars"), "utf8");
if (/^EVENTLINE_AUTH=disabled$/m.test(devVars)) {
  console.warn("\n⚠ EVENTLINE_AUTH=disabled in .dev.vars: AUTHENTICATION IS OFF — every caller is an admin.\n");
}
run(bin("tsx"), ["scripts/check-config.ts"]);
migrate(persistTo);

// The platform and the example consumer Worker run in one local runtime, sharing D1 and queues.
const configs = ["-c", "wrangler.toml", "-c", "workers/example-consumer/wrangler.toml"];
const dev = spawn(bin("wrangler"), ["dev", ...configs, ...wranglerArgs], { stdio: ["ignore", "pipe", "pipe"] });
const pidFile = path.resolve(root, state, PID_FILE);
mkdirSync(path.dirname(pidFile), { recursive: true });
writeFileSync(pidFile, `${process.pid}\n`);

// Boot output is kept back, and shown only if wrangler fails before it is ready.
const held = [];
let isReady = false;
let stopping = false;
const show = createOutputFilter({ verbose });
for (const [stream, out] of [
  [dev.stdout, process.stdout],
  [dev.stderr, process.stderr],
]) {
  createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on("line", (line) => {
    const decision = show(line);
    if (decision.show) out.write(`${line}\n`);
    else if (!isReady) held.push(line);
    if (decision.ready !== undefined) {
      isReady = true;
      held.length = 0;
      process.stdout.write(banner({ url: decision.ready, state, defaultState: persistTo === undefined, verbose }));
    }
  });
}
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    stopping = true;
    dev.kill(signal);
  });
}
// "close", not "exit": by then every line of its output has been read.
dev.on("close", (code, signal) => {
  rmSync(pidFile, { force: true });
  if (!isReady && !stopping && held.length > 0) process.stderr.write(`${held.join("\n")}\n`);
  process.exit(code ?? (signal ? 1 : 0));
});
