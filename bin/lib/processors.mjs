// @ts-check
/** `processors list`, `processors show <name>`, `processors reset <name>`, `processors late <name>`. */
import { seg, UsageError } from "./api.mjs";
import { command } from "./cli.mjs";
import { DEAD_LETTER_PAGE_DETAILS, DEAD_LETTER_PAGE_OPTIONS, deadLetterPages } from "./dead-letters.mjs";
import { ask, duration, interactive, num, onInterrupt, printJson, progressBar, sleep, table, truncate } from "./ui.mjs";

/**
 * @typedef {{ partition: number, checkpoint: number | null, watermark: string | null, idle: boolean }} ProcessorInput
 * @typedef {{ partition: number, watermark: string | null, inputs: ProcessorInput[], applied: number, head: number, lag: number,
 *   openWindows: number, keys: number, lateEvents: number, results: number, pendingOutputs: number, outputPerSecond: number,
 *   lastOutputError: string | null, catchingUp: boolean,
 *   backfill?: { read: number, total: number } | null }} ProcessorPartition
 * @typedef {{ name: string, kind: "aggregate" | "pattern", description?: string, input: { topic: string, filter?: unknown },
 *   key: string, eventTime: string, output: { topic: string, table: boolean }, internalTopic: string,
 *   window?: Record<string, string>, aggregates?: { name: string, op: string, field?: string }[], emit?: string,
 *   pattern?: { type: string, a: unknown, b: unknown, within: string }, watermark: { outOfOrderness: string, idleTimeout: string, whenIdle?: string },
 *   grace: string, lowWatermark: string | null, lag: number, openWindows: number, lateEvents: number, results: number,
 *   outputPerSecond: number, pendingOutputs: number, partitions: ProcessorPartition[] }} Processor
 * @typedef {{ processor: string, state: string, instances: { partition: number, rebuildThrough: number, inputThrough?: number[] }[], events: number,
 *   status: string }} ResetAnswer
 * @typedef {{ id: string, topic: string, partition: number, sequence: number, eventId: string | null, reason: string,
 *   error: string, deadLetteredAt: string, input: unknown }} ProcessorDeadLetter
 */

const POLL_MS = 500;

/** `2026-01-01T12:01:30.000Z` → `2026-01-01T12:01:30Z`; null → `-`. @param {string | null} t */
const time = (t) => (t === null ? "-" : t.replace(/\.000Z$/, "Z"));

/** Which inputs hold the watermark: `4 (idle: 0, 2)`. @param {ProcessorInput[]} inputs */
function inputsText(inputs) {
  const idle = inputs.filter((i) => i.idle).map((i) => i.partition);
  return idle.length === 0 ? `${inputs.length}, none idle` : `${inputs.length} (idle: ${idle.join(", ")})`;
}

/** The window or pattern as a phrase. @param {Processor} p */
function shapeText(p) {
  if (p.pattern)
    return `${p.pattern.type}: a ${JSON.stringify(p.pattern.a)} then ${p.pattern.type === "absence" ? "no " : ""}b ${JSON.stringify(p.pattern.b)} within ${p.pattern.within}`;
  const w = p.window ?? {};
  const size = w.type === "session" ? `gap ${w.gap}` : w.type === "hopping" ? `${w.size} every ${w.advance}` : `${w.size}`;
  const aggregates = (p.aggregates ?? []).map((a) => `${a.name} = ${a.op}${a.field ? `(${a.field})` : ""}`).join(", ");
  return `${w.type} ${size}; ${aggregates}; emit ${p.emit}`;
}

export const processorsList = command({
  name: "processors list",
  summary: "Stream processors: kind, input and output topics, low watermark, lag, open windows, late events, results",
  async run({ api, json }) {
    /** @type {{ processors: Processor[] }} */
    const body = await api("GET", "/v1/processors");
    if (json) return printJson(body);
    if (body.processors.length === 0) {
      console.log("no processors on topics you may consume");
      return 0;
    }
    const rows = body.processors.map((p) => [
      p.name,
      p.kind,
      p.input.topic,
      p.output.topic,
      time(p.lowWatermark),
      p.lag,
      p.openWindows,
      p.lateEvents,
      p.results,
    ]);
    console.log(table(["NAME", "KIND", "INPUT", "OUTPUT", "WATERMARK", "LAG", "OPEN", "LATE", "RESULTS"], rows));
    return 0;
  },
});

export const processorsShow = command({
  name: "processors show",
  args: ["<name>"],
  summary: "A processor's declaration and, per partition, its watermark, inputs (idle or not), lag, open windows, late events",
  async run({ api, json, args: [name = ""] }) {
    /** @type {Processor} */
    const p = await api("GET", `/v1/processors/${seg(name)}`);
    if (json) return printJson(p);
    console.log(`${p.name} (${p.kind})${p.description ? `: ${p.description}` : ""}`);
    console.log(
      `input      ${p.input.topic}${p.input.filter ? `, filter ${JSON.stringify(p.input.filter)}` : ""} (through ${p.internalTopic})`,
    );
    console.log(`key        ${p.key}; event time: ${p.eventTime}`);
    console.log(`${p.kind === "pattern" ? "pattern" : "window "}    ${shapeText(p)}`);
    const whenIdle = p.watermark.whenIdle === "clock" ? ", follows the clock when all inputs are idle" : "";
    console.log(
      `watermark  out-of-orderness ${p.watermark.outOfOrderness}, idle timeout ${p.watermark.idleTimeout}${whenIdle}, grace ${p.grace}`,
    );
    console.log(`output     ${p.output.topic}${p.output.table ? " and D1 processor_windows" : ""}`);
    console.log(
      `state      low watermark ${time(p.lowWatermark)}, lag ${num(p.lag)}, open windows ${num(p.openWindows)}, late events ${num(p.lateEvents)}, ` +
        `results ${num(p.results)} (${p.outputPerSecond.toFixed(2)}/s), pending outputs ${num(p.pendingOutputs)}`,
    );
    console.log("");
    const rows = p.partitions.map((x) => [
      x.partition,
      time(x.watermark),
      x.applied,
      x.head,
      x.lag,
      x.openWindows,
      x.keys,
      x.lateEvents,
      x.results,
      x.pendingOutputs,
      inputsText(x.inputs),
      partitionState(x),
    ]);
    console.log(
      table(["PARTITION", "WATERMARK", "APPLIED", "HEAD", "LAG", "OPEN", "KEYS", "LATE", "RESULTS", "PENDING", "INPUTS", "STATE"], rows),
    );
    return 0;
  },
});

/** A partition's STATE cell. @param {ProcessorPartition} x */
function partitionState(x) {
  if (x.backfill) return `backfilling ${Math.floor((x.backfill.read / Math.max(1, x.backfill.total)) * 100)}%`;
  if (x.catchingUp) return "catching up";
  return x.lastOutputError ? truncate(`output error: ${x.lastOutputError}`, 60) : "ok";
}

/**
 * How far the rebuild is, in input events read: each instance reads the input topic's history
 * through the heads it took at the reset (ADR 0058), then its partition from where it stood.
 * @param {Processor} p @param {ResetAnswer} reset
 */
function rebuildProgress(p, reset) {
  let done = 0;
  let total = 0;
  let finished = true;
  for (const target of reset.instances) {
    const x = p.partitions.find((q) => q.partition === target.partition);
    const own = (target.inputThrough ?? []).reduce((n, h) => n + h, 0);
    total += own;
    done += x?.backfill ? Math.min(x.backfill.read, own) : x ? own : 0;
    if (x === undefined || x.backfill || x.applied < target.rebuildThrough || x.catchingUp) finished = false;
  }
  return { done, total, finished };
}

export const processorsReset = command({
  name: "processors reset",
  args: ["<name>"],
  summary: "Drop a processor's window state and rebuild it from its input topic's history, showing progress until it has caught up",
  details: [
    "Every instance forgets its state and reads the input topic again from its first event (archive, then log), in commit",
    "order, then continues with its partition of processor.<name>. Results come back under the same ids, so none is appended",
    "twice. Asks for confirmation on a terminal unless --yes; without a terminal --yes is required. Then polls the processor",
    "every 500 ms, drawing input events read/total on stderr (every instance reads the history: the total counts each), until",
    "every partition has read it and caught up (exit 0). --detach returns after the reset; Ctrl-C stops watching (exit 130),",
    "the rebuild goes on: follow it with `eventline processors show <name>`.",
  ].join("\n"),
  options: {
    yes: { type: "boolean", desc: "do not ask for confirmation" },
    detach: { type: "boolean", desc: "reset and exit without watching the rebuild" },
  },
  async run({ api, json, values, args: [name = ""] }) {
    if (!values.yes) {
      if (!interactive()) throw new UsageError("a reset drops the processor's state: pass --yes to confirm when not on a terminal");
      const answer = await ask(`Drop the state of processor ${JSON.stringify(name)} and rebuild it from its input topic? [y/N] `);
      if (!/^y(es)?$/i.test(answer)) {
        console.log("not reset");
        return 0;
      }
    }
    /** @type {ResetAnswer} */
    const reset = await api("POST", `/v1/processors/${seg(name)}/reset`);
    const started = Date.now();
    const announced = `processor ${reset.processor} reset on ${reset.instances.length} partitions: rebuilding from ${num(reset.events)} input events`;
    if (values.detach) {
      if (json) return printJson(reset);
      console.log(announced);
      console.log(`follow it with: eventline processors show ${reset.processor}`);
      return 0;
    }
    process.stderr.write(`${announced}\n`);
    const bar = progressBar();
    let stop = false;
    const restore = onInterrupt(() => {
      stop = true;
    });
    /** @type {Processor} */
    let p;
    for (;;) {
      p = await api("GET", reset.status);
      const { done, total, finished } = rebuildProgress(p, reset);
      const pct = total > 0 ? Math.floor((done / total) * 100) : 100;
      bar.draw(
        done,
        total,
        `rebuilding: ${num(done)}/${num(total)} input events read ${pct}%, open windows ${num(p.openWindows)}, results ${num(p.results)}`,
        finished,
      );
      if (finished) break;
      if (stop) {
        bar.end();
        restore();
        process.stderr.write(`stopped watching: the rebuild goes on; follow it with: eventline processors show ${reset.processor}\n`);
        return 130;
      }
      await sleep(POLL_MS);
    }
    bar.end();
    restore();
    if (json) return printJson({ reset, processor: p });
    console.log(
      `processor ${reset.processor} rebuilt from ${num(reset.events)} input events in ${duration((Date.now() - started) / 1000)}; ` +
        `lag ${num(p.lag)}, open windows ${num(p.openWindows)}, results ${num(p.results)}, late events ${num(p.lateEvents)}`,
    );
    return 0;
  },
});

/** A dead letter's key and event time (late events carry them). @param {unknown} input */
function lateFields(input) {
  const i = typeof input === "object" && input !== null ? /** @type {Record<string, unknown>} */ (input) : {};
  return {
    key: typeof i.key === "string" ? i.key : "-",
    eventTime: typeof i.eventTime === "number" ? time(new Date(i.eventTime).toISOString()) : "-",
  };
}

export const processorsLate = command({
  name: "processors late",
  args: ["<name>"],
  summary: "A processor's dead letters (late events, events without a key), newest first",
  details: DEAD_LETTER_PAGE_DETAILS,
  options: DEAD_LETTER_PAGE_OPTIONS,
  async run({ api, json, values, args: [name = ""] }) {
    /** @type {{ letters: ProcessorDeadLetter[], page: { total: number, next: string | null }, body: unknown }} */
    const { letters, page, body } = await deadLetterPages(api, `/v1/processors/${seg(name)}/dead-letters`, values);
    if (json) return printJson(body);
    if (letters.length === 0) {
      console.log(`no dead letters for processor ${name}${values.after ? " after that cursor" : ""} (total ${num(page.total)})`);
      return 0;
    }
    const rows = letters.map((d) => {
      const { key, eventTime } = lateFields(d.input);
      return [
        time(d.deadLetteredAt),
        `${d.topic}/${d.partition}:${d.sequence}`,
        d.eventId ?? "-",
        d.reason,
        key,
        eventTime,
        truncate(d.error, 70),
      ];
    });
    console.log(table(["DEAD-LETTERED", "POSITION", "EVENT", "REASON", "KEY", "EVENT TIME", "ERROR"], rows));
    console.log(`\n${num(letters.length)} of ${num(page.total)} dead letters${page.next ? `; next page: --after ${page.next}` : ""}`);
    return 0;
  },
});
