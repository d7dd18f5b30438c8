// Processor scenario (issue 21): events published as fast as ingest takes them to `bench-input`,
// through bench-count-per-key (bench/processor-config.ts: a tumbling count per key, 1,000 keys,
// 1-minute windows in event time) on the platform Worker built with that config. Throughput is
// the events applied by every instance ÷ the time from the first input's commit until the last
// was applied; applied means acknowledged by the instance (its feed returned after it committed
// state and checkpoint), seen as the processor's outbox rows gone from the input topic and the
// internal topic, polled over HTTP. Latency: bench/processor-latency.mjs. Every result is checked
// against the count it must have.
import { authFetch } from "./auth.mjs";
import { fnv1a32, keysCoveringPartitions } from "./load.mjs";
import { checkCounts, expectedCounts, MINUTE_MS, replayWatermark, streamPlan, watermarkLatencies } from "./processor-latency.mjs";

// As bench/processor-config.ts declares them (the bundle is checked for the name in bench/stack.mjs).
export const PROCESSOR = "bench-count-per-key";
const INPUT = "bench-input";
const OUTPUT = "bench-counts";
const INTERNAL = `processor.${PROCESSOR}`;
const ROUTE = `processor:${PROCESSOR}`;
const PARTITIONS = 4;
const SPEC = { partitions: PARTITIONS, outOfOrdernessMs: 10_000, idleTimeoutMs: 10_000 };
const GRACE_MS = 10_000;
const KEYS = 1000;
const MINUTES = 5;
/** Event time of the first event: a whole minute, long past (event time is the events' own `time`). */
const START = Date.UTC(2026, 0, 1, 12, 0, 0);

const idPrefix = `p${Date.now().toString(36)}`;
const iso = (ms) => new Date(ms).toISOString();
const eventJson = (id, partitionkey, key, time) =>
  `{"specversion":"1.0","id":"${id}","source":"/bench/processor","type":"bench.reading","partitionkey":"${partitionkey}","time":"${iso(time)}","datacontenttype":"application/json","data":{"key":"${key}"}}`;

async function postBatch(platform, body) {
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await authFetch(new URL(`/v1/topics/${INPUT}/events`, platform), {
        method: "POST",
        headers: { "content-type": "application/cloudevents-batch+json" },
        body,
      });
      if (res.status !== 202) throw new Error(`processor publish → ${res.status}: ${(await res.text()).slice(0, 300)}`);
      return;
    } catch (err) {
      // A reset connection on this busy machine: the same ids are stored once (idempotent ingest).
      if (attempt >= 3 || String(err).includes("processor publish")) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

/** Batches of `batchSize` in stream order, each to one input partition in turn (as the batch-ingest scenario sends one partition's batch). */
async function publish(platform, plan, batchSize, concurrency, prefix) {
  const spread = keysCoveringPartitions(PARTITIONS);
  const batches = Math.ceil(plan.events / batchSize);
  let next = 0;
  const worker = async () => {
    while (next < batches) {
      const b = next++;
      const events = [];
      for (let i = b * batchSize; i < Math.min(plan.events, (b + 1) * batchSize); i++)
        events.push(eventJson(`${prefix}-${i}`, spread[b % PARTITIONS], plan.key(i), plan.time(i)));
      await postBatch(platform, `[${events.join(",")}]`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  // Ticks: from every input partition, an event for every instance, past every window's end +
  // grace, so the watermark (the minimum over input partitions) closes the last windows too.
  const byInstance = new Map();
  for (let k = 0; byInstance.size < PARTITIONS; k++) byInstance.set(fnv1a32(`k${k}`) % PARTITIONS, `k${k}`);
  const tick = plan.tickTime({ outOfOrdernessMs: SPEC.outOfOrdernessMs, graceMs: GRACE_MS });
  await Promise.all(
    spread.map((pk, p) =>
      postBatch(platform, `[${[...byInstance.values()].map((key, n) => eventJson(`${prefix}-tick-${p}-${n}`, pk, key, tick)).join(",")}]`),
    ),
  );
  return PARTITIONS * PARTITIONS;
}

async function topicStats(platform, topic) {
  const res = await authFetch(new URL(`/v1/topics/${topic}`, platform));
  if (!res.ok) throw new Error(`GET /v1/topics/${topic} → ${res.status}: ${(await res.text()).slice(0, 300)}`);
  const stats = (await res.json()).partitionStats;
  return { head: stats.reduce((n, s) => n + s.head, 0), waiting: stats.reduce((n, s) => n + (s.outbox[ROUTE] ?? 0), 0) };
}

/** Polls every 100 ms until `done(input, internal, output)` or the timeout; returns when it was seen and the last stats. */
async function waitUntil(platform, done, since, timeoutSec, label) {
  let shown = Date.now();
  for (;;) {
    // The input topic first: once its processor rows are gone, every batch they made is in the
    // internal topic, so an internal topic read after it with none waiting has them all applied.
    const input = await topicStats(platform, INPUT);
    const [internal, output] = await Promise.all([INTERNAL, OUTPUT].map((t) => topicStats(platform, t)));
    const now = Date.now();
    if (done(input, internal, output)) return { at: now, complete: true, input, internal, output };
    if (now - since > timeoutSec * 1000) return { at: now, complete: false, input, internal, output };
    if (now - shown >= 5000) {
      shown = now;
      console.log(
        `  ${label} after ${Math.round((now - since) / 1000)} s: ${input.head - input.waiting} re-partitioned, ${input.waiting} waiting for it, ${internal.waiting} batches waiting for the instances, ${output.head} results`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function readTopic(platform, topic) {
  const out = [];
  for (let p = 0; p < PARTITIONS; p++) {
    for (let from = 1; ; ) {
      const res = await authFetch(new URL(`/v1/topics/${topic}/partitions/${p}/events?from=${from}&limit=1000`, platform));
      if (!res.ok) throw new Error(`read ${topic}/${p} → ${res.status}: ${(await res.text()).slice(0, 300)}`);
      const events = (await res.json()).events;
      for (const e of events) {
        const at = { partition: p, sequence: Number(e.sequence), committedAt: Date.parse(e.receivedtime) };
        // The internal topic's events are batches of inputs (ADR 0056): one entry per input, in the batch's order.
        if (Array.isArray(e.data?.inputs)) for (const input of e.data.inputs) out.push({ ...at, data: input });
        else out.push({ ...at, data: e.data });
      }
      if (events.length < 1000) break;
      from = Number(events.at(-1).sequence) + 1;
    }
  }
  return out;
}

/**
 * `cpu` (optional): `{ workerd, machine }` busy seconds so far (bench/cpu.mjs), for workerd's CPU
 * per input from the first publish until the last result was appended, and the cores that other
 * processes used meanwhile.
 */
function cpuFigures(before, after, inputs, seconds) {
  const d = (k) => (before?.[k] === null || before?.[k] === undefined || after?.[k] === null ? null : after[k] - before[k]);
  const workerd = d("workerd");
  const machine = d("machine");
  return {
    // All of workerd (every Worker, object and Miniflare helper in it) per input: comparable with the ingest scenarios' figure.
    workerdCpuUsPerEvent: workerd === null ? null : Math.round((workerd * 1e6) / inputs),
    // Busy cores outside workerd meanwhile (the bench's own polling and publishing included).
    otherCpuCores: workerd === null || machine === null ? null : Math.round((Math.max(0, machine - workerd) / seconds) * 100) / 100,
  };
}

/** Waits (at most 30 s) until workerd used under 5% of a core over half a second; returns the ms waited and the last share. */
async function settle(cpu, { quietCores = 0.05, stepMs = 500, maxMs = 30_000 } = {}) {
  if (cpu === undefined) return null;
  const started = Date.now();
  let last = cpu().workerd;
  for (;;) {
    await new Promise((r) => setTimeout(r, stepMs));
    const now = cpu().workerd;
    const cores = last === null || now === null ? 0 : (now - last) / (stepMs / 1000);
    last = now;
    if (cores < quietCores || Date.now() - started >= maxMs) return { ms: Date.now() - started, cores: Math.round(cores * 100) / 100 };
  }
}

/** Runs of the scenario; `processorBench` reports the median one (by events/s), as the ingest scenarios report the median of theirs. */
export const PROCESSOR_RUNS = 3;
/** Event time between the starts of two runs: a run's windows and ticks never reach the next one's. */
const RUN_SPACING_MS = 2 * 3_600_000;

/**
 * `concurrency`: publish requests in flight — 16, as the batch-ingest scenario's connections (the
 * ratio's denominator). `runs` runs one after another on the same processor, each with its own ids
 * and its own event-time span; the median run (by events/s) is reported, every run under `runs`;
 * then a reset rebuilds the processor from the input topic's history (`backfill`).
 */
export async function processorBench({
  platform,
  queryD1,
  events,
  batchSize = 100,
  concurrency = 16,
  timeoutSec,
  cpu,
  runs = PROCESSOR_RUNS,
  rebuild = true,
}) {
  const all = [];
  for (let run = 0; run < runs; run++) {
    const r = await processorRun({ platform, queryD1, events, batchSize, concurrency, timeoutSec, cpu, run });
    console.log(
      `  run ${run + 1}/${runs}: ${r.eventsPerSec ?? "n/a"} events/s applied, workerd ${r.workerdCpuUsPerEvent ?? "n/a"} µs/event, results exact: ${r.results.exact}`,
    );
    all.push(r);
  }
  const ranked = [...all].sort((a, b) => (a.eventsPerSec ?? -1) - (b.eventsPerSec ?? -1));
  const median = ranked[Math.floor((ranked.length - 1) / 2)];
  // Then the processor is reset and rebuilt from the history the runs left (`rebuild: false` skips it).
  const backfill = rebuild ? await backfillRun(platform, timeoutSec, cpu) : undefined;
  if (backfill !== undefined)
    console.log(
      `  rebuild: ${backfill.inputEvents} input events read back by ${backfill.instances} instances in ${backfill.ms} ms, ${backfill.eventsPerSec ?? "n/a"} input events/s; all applied once: ${backfill.appliedOnce}`,
    );
  return {
    ...median,
    ...(backfill === undefined ? {} : { backfill }),
    // Every run must be complete and exact for the scenario to count as such.
    complete: all.every((r) => r.complete),
    results: { ...median.results, exact: all.every((r) => r.results.exact) },
    runs: all.map((r, i) => ({
      run: i + 1,
      eventsPerSec: r.eventsPerSec,
      workerdCpuUsPerEvent: r.workerdCpuUsPerEvent,
      ms: r.ms,
      ingestEventsPerSec: r.ingestEventsPerSec,
      watermarkToResultP99Ms: r.watermarkToResultMs.p99,
      resultsExact: r.results.exact,
      eventTimeFrom: r.eventTimeSpan.from,
    })),
  };
}

/**
 * After the runs: a reset (ADR 0058), timed until every instance has read the input topic's whole
 * history back (archive and log, merged in commit order), caught up and handed its outputs on.
 * Every input event of the bench is an input of the processor, so the instances' inputs applied
 * must add up to the input events, each once.
 */
async function backfillRun(platform, timeoutSec, cpu) {
  const settled = await settle(cpu);
  const started = Date.now();
  const res = await authFetch(new URL(`/v1/processors/${PROCESSOR}/reset`, platform), { method: "POST" });
  if (res.status !== 202) throw new Error(`processor reset → ${res.status}: ${(await res.text()).slice(0, 300)}`);
  const reset = await res.json();
  let view;
  let complete = false;
  while (Date.now() - started < timeoutSec * 1000) {
    const v = await authFetch(new URL(`/v1/processors/${PROCESSOR}`, platform));
    if (!v.ok) throw new Error(`GET /v1/processors/${PROCESSOR} → ${v.status}: ${(await v.text()).slice(0, 300)}`);
    view = await v.json();
    if (view.partitions.every((p) => p.backfill === null && !p.catchingUp && p.pendingOutputs === 0)) {
      complete = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const ms = Date.now() - started;
  const applied = view?.partitions.reduce((n, p) => n + p.inputsApplied, 0) ?? 0;
  const instances = reset.instances.length;
  return {
    label: `reset → ${PROCESSOR} rebuilt from ${INPUT}'s history by every instance`,
    inputEvents: reset.events,
    instances,
    complete,
    ms,
    // Input events of the history ÷ reset → every instance read it back and caught up.
    eventsPerSec: complete ? Math.round((reset.events / ms) * 1000) : null,
    // Each instance reads the whole history (and keeps its keys): the events read, over all of them.
    readsPerSec: complete ? Math.round(((reset.events * instances) / ms) * 1000) : null,
    applied,
    appliedOnce: complete && applied === reset.events,
    settledBefore: settled,
  };
}

async function processorRun({ platform, queryD1, events, batchSize, concurrency, timeoutSec, cpu, run }) {
  const start = START + run * RUN_SPACING_MS;
  const prefix = `${idPrefix}-r${run}`;
  const plan = streamPlan({ events, keys: KEYS, minutes: MINUTES, start });
  const expected = expectedCounts(plan);
  // Earlier scenarios leave work behind in the same workerd (archive passes, redelivery checks):
  // start on a quiet server, as each ingest run does (bench/run.mjs repeats those that were not).
  const settled = await settle(cpu);
  // Earlier runs' events and results stay: this run counts from where they end.
  const [inputBefore, outputBefore] = await Promise.all([INPUT, OUTPUT].map((t) => topicStats(platform, t)));
  const lateBefore = (await queryD1(`SELECT COUNT(*) AS n FROM dead_letters WHERE subscription = ?`, [ROUTE]))[0]?.n ?? 0;
  const cpuBefore = cpu?.();
  const started = Date.now();
  const ticks = await publish(platform, plan, batchSize, concurrency, prefix);
  const published = Date.now();
  const inputs = events + ticks;
  const applied = await waitUntil(
    platform,
    (input, internal) => input.head >= inputBefore.head + inputs && input.waiting === 0 && internal.waiting === 0,
    started,
    timeoutSec,
    "processor",
  );
  const finished = await waitUntil(
    platform,
    (_i, _n, output) => output.head >= outputBefore.head + expected.size,
    started,
    timeoutSec,
    "results",
  );
  const cpuAfter = cpu?.();

  // Read back: the internal topic holds each instance's inputs in the order it applied them (this run's: by id).
  const internal = (await readTopic(platform, INTERNAL)).filter((e) => String(e.data.id).startsWith(`${prefix}-`));
  const spanEnd = start + MINUTES * MINUTE_MS;
  const results = (await readTopic(platform, OUTPUT))
    .map((e) => ({
      key: e.data.key,
      windowStart: Date.parse(e.data.windowStart),
      windowEnd: Date.parse(e.data.windowEnd),
      count: e.data.count,
      committedAt: e.committedAt,
    }))
    .filter((r) => r.windowStart >= start && r.windowStart < spanEnd);
  const instanceOfKey = new Map(internal.map((e) => [e.data.key, e.partition]));
  const movesByInstance = new Map();
  for (let i = 0; i < PARTITIONS; i++) {
    const mine = internal
      .filter((e) => e.partition === i)
      .map((e) => ({ ...e.data, sequence: e.sequence, internalCommittedAt: e.committedAt }));
    movesByInstance.set(i, replayWatermark(mine, SPEC));
  }
  const latency = watermarkLatencies(results, movesByInstance, instanceOfKey, GRACE_MS);
  const firstCommit = Math.min(...internal.map((e) => e.data.committedAt));
  const lateRows = await queryD1(`SELECT COUNT(*) AS n FROM dead_letters WHERE subscription = ?`, [ROUTE]);
  const ms = applied.at - firstCommit;
  return {
    label: `ingest → ${PROCESSOR} applied by every instance`,
    processor: {
      name: PROCESSOR,
      input: INPUT,
      output: OUTPUT,
      keys: KEYS,
      window: "tumbling 1m",
      aggregates: ["count"],
      outOfOrdernessMs: SPEC.outOfOrdernessMs,
      graceMs: GRACE_MS,
      idleTimeoutMs: SPEC.idleTimeoutMs,
      instances: PARTITIONS,
    },
    events,
    ticks,
    eventTimeSpan: { from: iso(start), minutes: MINUTES, windowMs: MINUTE_MS },
    complete: applied.complete && finished.complete,
    applied: applied.input.head - applied.input.waiting - inputBefore.head,
    internalEvents: applied.internal.head,
    // Inputs applied ÷ (last applied, to the 100 ms poll − first input commit).
    eventsPerSec: applied.complete ? Math.round((inputs / ms) * 1000) : null,
    ms,
    ingestEventsPerSec: Math.round((inputs / (published - started)) * 1000),
    publishMs: published - started,
    results: checkCounts(results, expected),
    lateEvents: lateRows[0] === undefined ? null : lateRows[0].n - lateBefore,
    resultsAppendedMs: finished.at - firstCommit,
    ...cpuFigures(cpuBefore, cpuAfter, inputs, (finished.at - started) / 1000),
    watermarkToResultMs: latency.fromInput,
    internalCommitToResultMs: latency.fromInternal,
    closedByAlarm: latency.closedByAlarm,
    // How long the scenario waited for workerd to go quiet first, and its CPU share then (cores).
    settledBefore: settled,
    settings: { batchSize, concurrency, timeoutSec },
  };
}

/**
 * The shipped demo processors (revenue-per-minute, unpaid-orders) read `orders`, which the ingest
 * scenarios fill with events of other types: their instances start with a backfill of that whole
 * history (ADR 0058) the first time they are called. This starts them (a view calls every
 * instance) and waits until every instance has read it, so the scenarios after it measure the
 * steady state, not that one-time read; what it took is reported.
 */
export async function startDemoProcessors({ platform, timeoutSec }) {
  const started = Date.now();
  let total = 0;
  let complete = false;
  let processors = [];
  while (Date.now() - started < timeoutSec * 1000) {
    const res = await authFetch(new URL("/v1/processors", platform));
    if (!res.ok) throw new Error(`GET /v1/processors → ${res.status}: ${(await res.text()).slice(0, 300)}`);
    processors = (await res.json()).processors;
    for (const p of processors)
      total = Math.max(
        total,
        p.partitions.reduce((n, x) => Math.max(n, x.backfill?.total ?? 0), 0),
      );
    if (processors.every((p) => p.partitions.every((x) => x.backfill === null && !x.catchingUp))) {
      complete = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const instances = processors.reduce((n, p) => n + p.partitions.length, 0);
  return { processors: processors.map((p) => p.name), instances, inputEvents: total, ms: Date.now() - started, complete };
}
