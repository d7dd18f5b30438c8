// Turning runs into figures: medians, ratios against targets, the machine description and the
// text/markdown tables. Kept apart from run.mjs so the numbers' definitions are in one place.
import { readFileSync } from "node:fs";
import os from "node:os";

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function osName() {
  try {
    const pretty = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1];
    if (pretty) return `${pretty} (${os.type()} ${os.release()}, ${os.arch()})`;
  } catch {
    // Not Linux, or no os-release: the kernel line below is enough.
  }
  return `${os.type()} ${os.release()} (${os.arch()})`;
}

export function machine() {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? "unknown",
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: osName(),
  };
}

/**
 * Summarises one scenario's runs. `eventsPerRequest` turns req/s into events/s (rows/s for
 * the baseline), which is the unit the batch comparison is about.
 */
export function summarize(scenario, runs) {
  const perSec = runs.map((r) => r.reqPerSec * scenario.eventsPerRequest);
  const sum = (key) => runs.reduce((n, r) => n + r[key], 0);
  return {
    label: scenario.label,
    target: scenario.target,
    unit: scenario.eventsPerRequest === 1 ? "req/s" : scenario.target === "baseline" ? "rows/s" : "events/s",
    eventsPerRequest: scenario.eventsPerRequest,
    median: round(median(perSec)),
    runs: perSec.map(round),
    reqPerSecMedian: round(median(runs.map((r) => r.reqPerSec))),
    p50Ms: median(runs.map((r) => r.p50)),
    p99Ms: median(runs.map((r) => r.p99)),
    workerdCpuUsPerEvent: nullableMedian(runs.map((r) => r.workerdCpuUsPerEvent)),
    workerdCpuUsPerEventRuns: runs.map((r) => (r.workerdCpuUsPerEvent === null ? null : round(r.workerdCpuUsPerEvent))),
    maxClientCpuShare: Math.max(...runs.map((r) => r.clientCpuShare)),
    foreignCpuCoresRuns: runs.map((r) => r.foreignCpuCores),
    disturbedRuns: runs.filter((r) => r.disturbed).length,
    reruns: runs.reduce((n, r) => n + r.attempts - 1, 0),
    p50MsRuns: runs.map((r) => r.p50),
    p99MsRuns: runs.map((r) => r.p99),
    ok: sum("ok"),
    non2xx: sum("non2xx"),
    errors: sum("errors"),
    timeouts: sum("timeouts"),
    statusCodes: mergeCounts(runs.map((r) => r.statusCodes)),
  };
}

export function ratio(name, numerator, denominator, target) {
  const value = Math.round((numerator.median / denominator.median) * 1000) / 1000;
  return {
    name,
    value,
    of: `${numerator.label} ÷ ${denominator.label}`,
    target: target ?? null,
    pass: target === undefined ? null : value >= target,
  };
}

/**
 * Issue 15's four figures, each a ratio or latency from the same run, against its target:
 * delivery as fast as ingest (live and replayed) and as prompt as the targets say.
 */
export function deliveryTargets({ scenarios, endToEnd, archiveReplay, commands }) {
  const round3 = (n) => Math.round(n * 1000) / 1000;
  const check = (name, value, unit, comparison, target, of) => ({
    name,
    value,
    unit,
    comparison,
    target,
    pass: value === null || value === undefined ? false : comparison === ">=" ? value >= target : value <= target,
    of,
  });
  const live = endToEnd.eventsPerSec;
  const batch = scenarios.ingestBatch.median;
  return {
    endToEndOverBatchIngest: check(
      "end-to-end handled events/s ÷ batch ingest events/s",
      live === null ? null : round3(live / batch),
      "ratio",
      ">=",
      0.5,
      `steady-state handled events/s of the ${endToEnd.events}-event end-to-end run ÷ ${scenarios.ingestBatch.label} (median)`,
    ),
    commitToHandledP99: check(
      "end-to-end commit → handled p99",
      endToEnd.commitToHandledMs.p99,
      "ms",
      "<=",
      2000,
      `${endToEnd.commitToHandledMs.samples} events of the end-to-end run`,
    ),
    replayOverLive: check(
      "replay handled events/s ÷ live end-to-end handled events/s",
      archiveReplay.ratio,
      "ratio",
      ">=",
      0.8,
      `steady state of both, the ${archiveReplay.subscription} subscription consuming both`,
    ),
    commandVisibleP50: check(
      "command → visible in the read model, p50",
      commands.visible.p50,
      "ms",
      "<=",
      250,
      `${commands.visible.samples} orders placed 4 at a time`,
    ),
  };
}

/**
 * How many events the baseline stores for the CPU the platform spends on one: the CPU-time
 * counterpart of `ratio`, informational only.
 */
export function cpuRatio(name, baseline, platform) {
  const b = baseline.workerdCpuUsPerEvent;
  const p = platform.workerdCpuUsPerEvent;
  const value = b === null || p === null ? null : Math.round((b / p) * 1000) / 1000;
  return { name, value, of: `${baseline.label} ÷ ${platform.label} (workerd CPU µs per event)`, target: null, pass: null };
}

function nullableMedian(values) {
  return values.some((v) => v === null) ? null : round(median(values));
}

/** One sentence on how much other work on the machine overlapped the runs. */
function disturbance(results) {
  const all = Object.values(results.scenarios);
  const reruns = all.reduce((n, s) => n + s.reruns, 0);
  const disturbed = all.reduce((n, s) => n + s.disturbedRuns, 0);
  const limit = results.settings.foreignCpuLimit;
  if (reruns === 0 && disturbed === 0) return `No run overlapped other work above ${limit} cores.`;
  return `${reruns} run(s) were repeated because other processes used more than ${limit} cores meanwhile; ${disturbed} kept run(s) were still disturbed.`;
}

function mergeCounts(list) {
  const out = {};
  for (const counts of list) for (const [k, v] of Object.entries(counts)) out[k] = (out[k] ?? 0) + v;
  return out;
}

function round(n) {
  return Math.round(n * 10) / 10;
}

const fmt = (n) => Math.round(n).toLocaleString("en-US");

/** Rows shared by the console and markdown renderings. */
function rows(results) {
  const scenarioRows = Object.values(results.scenarios).map((s) => [
    s.label,
    `${fmt(s.median)} ${s.unit}`,
    s.runs.map(fmt).join(" / "),
    String(s.p50Ms),
    String(s.p99Ms),
    s.workerdCpuUsPerEvent === null ? "n/a" : fmt(s.workerdCpuUsPerEvent),
    String(s.non2xx + s.errors),
  ]);
  const ratioRows = results.ratios.map((r) => [
    r.name,
    r.value === null ? "n/a" : r.value.toFixed(2),
    r.target === null ? "—" : `≥ ${r.target}`,
    r.pass === null ? "info" : r.pass ? "PASS" : "FAIL",
  ]);
  const targetRows = Object.values(results.targets ?? {}).map((t) => [
    t.name,
    t.value === null ? "not measured" : t.unit === "ms" ? `${fmt(t.value)} ms` : t.value.toFixed(2),
    `${t.comparison === ">=" ? "≥" : "≤"} ${t.unit === "ms" ? `${fmt(t.target)} ms` : t.target}`,
    t.pass ? "PASS" : "FAIL",
  ]);
  return { scenarioRows, ratioRows, targetRows };
}

const SCENARIO_HEAD = ["Scenario", "Median", "Runs", "p50 ms", "p99 ms", "workerd CPU µs/event", "Failed"];
const RATIO_HEAD = ["Ratio", "Value", "Target", "Result"];
const TARGET_HEAD = ["Delivery (issue 15)", "Value", "Target", "Result"];

const rev = (r) => (r ? ` at ${r.commit}${r.dirty ? " (with uncommitted changes)" : ""}` : "");

function endToEndLine(results) {
  const e = results.endToEnd;
  if (e === undefined) return "";
  const ms = e.commitToHandledMs;
  const n = (x) => (x === null || x === undefined ? "n/a" : x.toLocaleString("en-US"));
  const w = e.steadyState;
  const steady =
    w === null || w === undefined
      ? "**steady state not reached**"
      : `**${n(e.eventsPerSec)} events/s handled in steady state** (the ${w.windowPct[0]}–${w.windowPct[1]}% of the events: ${n(w.events)} in ${n(w.ms)} ms, from ${w.from})`;
  return (
    `End to end (${n(e.events)} events published as fast as ingest took them, in batches of ${e.settings.batchSize} with ${e.settings.concurrency} requests at a time: ` +
    `${n(e.ingestEventsPerSec)} events/s published; consumed by the activity subscription; ${e.queue}): ${steady}; ` +
    `${n(e.wholeRunEventsPerSec)} events/s from the first commit until the last was handled` +
    `${e.complete ? "" : ` (INCOMPLETE: ${n(e.applied)} of ${n(e.events)} applied, lag ${e.lag}, after ${e.settings.timeoutSec} s)`}` +
    `${e.complete && !e.exactlyOnce ? ` (NOT EXACTLY ONCE: ${n(e.applied)} effects for ${n(e.events)} events)` : ""}; ` +
    `commit → handled **p50 ${n(ms.p50)} ms, p99 ${n(ms.p99)} ms** (max ${n(ms.max)} ms, ${n(ms.samples)} samples).`
  );
}

function archiveLines(results) {
  const a = results.archiveReplay;
  if (a === undefined) return [];
  const t = a.archiveThroughput;
  const kb = (n) => `${Math.round(n / 1024).toLocaleString("en-US")} KiB`;
  return [
    `Archive (segments of up to 1,000 events, gzip NDJSON in R2, each checked by SHA-256 before it counts):` +
      (t
        ? ` over the whole run the partitions' archive passes sealed **${t.events.toLocaleString("en-US")} events in ${t.segments.toLocaleString("en-US")} segments at ${t.eventsPerSec?.toLocaleString("en-US")} events/s of archiving work** (all topics);`
        : "") +
      ` the final forced seal of ${a.topic} took ${a.seal.ms} ms for ${a.seal.events} events; ${a.topic} holds ${a.archive.events.toLocaleString("en-US")} of ${a.archive.of.toLocaleString("en-US")} events archived in ${a.archive.segments} segments (${kb(a.archive.bytes)}, ${a.archive.bytesPerEvent} bytes/event).`,
    replayLine(a),
  ];
}

function replayLine(a) {
  const r = a.replay;
  const n = (x) => (x === null || x === undefined ? "n/a" : x.toLocaleString("en-US"));
  const w = r.steadyState;
  const handled =
    w === null || w === undefined
      ? `**steady state not reached** (${n(r.handled)} of ${n(r.expected)} handled)`
      : `**${n(r.handledPerSec)} events/s handled in steady state** (${w.windowPct[0]}–${w.windowPct[1]}% of the events, from ${w.from}; ${n(r.wholeRunHandledPerSec)} events/s over the whole replay${r.complete ? "" : `; INCOMPLETE: ${n(r.handled)} of ${n(r.expected)}`})`;
  return (
    `Replay of the whole topic to \`${a.subscription}\` (${r.via}: its read model, idempotency records and checkpoints cleared, then a replay job from sequence 1 at rate ${n(r.rate)}/s, the API's maximum; the events are still in the partition logs too, so the job reads SQLite rows): ` +
    `${handled}; the job sent ${n(r.sent)} in ${n(r.ms)} ms (${n(r.eventsPerSec)} events/s${r.sentAtRateLimit ? ", paced by its rate limit" : ""})${r.rateBound ? "; THE HANDLED RATE REACHED THE JOB'S RATE LIMIT, which may bound the ratio" : ""}. ` +
    `Replay handled ÷ live handled (${n(a.liveHandledPerSec)} events/s): ratio **${a.ratio ?? "n/a"}**. ` +
    `Raw read of the same ${a.rawRead.segments} R2 segments inside workerd (get, SHA-256, gunzip, parse: the archive verify route): **${n(a.rawRead.eventsPerSec)} events/s** (replay sent ÷ raw read ${a.sentOverRawRead ?? "n/a"}, handled ÷ raw read ${a.handledOverRawRead ?? "n/a"}).`
  );
}

/** "the median of N runs (a, b, c events/s); " when the scenario ran more than once. */
function runsText(p, n) {
  if (!Array.isArray(p.runs) || p.runs.length < 2) return "";
  return `the median of ${p.runs.length} runs: ${p.runs.map((r) => `${n(r.eventsPerSec)} at ${n(r.workerdCpuUsPerEvent)} µs/event`).join(", ")}; its `;
}

/** The processor scenario in one paragraph (bench/processors.mjs), for the console and latest.md. */
export function processorLine(p) {
  if (p === undefined) return "";
  const n = (x) => (x === null || x === undefined ? "n/a" : x.toLocaleString("en-US"));
  const r = p.results;
  const w = p.watermarkToResultMs;
  const i = p.internalCommitToResultMs;
  const exact = r.exact
    ? `all ${n(r.expected)} results exact (one per key and minute, each with its count)`
    : `RESULTS NOT EXACT: ${n(r.results)} for ${n(r.expected)} expected, ${r.missing} missing, ${r.wrongCount} with a wrong count, ${r.duplicates} duplicates, ${r.unexpected} unexpected`;
  return (
    `Processor ${p.processor.name} (${p.processor.window}, count per key, ${n(p.processor.keys)} keys, ${p.processor.instances} instances; ` +
    `${n(p.events)} events over ${p.eventTimeSpan.minutes} minutes of event time + ${p.ticks} ticks, published in batches of ${p.settings.batchSize} with ${p.settings.concurrency} requests at a time: ${n(p.ingestEventsPerSec)} events/s published): ` +
    `**${n(p.eventsPerSec)} events/s applied by every instance** (${runsText(p, n)}first input commit → last applied, ${n(p.ms)} ms${p.complete ? "" : `; INCOMPLETE after ${p.settings.timeoutSec} s: ${n(p.applied)} applied`}); ` +
    `workerd ${n(p.workerdCpuUsPerEvent)} µs/event (${n(p.otherCpuCores)} cores busy outside workerd meanwhile, this client included); ${exact}; ${n(p.lateEvents)} late events. ` +
    `Watermark → result appended (the input that moved the instance's watermark past end + grace, committed in ${p.processor.input} → the result committed in ${p.processor.output}): ` +
    `**p50 ${n(w.p50)} ms, p99 ${n(w.p99)} ms** (max ${n(w.max)} ms, ${n(w.samples)} results); from that input's commit in the internal topic: p50 ${n(i.p50)} ms, p99 ${n(i.p99)} ms` +
    `${p.closedByAlarm > 0 ? `; ${n(p.closedByAlarm)} results closed by an instance's alarm (idle inputs), not timed` : ""}.` +
    backfillText(p.backfill, n)
  );
}

/** The rebuild after the runs (ADR 0058), as a sentence of the processor paragraph. */
function backfillText(b, n) {
  if (b === undefined) return "";
  const once = b.appliedOnce ? `all ${n(b.inputEvents)} applied once` : `APPLIED ${n(b.applied)} OF ${n(b.inputEvents)}`;
  return (
    ` Rebuild (a reset; every instance reads the input topic's ${n(b.inputEvents)} events back and catches up): ` +
    `**${n(b.eventsPerSec)} input events/s** (${n(b.ms)} ms${b.complete ? "" : ", INCOMPLETE"}; ${n(b.readsPerSec)} events read/s over ${b.instances} instances); ${once}.`
  );
}

/** Issue 21's figures as `ratios` entries: events/s through the processor ÷ batch ingest (≥ 0.5), and the latency p99 (reported). */
export function processorRatios(p, batch) {
  const value = p.eventsPerSec === null ? null : Math.round((p.eventsPerSec / batch.median) * 1000) / 1000;
  return [
    {
      name: "processor events/s ÷ batch ingest events/s",
      value,
      of: `${p.label} (${p.events} events, 1,000 keys, tumbling 1-minute windows${Array.isArray(p.runs) && p.runs.length > 1 ? `; median of ${p.runs.length} runs` : ""}) ÷ ${batch.label} (median)`,
      target: 0.5,
      pass: value !== null && value >= 0.5 && p.results.exact,
    },
    {
      name: "processor CPU/event, batch ingest ÷ processor",
      value:
        p.workerdCpuUsPerEvent === null || p.workerdCpuUsPerEvent === undefined || batch.workerdCpuUsPerEvent === null
          ? null
          : Math.round((batch.workerdCpuUsPerEvent / p.workerdCpuUsPerEvent) * 1000) / 1000,
      of: `workerd CPU µs per event: ${batch.label} ÷ ${p.label} (publish → last result appended; ${p.workerdCpuUsPerEvent ?? "n/a"} µs)`,
      target: null,
      pass: null,
    },
    ...(p.backfill === undefined
      ? []
      : [
          {
            name: "processor rebuild input events/s ÷ batch ingest events/s",
            value: p.backfill.eventsPerSec === null ? null : Math.round((p.backfill.eventsPerSec / batch.median) * 1000) / 1000,
            of: `${p.backfill.label} (${p.backfill.inputEvents} events, ${p.backfill.instances} instances) ÷ ${batch.label} (median)`,
            target: null,
            pass: null,
          },
        ]),
    {
      name: "processor watermark → result appended p99 (ms)",
      value: p.watermarkToResultMs.p99,
      of: `${p.watermarkToResultMs.samples} final results (p50 ${p.watermarkToResultMs.p50} ms); from the triggering input's commit in ${p.processor.input}`,
      target: null,
      pass: null,
    },
  ];
}

/** The demo processors' one-time backfill of `orders` before the commands scenario (bench/processors.mjs startDemoProcessors). */
function demoBackfillLines(b) {
  if (b === undefined) return [];
  const n = (x) => x.toLocaleString("en-US");
  return [
    `Before the commands scenario, the demo processors (${b.processors.join(", ")}) start on \`orders\`, which the ingest scenarios filled: ` +
      `their ${b.instances} instances each read its ${n(b.inputEvents)} events back (ADR 0058) in ${n(b.ms)} ms` +
      `${b.complete ? "" : " (INCOMPLETE)"}, ${n(Math.round(((b.inputEvents * b.instances) / Math.max(1, b.ms)) * 1000))} events read/s; the commands run after it.`,
    "",
  ];
}

function commandsLines(results) {
  const c = results.commands;
  if (c === undefined) return [];
  const statuses = (x) =>
    Object.entries(x.statuses)
      .map(([k, v]) => `${k}: ${v}`)
      .join(", ");
  return [
    `Commands (orders demo, ${c.settings.concurrency} concurrent clients, ${c.settings.durationSec} s each; each command is one call to the order's partition log, which decides on the aggregate it keeps in memory and appends in one transaction; commands on one order take turns there):`,
    `- distinct orders (place → add-line → pay per order): **${c.distinct.commandsPerSec.toLocaleString("en-US")} commands/s**, p50 ${c.distinct.p50} ms, p99 ${c.distinct.p99} ms (${statuses(c.distinct)}); ${c.distinct.conflictRetries} conflict retries.`,
    `- one hot order (every client adds/removes its own line): **${c.hot.commandsPerSec.toLocaleString("en-US")} commands/s**, p50 ${c.hot.p50} ms, p99 ${c.hot.p99} ms (${statuses(c.hot)}); **${c.hot.conflictRetries} conflict retries** for ${c.hot.commands} commands; ${c.hot.statuses["409"] ?? 0} gave up with 409.`,
    `- command sent → visible in the orders read model (${c.visible.samples} orders placed 4 at a time, view polled every 5 ms; ${c.queue ?? "the queue's max_batch_timeout is 1 s"}): **p50 ${c.visible.p50} ms, p99 ${c.visible.p99} ms** (max ${c.visible.max} ms).`,
  ];
}

export function markdown(results) {
  const { scenarioRows, ratioRows, targetRows } = rows(results);
  const table = (head, body) =>
    [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`, ...body.map((r) => `| ${r.join(" | ")} |`)].join("\n");
  const m = results.machine;
  const s = results.settings;
  return `${[
    `<!-- Generated by \`${results.command}\` (bench/run.mjs); do not edit by hand. -->`,
    `Measured ${results.date}${rev(results.revision)} on ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, ${m.os}.`,
    `Miniflare ${s.miniflare} (workerd ${s.workerd}) on loopback; autocannon, ${s.connections} connections, ` +
      `${s.runs} runs × ${s.durationSec} s after a ${s.warmupSec} s warm-up per scenario; medians of the runs. ` +
      "workerd CPU µs/event is the workerd process's CPU time (all threads) per stored event. " +
      "The platform checks its rate limit on every request; `RATE_LIMIT` is an in-memory counter reached over RPC " +
      "(bench/ratelimit-worker.js), not Miniflare's emulation of the binding (ADR 0028), except in the scenario marked " +
      '"Miniflare\'s rate limiter", whose emulation writes a SQLite row per call.',
    "",
    table(SCENARIO_HEAD, scenarioRows),
    "",
    table(RATIO_HEAD, ratioRows),
    "",
    ...(targetRows.length ? [table(TARGET_HEAD, targetRows), ""] : []),
    endToEndLine(results),
    "",
    ...commandsLines(results),
    "",
    ...(results.processors === undefined ? [] : [processorLine(results.processors), ""]),
    ...demoBackfillLines(results.demoProcessorsBackfill),
    ...archiveLines(results),
    "",
    disturbance(results),
    "Ratios of throughput compare medians; the CPU ratios divide workerd CPU per event (baseline ÷ ingest, so 1.0 means " +
      "no overhead). Under Miniflare every Worker and Durable Object shares one workerd process on the same cores as the " +
      "load generator, so spreading over partitions cannot add parallelism here as separate objects do in production.",
  ].join("\n")}\n`;
}

export function commandsText(results) {
  return [endToEndLine(results), ...commandsLines(results), processorLine(results.processors), ...archiveLines(results)]
    .join("\n")
    .replaceAll("**", "");
}

export function textTable(results) {
  const { scenarioRows, ratioRows, targetRows } = rows(results);
  const render = (head, body) => {
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
    const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
    return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n");
  };
  const targets = targetRows.length ? `\n${render(TARGET_HEAD, targetRows)}\n` : "";
  return `${render(SCENARIO_HEAD, scenarioRows)}\n\n${render(RATIO_HEAD, ratioRows)}\n${targets}`;
}
