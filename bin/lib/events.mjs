// @ts-check
/** `tail <topic>` and `publish <topic>`. */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { ApiError, seg, UsageError } from "./api.mjs";
import { command, intOption, jsonOption, str } from "./cli.mjs";
import { duration, num, onInterrupt, printJson, progressBar, sleep, stopOnInterrupt, truncate } from "./ui.mjs";

const BATCH_TYPE = "application/cloudevents-batch+json";
const EVENT_TYPE = "application/cloudevents+json";
const RETRIES = 5;

/**
 * @typedef {Record<string, unknown> & { id: string, type: string, partition: number, sequence: string,
 *   subject?: string, time?: string, receivedtime?: string }} StoredEvent
 * @typedef {{ events: StoredEvent[], next: { from: number, href: string }, hasMore: boolean }} EventPage
 * @typedef {{ id: string, partition: number, sequence: number, duplicate: boolean }} Appended
 */

/** The `from` of a page's next href. @param {string} href */
const nextFrom = (href) => Number(new URL(href, "http://x").searchParams.get("from") ?? "1");

/** `<partition>:<sequence> <time> <type> <subject> <id> <data>`. @param {StoredEvent} e */
function eventLine(e) {
  const data =
    "data" in e ? truncate(JSON.stringify(e.data) ?? "", 80) : "data_base64" in e ? `base64:${truncate(String(e.data_base64), 20)}` : "-";
  return `${e.partition}:${Number(e.sequence)} ${e.time ?? e.receivedtime ?? "-"} ${e.type} ${e.subject ?? "-"} ${e.id} ${data}`;
}

export const tail = command({
  name: "tail",
  args: ["<topic>"],
  summary: "Print a topic's events in sequence order per partition (optionally following new ones)",
  details: [
    "One line per event: <partition>:<sequence> <time> <type> <subject> <id> <data as compact JSON>.",
    "Without --partition every partition is read, one after the other (with --follow, side by side).",
    "With --json each stored event is printed as one JSON line (NDJSON).",
    "--follow then waits for new events on each partition's live stream (long-poll on",
    "/v1/topics/<topic>/partitions/<p>/stream, printed within milliseconds of their commit) until Ctrl-C, which exits 0.",
  ].join("\n"),
  options: {
    partition: { type: "string", arg: "N", desc: "only this partition" },
    from: { type: "string", arg: "SEQ", desc: "first sequence to print in each partition (default 1)" },
    limit: { type: "string", arg: "N", desc: "stop after N events per partition (default: read up to the head)" },
    follow: { type: "boolean", short: "f", desc: "keep printing new events as they are committed, until Ctrl-C" },
    interval: { type: "string", arg: "MS", desc: "pause for --follow after a wait that brought nothing, in ms (default 0)" },
  },
  async run({ api, json, values, args: [topic = ""] }) {
    const only = intOption(values.partition, "--partition");
    const from = intOption(values.from, "--from", { min: 1 }) ?? 1;
    const limit = intOption(values.limit, "--limit", { min: 1 }) ?? Number.POSITIVE_INFINITY;
    const interval = intOption(values.interval, "--interval", { min: 0 }) ?? 0;
    const follow = values.follow === true;
    /** @type {number[]} */
    let partitions;
    if (only === undefined) {
      /** @type {{ partitions: number }} */
      const t = await api("GET", `/v1/topics/${seg(topic)}`);
      partitions = Array.from({ length: t.partitions }, (_, p) => p);
    } else {
      partitions = [only];
    }
    if (follow) stopOnInterrupt();

    /** @param {number} partition */
    const readPartition = async (partition) => {
      const pageSize = Number.isFinite(limit) ? `&limit=${Math.min(limit, 1000)}` : "";
      let path = `/v1/topics/${seg(topic)}/partitions/${partition}/events?from=${from}${pageSize}`;
      let printed = 0;
      for (;;) {
        /** @type {EventPage} */
        const page = await api("GET", path);
        for (const event of page.events.slice(0, limit - printed)) {
          console.log(json ? JSON.stringify(event) : eventLine(event));
          printed++;
        }
        if (printed >= limit) return;
        path = page.next.href;
        if (page.hasMore) continue;
        if (!follow) return;
        break;
      }
      // Caught up: follow the partition's live stream (offsets are sequences; ADR 0046).
      let offset = `${"0".repeat(16)}_${String(Math.max(0, nextFrom(path) - 1)).padStart(16, "0")}`;
      for (;;) {
        /** @type {{ status: number, headers: Headers, body: StoredEvent[] | null }} */
        const res = await api("GET", `/v1/topics/${seg(topic)}/partitions/${partition}/stream?offset=${offset}&live=long-poll`, {
          withHeaders: true,
        });
        for (const event of (res.body ?? []).slice(0, limit - printed)) {
          console.log(json ? JSON.stringify(event) : eventLine(event));
          printed++;
        }
        if (printed >= limit) return;
        offset = res.headers.get("stream-next-offset") ?? offset;
        if (res.status === 204 && interval > 0) await sleep(interval);
      }
    };
    if (follow) await Promise.all(partitions.map(readPartition));
    else for (const p of partitions) await readPartition(p);
    return 0;
  },
});

export const publish = command({
  name: "publish",
  args: ["<topic>"],
  summary: "Publish one CloudEvent, or the events of an NDJSON file in batches",
  details: [
    "One event: --type is required; prints `stored <id> at <partition>:<sequence>` (or `duplicate …`",
    "when that source + id was already stored with the same content).",
    "",
    "--file: each non-empty line is a full CloudEvent JSON object; with --type each line is the",
    "`data` of an event built from --type/--source/--subject and a random id. Lines are sent in",
    "order, in batches (application/cloudevents-batch+json). Progress goes to stderr (a bar on a",
    "terminal, plain lines otherwise); a summary (stored, duplicates, failed) ends the run. A 503",
    `or 429 is retried after its Retry-After up to ${RETRIES} times (re-sending is safe); any other`,
    "failed batch stops the run with exit 1 after the summary of what was sent. --json prints each",
    "event's result as one JSON line. `--file -` reads standard input.",
    "",
    "--dataschema names the data schema version the data is checked against (docs/schemas.md): a",
    "full URI, or a version number N for <url>/v1/topics/<topic>/types/<type>/schemas/N (needs",
    "--type). Without it, a type with schema versions is checked against its latest.",
  ].join("\n"),
  options: {
    type: { type: "string", arg: "TYPE", desc: "event type (required without --file)" },
    source: { type: "string", arg: "URI", desc: "event source (default /cli)" },
    subject: { type: "string", arg: "SUBJECT", desc: "event subject (also the partition key)" },
    id: { type: "string", arg: "ID", desc: "event id (default a random UUID)" },
    data: { type: "string", arg: "JSON", desc: "event data, as JSON" },
    file: { type: "string", arg: "PATH", desc: "NDJSON file of events (or of data objects with --type)" },
    batch: { type: "string", arg: "N", desc: "events per request with --file (default 100)" },
    dataschema: { type: "string", arg: "URI|N", desc: "data schema version: a URI, or a version number of --type" },
  },
  async run(ctx) {
    const { values } = ctx;
    const file = str(values.file);
    const source = str(values.source) ?? "/cli";
    const type = str(values.type);
    const subject = str(values.subject);
    const dataschema = dataschemaOption(str(values.dataschema), ctx.url, ctx.args[0] ?? "", type);
    /** @param {unknown} data @param {string} id */
    const build = (data, id) => ({
      specversion: "1.0",
      id,
      source,
      type,
      ...(subject === undefined ? {} : { subject }),
      ...(dataschema === undefined ? {} : { dataschema }),
      ...(data === undefined ? {} : { data }),
    });
    if (file === undefined) {
      if (type === undefined) throw new UsageError("--type is required (or --file)", "publish");
      if (values.batch !== undefined) throw new UsageError("--batch goes with --file", "publish");
      const event = build(jsonOption(values.data, "--data"), str(values.id) ?? randomUUID());
      return publishOne(ctx, event);
    }
    if (values.id !== undefined || values.data !== undefined)
      throw new UsageError("--id and --data are for one event, not with --file", "publish");
    const size = intOption(values.batch, "--batch", { min: 1 }) ?? 100;
    if (dataschema !== undefined && type === undefined)
      throw new UsageError("--dataschema goes with --type (events read whole from --file name their own)", "publish");
    const events = readNdjson(file).map((value) => {
      if (type !== undefined) return build(value.value, randomUUID());
      if (typeof value.value !== "object" || value.value === null || Array.isArray(value.value)) {
        throw new UsageError(`${value.where}: expected a CloudEvent JSON object (or give --type to send lines as data)`);
      }
      return value.value;
    });
    return publishMany(ctx, events, size);
  },
});

/**
 * `--dataschema`: a URI as given, or a version number turned into the type's schema URI.
 * @param {string | undefined} value @param {string} url @param {string} topic @param {string | undefined} type
 */
function dataschemaOption(value, url, topic, type) {
  if (value === undefined || !/^\d+$/.test(value)) return value;
  const version = Number(value);
  if (version < 1) throw new UsageError("--dataschema: versions start at 1", "publish");
  if (type === undefined) throw new UsageError("--dataschema N needs --type (the version is one of that type's)", "publish");
  return `${url.replace(/\/+$/, "")}/v1/topics/${seg(topic)}/types/${seg(type)}/schemas/${version}`;
}

/** @param {import("./cli.mjs").Context} ctx @param {Record<string, unknown>} event */
async function publishOne({ api, json, args: [topic = ""] }, event) {
  /** @type {{ events: Appended[] }} */
  const res = await api("POST", `/v1/topics/${seg(topic)}/events`, {
    raw: JSON.stringify(event),
    contentType: EVENT_TYPE,
    retries: RETRIES,
    onRetry: retryNotice(() => {}),
  });
  if (json) return printJson(res);
  for (const e of res.events) console.log(`${e.duplicate ? "duplicate" : "stored"} ${e.id} at ${e.partition}:${e.sequence}`);
  return 0;
}

/**
 * Reads an NDJSON file (`-`: stdin): one JSON value per non-empty line.
 * @param {string} file
 * @returns {{ value: unknown, where: string }[]}
 */
function readNdjson(file) {
  let text;
  try {
    text = readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${err instanceof Error ? err.message : err}`);
  }
  /** @type {{ value: unknown, where: string }[]} */
  const values = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    const where = `${file}:${i + 1}`;
    try {
      values.push({ value: JSON.parse(line), where });
    } catch (err) {
      throw new UsageError(`${where}: not valid JSON: ${err instanceof Error ? err.message : err}`);
    }
  });
  if (values.length === 0) throw new UsageError(`${file} has no events`);
  return values;
}

/** A retry notice on stderr (clearing the bar first). @param {() => void} clear */
const retryNotice = (clear) => (/** @type {ApiError} */ error, /** @type {number} */ attempt, /** @type {number} */ wait) => {
  clear();
  process.stderr.write(`${error.status} ${error.problem.title}: retrying in ${wait}s (retry ${attempt}/${RETRIES})\n`);
};

/**
 * @param {import("./cli.mjs").Context} ctx
 * @param {unknown[]} events
 * @param {number} size
 */
async function publishMany({ api, json, args: [topic = ""] }, events, size) {
  const total = events.length;
  const bar = progressBar();
  const started = Date.now();
  const counts = { sent: 0, stored: 0, duplicates: 0, failed: 0 };
  const rate = () => counts.sent / Math.max(0.001, (Date.now() - started) / 1000);
  const show = (force = false) => {
    const r = rate();
    const pct = Math.floor((counts.sent / total) * 100);
    bar.draw(
      counts.sent,
      total,
      `sent ${num(counts.sent)}/${num(total)} events ${pct}% ${num(Math.round(r))} ev/s ETA ${duration((total - counts.sent) / r)}`,
      force,
    );
  };
  const summary = () => {
    const notSent = total - counts.sent - counts.failed;
    const line =
      `published ${num(counts.sent)} of ${num(total)} events to ${topic}: stored ${num(counts.stored)}, duplicates ${num(counts.duplicates)}, ` +
      `failed ${num(counts.failed)}${notSent > 0 ? `, not sent ${num(notSent)}` : ""} (${duration((Date.now() - started) / 1000)}, ${num(Math.round(rate()))} ev/s)`;
    if (json) process.stderr.write(`${line}\n`);
    else console.log(line);
  };
  const interrupted = () => {
    bar.end();
    summary();
    process.exit(130);
  };
  onInterrupt(interrupted);

  for (let i = 0; i < total; i += size) {
    const batch = events.slice(i, i + size);
    /** @type {{ events: Appended[] }} */
    let res;
    try {
      res = await api("POST", `/v1/topics/${seg(topic)}/events`, {
        raw: JSON.stringify(batch),
        contentType: BATCH_TYPE,
        retries: RETRIES,
        onRetry: retryNotice(() => bar.clear()),
      });
    } catch (err) {
      // A batch failing in some partitions lists what happened to each of its events.
      const outcomes = err instanceof ApiError && Array.isArray(err.problem.events) ? err.problem.events : [];
      const stored = outcomes.filter((e) => e.status === "stored").length;
      const duplicates = outcomes.filter((e) => e.status === "duplicate").length;
      counts.stored += stored;
      counts.duplicates += duplicates;
      counts.sent += stored + duplicates;
      counts.failed += batch.length - stored - duplicates;
      bar.end();
      summary();
      throw err;
    }
    for (const e of res.events) {
      if (e.duplicate) counts.duplicates++;
      else counts.stored++;
      if (json) console.log(JSON.stringify(e));
    }
    counts.sent += batch.length;
    show(counts.sent === total);
  }
  bar.end();
  summary();
  return 0;
}
