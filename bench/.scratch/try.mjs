import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as esbuild from "esbuild";

await esbuild.build({
  entryPoints: ["bench/baseline-worker.js"],
  bundle: true,
  format: "esm",
  platform: "neutral",
  external: ["cloudflare:*"],
  outfile: "bench/.build/baseline/index.js",
});
const persist = mkdtempSync(path.join(os.tmpdir(), "eventline-bench-"));
const child = fork("bench/server.mjs");
child.send({ platform: path.resolve("/tmp/wbtest/index.js"), baseline: path.resolve("bench/.build/baseline/index.js"), persist });
const msg = await new Promise((r) => child.once("message", r));
console.log(msg);
const ev = (id, pk = "bench") => ({ specversion: "1.0", id, source: "/bench", type: "bench.created", partitionkey: pk, data: { n: 1 } });
let r = await fetch(new URL("/v1/topics/events/events", msg.ready.platform), {
  method: "POST",
  headers: { "content-type": "application/cloudevents+json" },
  body: JSON.stringify(ev("a1")),
});
console.log(r.status, await r.text());
r = await fetch(new URL("/v1/topics/events/events", msg.ready.platform), {
  method: "POST",
  headers: { "content-type": "application/cloudevents-batch+json" },
  body: JSON.stringify([ev("b1"), ev("b2", "x")]),
});
console.log(r.status, await r.text());
r = await fetch(new URL("/one", msg.ready.baseline), { method: "POST", body: JSON.stringify(ev("a1")) });
console.log(r.status, await r.text());
r = await fetch(new URL("/batch", msg.ready.baseline), { method: "POST", body: JSON.stringify([ev("a1"), ev("a2")]) });
console.log(r.status, await r.text());
child.send({ stop: true });
console.log(await new Promise((r) => child.once("message", r)));
rmSync(persist, { recursive: true, force: true });
