// Hosts both Workers in one Miniflare (one workerd) in a child process of run.mjs, so the load
// generator's event loop never shares a thread with Miniflare's log handling.
// Protocol (IPC): parent sends { platform, baseline, processors?, persist } (bundle paths, state dir);
// child answers { ready: { platform, baseline } } with loopback URLs, or { error };
// on { stop } (or parent exit) it disposes Miniflare and sends { stopped: logStats }.
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { Miniflare } from "miniflare";
import { parse } from "smol-toml";
import { BENCH_ADMIN_KEY, BENCH_KEKS } from "./auth.mjs";

const COMPATIBILITY_DATE = "2026-11-01";
// Port 0: the OS picks free ports, so a stale bench or `npm start` never collides with us.
const LOOPBACK = { host: "127.0.0.1", port: 0 };

async function manifest(bundlePath) {
  const mainModule = path.basename(bundlePath);
  return {
    mainModule,
    modulesRoot: path.dirname(bundlePath),
    modules: { [mainModule]: { type: "esm", contents: await readFile(bundlePath, "utf8") } },
  };
}

// Each Worker gets its own direct socket, which skips Miniflare's entry worker (a dev-only hop
// that production doesn't have) and treats both sides alike.
const dev = { unsafeDirectSockets: [LOOPBACK], unsafeRegisterWorker: false };

/**
 * The platform's queue producers (env bindings) and consumers (triggers), read from wrangler.toml so
 * the bench runs the same fan-out as `npm start`: every ingested event on `events` is written to the
 * outbox and relayed to the subscriptions' queues, whose consumers run in the same workerd.
 */
async function queuesFromWrangler() {
  const wrangler = parse(await readFile(path.join(import.meta.dirname, "..", "wrangler.toml"), "utf8"));
  const producers = Object.fromEntries((wrangler.queues?.producers ?? []).map((p) => [p.binding, { type: "queue", name: p.queue }]));
  const triggers = (wrangler.queues?.consumers ?? []).map((c) => ({
    type: "queue",
    name: c.queue,
    ...(c.max_batch_size === undefined ? {} : { maxBatchSize: c.max_batch_size }),
    ...(c.max_batch_timeout === undefined ? {} : { maxBatchTimeout: c.max_batch_timeout }),
    ...(c.max_retries === undefined ? {} : { maxRetries: c.max_retries }),
    ...(c.dead_letter_queue === undefined ? {} : { deadLetterQueue: c.dead_letter_queue }),
  }));
  return { producers, triggers };
}

/**
 * Durable Object classes (all SQLite-backed) and R2 buckets of a platform Worker named `worker`,
 * from wrangler.toml; `suffix` keeps a second platform's buckets apart.
 */
async function storageFromWrangler(worker = "platform", suffix = "") {
  const wrangler = parse(await readFile(path.join(import.meta.dirname, "..", "wrangler.toml"), "utf8"));
  const objects = wrangler.durable_objects?.bindings ?? [];
  return {
    env: {
      ...Object.fromEntries(objects.map((o) => [o.name, { type: "durable-object", worker, exportName: o.class_name }])),
      ...Object.fromEntries((wrangler.r2_buckets ?? []).map((b) => [b.binding, { type: "r2", name: `${b.bucket_name}${suffix}` }])),
    },
    exports: Object.fromEntries(objects.map((o) => [o.class_name, { type: "durable-object", storage: "sqlite" }])),
  };
}

/** High enough that the load generator never hits it; the check itself runs on every request. */
const RATE_LIMIT = { limit: 100_000_000, period: 10 };

/**
 * `variants` (bench/ablation.mjs): more copies of the platform, each `{ name, code, metrics,
 * rateLimit }` — its own (patched) bundle text, EVENTLINE_METRICS, and whether RATE_LIMIT is bound —
 * with their own objects and buckets, consuming no queues, like platform-metrics-off.
 */
export async function start({ platform, baseline, processors, persist, inspectorPort, variants = [] }) {
  const queues = await queuesFromWrangler();
  const storage = await storageFromWrangler();
  const storageOff = await storageFromWrangler("platform-metrics-off", "-metrics-off");
  const storageEmulated = await storageFromWrangler("platform-emulated-ratelimit", "-emulated-ratelimit");
  const storageProcessors = await storageFromWrangler("platform-processors", "-processors");
  /**
   * The platform's variables and secrets; `metrics` is EVENTLINE_METRICS. RATE_LIMIT is the
   * in-memory counter of bench/ratelimit-worker.js (production's cost profile), or with
   * `emulatedRateLimit` Miniflare's own binding (a SQLite write per call).
   */
  const platformVars = (metrics, emulatedRateLimit = false) => ({
    // Authentication on, as deployed.
    EVENTLINE_AUTH: { type: "text", value: "required" },
    EVENTLINE_METRICS: { type: "text", value: metrics },
    EVENTLINE_ADMIN_KEY: { type: "text", value: BENCH_ADMIN_KEY },
    EVENTLINE_KEKS: { type: "text", value: BENCH_KEKS },
    RATE_LIMIT: emulatedRateLimit
      ? { type: "rate-limit", namespace: "1001", simple: RATE_LIMIT }
      : { type: "worker", worker: "ratelimit", exportName: "RateLimit" },
  });
  const variantWorkers = await Promise.all(
    variants.map(async (v) => {
      const own = await storageFromWrangler(v.name, `-${v.name}`);
      const { RATE_LIMIT: limiter, ...vars } = platformVars(v.metrics);
      return {
        config: {
          name: v.name,
          compatibilityDate: COMPATIBILITY_DATE,
          manifest: {
            mainModule: "index.js",
            modulesRoot: path.dirname(platform),
            modules: { "index.js": { type: "esm", contents: v.code } },
          },
          env: { ...own.env, DB: { type: "d1", id: "DB" }, ...queues.producers, ...vars, ...(v.rateLimit && { RATE_LIMIT: limiter }) },
          exports: own.exports,
        },
        dev,
      };
    }),
  );
  // `archive`: what the partitions' archive passes report in their "archived" log lines.
  const logs = { lines: 0, byLevel: {}, samples: [], archive: { passes: 0, segments: 0, events: 0, ms: 0 } };
  const mf = new Miniflare({
    ...LOOPBACK,
    // bench/profile.mjs: workerd's own V8 inspector (no Miniflare proxy in front of it), which lists
    // every isolate — the platform, and Miniflare's D1 and queue broker objects that delivery uses.
    ...(inspectorPort === undefined ? {} : { inspectorPort }),
    logRequests: false,
    enableDevRegistry: false,
    telemetry: { enabled: false },
    resourcePersistencePath: persist,
    // The platform writes structured logs on every request; they are part of its cost inside
    // workerd, but printing them would drown the report, so they are only counted here.
    handleStructuredLogs: (log) => {
      logs.lines++;
      // The platform logs everything via console.log, so its own level field is the one to count.
      const level = /"level":"(\w+)"/.exec(log.message)?.[1] ?? log.level;
      logs.byLevel[level] = (logs.byLevel[level] ?? 0) + 1;
      if ((level === "warn" || level === "error") && logs.samples.length < 5) logs.samples.push(log.message.slice(0, 500));
      if (log.message.includes('"msg":"archived"')) {
        try {
          const line = JSON.parse(log.message);
          if (line.segments > 0) {
            logs.archive.passes++;
            logs.archive.segments += line.segments;
            logs.archive.events += line.last - line.first + 1;
            logs.archive.ms += line.durationMs ?? 0;
          }
        } catch {
          // not one of ours
        }
      }
    },
    workers: [
      {
        config: {
          name: "platform",
          compatibilityDate: COMPATIBILITY_DATE,
          manifest: await manifest(platform),
          env: {
            ...storage.env,
            DB: { type: "d1", id: "DB" },
            ...queues.producers,
            ...platformVars("on"),
          },
          triggers: queues.triggers,
          exports: storage.exports,
        },
        dev,
      },
      // The same bundle with EVENTLINE_METRICS=off and its own objects and buckets: the ingest
      // scenarios run against both to measure what metrics and tracing cost. It consumes no
      // queues (the ingest topic routes nothing) and shares D1 with the platform.
      {
        config: {
          name: "platform-metrics-off",
          compatibilityDate: COMPATIBILITY_DATE,
          manifest: await manifest(platform),
          env: { ...storageOff.env, DB: { type: "d1", id: "DB" }, ...queues.producers, ...platformVars("off") },
          exports: storageOff.exports,
        },
        dev,
      },
      // The same bundle with Miniflare's emulated rate limiter, for the one scenario that shows
      // what the emulation costs (single events; a batch pays one limit() call per request).
      {
        config: {
          name: "platform-emulated-ratelimit",
          compatibilityDate: COMPATIBILITY_DATE,
          manifest: await manifest(platform),
          env: { ...storageEmulated.env, DB: { type: "d1", id: "DB" }, ...queues.producers, ...platformVars("on", true) },
          exports: storageEmulated.exports,
        },
        dev,
      },
      ...variantWorkers,
      // bench/processors.mjs: the platform built with bench/processor-config.ts (the shipped config
      // plus the bench's count-per-key processor), with its own objects and buckets; the processor
      // feeds itself by direct calls, so it consumes no queues either.
      ...(processors === undefined
        ? []
        : [
            {
              config: {
                name: "platform-processors",
                compatibilityDate: COMPATIBILITY_DATE,
                manifest: await manifest(processors),
                env: { ...storageProcessors.env, DB: { type: "d1", id: "DB" }, ...queues.producers, ...platformVars("on") },
                exports: storageProcessors.exports,
              },
              dev,
            },
          ]),
      {
        config: {
          name: "ratelimit",
          compatibilityDate: COMPATIBILITY_DATE,
          manifest: await manifest(path.join(import.meta.dirname, "ratelimit-worker.js")),
          env: { LIMIT: { type: "text", value: String(RATE_LIMIT.limit) }, PERIOD: { type: "text", value: String(RATE_LIMIT.period) } },
        },
      },
      {
        config: {
          name: "baseline",
          compatibilityDate: COMPATIBILITY_DATE,
          manifest: await manifest(baseline),
          env: { BARE_LOG: { type: "durable-object", worker: "baseline", exportName: "BareLog" } },
          exports: { BareLog: { type: "durable-object", storage: "sqlite" } },
        },
        dev,
      },
    ],
  });
  await mf.ready;
  // The consumers write to D1: give it the schema, as `npm start` does with wrangler.
  const db = await mf.getD1Database("DB", "platform");
  const migrations = path.join(import.meta.dirname, "..", "migrations");
  for (const file of (await readdir(migrations)).filter((f) => f.endsWith(".sql")).sort()) {
    const sql = await readFile(path.join(migrations, file), "utf8");
    for (const statement of sql.split("--> statement-breakpoint")) if (statement.trim() !== "") await db.prepare(statement).run();
  }
  const urls = {
    platform: (await mf.unsafeGetDirectURL("platform")).href,
    platformMetricsOff: (await mf.unsafeGetDirectURL("platform-metrics-off")).href,
    platformEmulatedRateLimit: (await mf.unsafeGetDirectURL("platform-emulated-ratelimit")).href,
    baseline: (await mf.unsafeGetDirectURL("baseline")).href,
    ...(processors === undefined ? {} : { platformProcessors: (await mf.unsafeGetDirectURL("platform-processors")).href }),
    variants: Object.fromEntries(await Promise.all(variants.map(async (v) => [v.name, (await mf.unsafeGetDirectURL(v.name)).href]))),
  };
  return { mf, urls, logs };
}

let running;
// Forked by stack.mjs; bench/profile.mjs imports start() instead.
process.on("message", async (msg) => {
  if (msg.query !== undefined) {
    // The bench reads D1 (e.g. when each event was handled) the way an operator's SQL would.
    try {
      const db = await running.mf.getD1Database("DB", "platform");
      const rows = (
        await db
          .prepare(msg.query.sql)
          .bind(...msg.query.params)
          .all()
      ).results;
      process.send({ queryResult: { id: msg.query.id, rows } });
    } catch (err) {
      process.send({ queryResult: { id: msg.query.id, error: err instanceof Error ? err.message : String(err) } });
    }
    return;
  }
  if (msg.stop !== undefined) {
    const stopping = running;
    running = undefined;
    await stopping?.mf.dispose();
    process.send({ stopped: stopping?.logs ?? null }, () => process.exit(0));
    return;
  }
  try {
    running = await start(msg);
    process.send({ ready: running.urls });
  } catch (err) {
    process.send({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) }, () => process.exit(1));
  }
});
// If run.mjs dies, don't leave workerd running.
process.on("disconnect", async () => {
  const stopping = running;
  running = undefined;
  await stopping?.mf.dispose();
  process.exit(0);
});
