// @ts-check
/** `replay` (start and watch), `replay status <id>`, `replay list`, `replay cancel <id>`. */
import { seg, UsageError } from "./api.mjs";
import { command, intOption, jsonOption, str } from "./cli.mjs";
import { ask, duration, interactive, num, onInterrupt, printJson, progressBar, sleep, table } from "./ui.mjs";

const POLL_MS = 500;
const FINISHED = new Set(["done", "cancelled", "failed"]);

/**
 * @typedef {{ sequence: number } | { time: string }} Position
 * @typedef {{ partition: number, from: number, to: number, position: number, scanned: number, sent: number, done: boolean }} ReplayPartition
 * @typedef {{ id: string, topic: string, subscription: string, state: "running" | "done" | "cancelled" | "failed",
 *   rate: number, from: Position, to: Position | null, filter: Record<string, unknown> | null,
 *   createdAt: string, updatedAt: string, finishedAt: string | null, error: string | null,
 *   partitions: ReplayPartition[], scanned: number, sent: number, resent?: number, total: number,
 *   eventsPerSecond: number, etaSeconds: number | null, settlement?: "watched" | "sent",
 *   handled?: number, alreadyHandled?: number, deadLettered?: number, held?: number, awaiting?: number }} Replay
 */

/**
 * `12` → `{sequence: 12}`; an ISO date/time → `{time}` (normalised to UTC).
 * @param {string} value
 * @param {string} name
 * @returns {Position}
 */
function position(value, name) {
  if (/^\d+$/.test(value)) {
    const sequence = Number(value);
    if (sequence >= 1 && Number.isSafeInteger(sequence)) return { sequence };
  } else if (/^\d{4}-\d{2}-\d{2}/.test(value) && !Number.isNaN(Date.parse(value))) {
    return { time: new Date(value).toISOString() };
  }
  throw new UsageError(`${name} must be a sequence (1, 2, …) or an ISO 8601 time, not ${JSON.stringify(value)}`);
}

/** @param {Position | null} p */
const positionText = (p) => (p === null ? "head" : "sequence" in p ? `sequence ${p.sequence}` : p.time);

/**
 * Where the job stops: its `to`, or, without one, each partition's head as it was when the job
 * started (fixed then: later events reach the subscription live, not through this job).
 * @param {Replay} v
 */
const endText = (v) =>
  v.to !== null ? positionText(v.to) : `the head at start (${v.partitions.map((p) => `p${p.partition} ${num(p.to)}`).join(", ")})`;

/** The bar's text: state, scanned/total, sent, rate, ETA. @param {Replay} v */
const progressText = (v) =>
  `${v.state}: scanned ${num(v.scanned)}/${num(v.total)} sent ${num(v.sent)} ${v.eventsPerSecond.toFixed(1)} ev/s ETA ${duration(v.etaSeconds)}`;

/**
 * What the target settled, for a job that watches it (servers before ADR 0035 do not say):
 * `, delivered 7 (handled 4, already handled 3, dead-lettered 0, awaiting 0)`.
 * @param {Replay} v
 */
function deliveredText(v) {
  if (v.settlement !== "watched") return "";
  const delivered = (v.handled ?? 0) + (v.alreadyHandled ?? 0) + (v.deadLettered ?? 0);
  return (
    `, delivered ${num(delivered)} (handled ${num(v.handled ?? 0)}, already handled ${num(v.alreadyHandled ?? 0)}, ` +
    `dead-lettered ${num(v.deadLettered ?? 0)}, awaiting ${num(v.awaiting ?? 0)})`
  );
}

/** The final line of a job. @param {Replay} v */
function finalLine(v) {
  const took = v.finishedAt ? ` in ${duration((Date.parse(v.finishedAt) - Date.parse(v.createdAt)) / 1000)}` : "";
  return `replay ${v.id} ${v.state}: scanned ${num(v.scanned)}/${num(v.total)}, sent ${num(v.sent)}${v.resent ? ` (resent ${num(v.resent)})` : ""}${deliveredText(v)}${took}${v.error ? `; error: ${v.error}` : ""}`;
}

/**
 * Polls the job every 500 ms with a progress bar on stderr until it finishes. Ctrl-C asks
 * whether to cancel it (on a terminal) or detaches (otherwise); either way the exit code is 130.
 * @param {import("./cli.mjs").Context} ctx
 * @param {Replay} view
 */
async function watch({ api, json }, view) {
  const bar = progressBar();
  /** @type {(value: "interrupt") => void} */
  let interrupt = () => {};
  const interrupted = new Promise((resolve) => {
    interrupt = resolve;
  });
  const restore = onInterrupt(() => interrupt("interrupt"));
  process.stderr.write(`replay ${view.id}: ${view.topic} → ${view.subscription}\n`);
  let v = view;
  while (!FINISHED.has(v.state)) {
    bar.draw(v.scanned, v.total, progressText(v));
    const poll = sleep(POLL_MS).then(() => api("GET", `/v1/replays/${seg(v.id)}`));
    poll.catch(() => {}); // a poll still in flight after Ctrl-C must not crash the prompt
    const next = await Promise.race([interrupted, poll]).catch((err) => {
      bar.end();
      throw err;
    });
    if (next === "interrupt") {
      bar.clear();
      restore();
      return onCtrlC(api, json, v);
    }
    v = /** @type {Replay} */ (next);
  }
  restore();
  bar.draw(v.scanned, v.total, progressText(v), true);
  bar.end();
  return report(v, json);
}

/**
 * Prints a finished job (the final line: stdout when done, stderr otherwise) and returns its exit
 * code: 0 for done, 1 for failed or cancelled.
 * @param {Replay} v
 * @param {boolean} json
 */
function report(v, json) {
  if (json) printJson(v);
  else (v.state === "done" ? process.stdout : process.stderr).write(`${finalLine(v)}\n`);
  return v.state === "done" ? 0 : 1;
}

/**
 * @param {import("./api.mjs").Api} api
 * @param {boolean} json
 * @param {Replay} v
 */
async function onCtrlC(api, json, v) {
  if (interactive()) {
    const answer = await ask(`Cancel replay ${v.id}? [y/N] `);
    if (/^y(es)?$/i.test(answer)) {
      /** @type {Replay} */
      const after = await api("DELETE", `/v1/replays/${seg(v.id)}`);
      if (json) printJson(after);
      else console.log(finalLine(after));
      return 130;
    }
  }
  process.stderr.write(
    `detached: replay ${v.id} keeps running (${progressText(v)})\nwatch it with: eventline replay status ${v.id} --watch\n`,
  );
  return 130;
}

export const replay = command({
  name: "replay",
  summary: "Replay a range of a topic to one subscription, with a live progress bar",
  details: [
    "--from/--to take a sequence (per partition; --to inclusive, default each partition's head)",
    "or an ISO 8601 time (the first event committed at or after it).",
    "The job runs on the server; this command polls it every 500 ms, drawing scanned/total, sent,",
    "rate, ETA and state on stderr, until it is done (exit 0), failed or cancelled (exit 1).",
    "Ctrl-C on a terminal asks `Cancel replay <id>? [y/N]`: y cancels it (DELETE) and prints its",
    "final state, N detaches and leaves it running; without a terminal Ctrl-C detaches. Both exit 130.",
    "--detach starts the job and returns at once (the job as JSON with --json).",
  ].join("\n"),
  options: {
    topic: { type: "string", arg: "TOPIC", desc: "topic to read (required)" },
    subscription: { type: "string", arg: "NAME", desc: "the subscription that receives the events (required)" },
    from: { type: "string", arg: "SEQ|TIME", desc: "where to start (required)" },
    to: { type: "string", arg: "SEQ|TIME", desc: "where to stop, inclusive (default: the head when it starts)" },
    partitions: { type: "string", arg: "LIST", desc: "comma-separated partitions, e.g. 0,2 (default: all)" },
    filter: { type: "string", arg: "JSON", desc: 'content filter, e.g. \'{"type":[{"prefix":"orders."}]}\'' },
    rate: { type: "string", arg: "N", desc: "events per second (server default 1000)" },
    detach: { type: "boolean", desc: "start the job and exit without watching it" },
  },
  async run(ctx) {
    const { values, api, json } = ctx;
    /** @param {string} name */
    const required = (name) => {
      const value = str(values[name]);
      if (value === undefined) throw new UsageError(`--${name} is required`, "replay");
      return value;
    };
    const topic = required("topic");
    const subscription = required("subscription");
    const from = position(required("from"), "--from");
    const to = values.to === undefined ? undefined : position(String(values.to), "--to");
    const partitions = str(values.partitions)
      ?.split(",")
      .map((p) => /** @type {number} */ (intOption(p.trim(), "--partitions")));
    const filter = jsonOption(values.filter, "--filter");
    if (filter !== undefined && (typeof filter !== "object" || filter === null || Array.isArray(filter))) {
      throw new UsageError("--filter must be a JSON object", "replay");
    }
    const rate = intOption(values.rate, "--rate", { min: 1 });
    const body = {
      topic,
      subscription,
      from,
      ...(to && { to }),
      ...(partitions && { partitions }),
      ...(filter !== undefined && { filter }),
      ...(rate && { rate }),
    };
    /** @type {Replay} */
    const view = await api("POST", "/v1/replays", { body });
    if (values.detach) {
      if (json) return printJson(view);
      console.log(`replay ${view.id} started: ${topic} → ${subscription}, ${num(view.total)} events to scan`);
      console.log(`watch it with: eventline replay status ${view.id} --watch`);
      return 0;
    }
    return watch(ctx, view);
  },
});

export const replayStatus = command({
  name: "replay status",
  args: ["<id>"],
  summary: "A replay's state and per-partition progress (--watch: the live bar until it ends)",
  details: "Without --watch the exit code is 0 whatever the state; with --watch it is replay's.",
  options: { watch: { type: "boolean", short: "w", desc: "poll with a progress bar until the job finishes" } },
  async run(ctx) {
    const { api, json, values, args } = ctx;
    /** @type {Replay} */
    const v = await api("GET", `/v1/replays/${seg(args[0] ?? "")}`);
    if (values.watch) return FINISHED.has(v.state) ? report(v, json) : watch(ctx, v);
    if (json) return printJson(v);
    console.log(`replay ${v.id} ${v.state}: ${v.topic} → ${v.subscription}`);
    console.log(
      `range     ${positionText(v.from)} to ${endText(v)}${v.filter ? `, filter ${JSON.stringify(v.filter)}` : ""}, rate ${num(v.rate)} ev/s`,
    );
    console.log(
      `progress  scanned ${num(v.scanned)}/${num(v.total)}, sent ${num(v.sent)}${v.resent ? `, resent ${num(v.resent)}` : ""}, ` +
        `${v.eventsPerSecond.toFixed(1)} ev/s, ETA ${duration(v.etaSeconds)}`,
    );
    if (v.settlement === "watched") console.log(`settled   ${deliveredText(v).slice(", ".length)}`);
    console.log(`created   ${v.createdAt}, updated ${v.updatedAt}${v.finishedAt ? `, finished ${v.finishedAt}` : ""}`);
    if (v.error) console.log(`error     ${v.error}`);
    console.log("");
    const rows = v.partitions.map((p) => [p.partition, p.from, p.to, p.position, p.scanned, p.sent, p.done ? "yes" : "no"]);
    console.log(table(["PARTITION", "FROM", "TO", "POSITION", "SCANNED", "SENT", "DONE"], rows));
    return 0;
  },
});

export const replayList = command({
  name: "replay list",
  summary: "Replay jobs, newest first",
  async run({ api, json }) {
    /** @type {{ replays: Replay[] }} */
    const body = await api("GET", "/v1/replays");
    if (json) return printJson(body);
    if (body.replays.length === 0) {
      console.log("no replays");
      return 0;
    }
    const rows = body.replays.map((v) => [
      v.id,
      v.state,
      v.topic,
      v.subscription,
      `${num(v.scanned)}/${num(v.total)}`,
      v.sent,
      v.createdAt,
    ]);
    console.log(table(["ID", "STATE", "TOPIC", "SUBSCRIPTION", "SCANNED", "SENT", "CREATED"], rows));
    return 0;
  },
});

export const replayCancel = command({
  name: "replay cancel",
  args: ["<id>"],
  summary: "Cancel a replay (what was sent stays sent) and print its final state",
  async run({ api, json, args }) {
    /** @type {Replay} */
    const v = await api("DELETE", `/v1/replays/${seg(args[0] ?? "")}`);
    if (json) return printJson(v);
    console.log(finalLine(v));
    return 0;
  },
});
