#!/usr/bin/env node
// `npm start [-- wrangler dev args]`: checks the config, applies the local D1 migrations, then
// runs the whole local stack with `wrangler dev` (state persists in .wrangler/state).
import { spawn, spawnSync } from "node:child_process";
import path from "node:path";

const bin = (name) => path.join(import.meta.dirname, "..", "node_modules", ".bin", name);

function run(cmd, args) {
  const result = spawnSync(cmd, args, { stdio: "inherit" });
  if (result.status !== 0) {
    console.error(`\n✖ ${path.basename(cmd)} ${args.join(" ")} failed (exit ${result.status ?? result.signal})`);
    process.exit(result.status ?? 1);
  }
}

run(bin("tsx"), ["scripts/check-config.ts"]);
run(bin("wrangler"), ["d1", "migrations", "apply", "DB", "--local"]);

// The platform and the example consumer Worker run in one local runtime, sharing D1 and queues.
const configs = ["-c", "wrangler.toml", "-c", "workers/example-consumer/wrangler.toml"];
const dev = spawn(bin("wrangler"), ["dev", ...configs, ...process.argv.slice(2)], { stdio: "inherit" });
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => dev.kill(signal));
dev.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
