// Reading a V8 CPU profile (the Profiler.stop result) of workerd's isolates: busy time, and where
// it went by function, by source file of the platform bundle and by the innermost frame of our own
// code. Used by bench/profile.mjs.
import { readFileSync } from "node:fs";
import path from "node:path";

/**
 * The modules of an esbuild bundle by line: esbuild writes a `// path/to/module.ts` comment where
 * each module's code starts, so a 1-based line maps to the module that encloses it.
 */
export function bundleModules(bundlePath) {
  const starts = [];
  readFileSync(bundlePath, "utf8")
    .split("\n")
    .forEach((line, i) => {
      const m = /^\/\/ ((?:[\w@.-]+\/)*[\w@.-]+\.[cm]?[jt]sx?)$/.exec(line);
      if (m !== null) starts.push([i + 1, m[1]]);
    });
  return (line) => {
    let a = 0;
    let b = starts.length;
    while (a < b) {
      const m = (a + b) >> 1;
      if (starts[m][0] <= line) a = m + 1;
      else b = m;
    }
    return a === 0 ? "(bundle prelude)" : starts[a - 1][1];
  };
}

/** npm package of a bundled module path, or null for our own source. */
export function packageOf(module) {
  const i = module.lastIndexOf("node_modules/");
  if (i < 0) return null;
  const parts = module.slice(i + "node_modules/".length).split("/");
  return parts[0].startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0];
}

const IDLE = "(idle)";

/**
 * Per sample: its node and the time it stands for (the gap to the next sample; V8 samples at a
 * fixed interval only while the isolate's thread runs, so gaps also cover time spent elsewhere —
 * hence the weight is capped at 4 intervals).
 */
function weightedSamples(profile, intervalUs) {
  const { samples, timeDeltas } = profile;
  return samples.map((id, i) => [id, Math.min(timeDeltas[i + 1] ?? intervalUs, 4 * intervalUs)]);
}

/**
 * Busy µs (all samples but idle), and µs by: function (self), module (self), package or "ours",
 * and owner (the innermost frame from our own source above the sample: what our code caused).
 * `moduleOf(url, line)` names a frame's module; frames without a url (native: SQLite `exec`,
 * `JSON.parse`, GC) get their own name.
 */
export function analyse(profile, { intervalUs, moduleOf }) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const frameModule = (node) => {
    const { url, lineNumber } = node.callFrame;
    return url ? moduleOf(url, lineNumber + 1) : null;
  };
  // The innermost frame of our own code at or above each node, cached by node.
  const ownerCache = new Map();
  const ownerOf = (id) => {
    if (ownerCache.has(id)) return ownerCache.get(id);
    const node = byId.get(id);
    const module = frameModule(node);
    let owner;
    if (module !== null && packageOf(module) === null && !module.startsWith("(") && !module.includes(":")) {
      owner = `${module} ${node.callFrame.functionName || "(anonymous)"}`;
    } else {
      const up = parent.get(id);
      owner = up === undefined ? "(no frame of ours)" : ownerOf(up);
    }
    ownerCache.set(id, owner);
    return owner;
  };
  const add = (map, key, us) => map.set(key, (map.get(key) ?? 0) + us);
  const byFunction = new Map();
  const byModule = new Map();
  const byPackage = new Map();
  const byOwner = new Map();
  let busyUs = 0;
  let idleUs = 0;
  for (const [id, us] of weightedSamples(profile, intervalUs)) {
    const node = byId.get(id);
    const { functionName, lineNumber } = node.callFrame;
    if (functionName === IDLE) {
      idleUs += us;
      continue;
    }
    busyUs += us;
    const module = frameModule(node);
    const name = functionName || "(anonymous)";
    add(byFunction, module === null ? name : `${name} ${path.basename(module)}:${lineNumber + 1}`, us);
    add(byModule, module ?? `(native) ${name}`, us);
    add(byPackage, module === null ? "(native / runtime)" : (packageOf(module) ?? (module.includes(":") ? module : "ours")), us);
    add(byOwner, ownerOf(id), us);
  }
  return { busyUs, idleUs, byFunction, byModule, byPackage, byOwner };
}

/** The `n` largest entries of a µs map as [key, µs], largest first. */
export function top(map, n) {
  return [...map].sort((a, b) => b[1] - a[1]).slice(0, n);
}
