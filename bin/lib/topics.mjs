// @ts-check
/** `topics`, `topic <name>`, `archive <topic>`. */
import { seg } from "./api.mjs";
import { command } from "./cli.mjs";
import { num, printJson, table, truncate } from "./ui.mjs";

/**
 * @typedef {{ first: number, last: number, segments: number, bytes: number }} ArchivedRange
 * @typedef {{ partition: number, head: number, count: number, first: number,
 *   archived?: ArchivedRange | null, outbox?: Record<string, number> }} PartitionStats
 * @typedef {{ name: string, description?: string, partitions: number, retentionHours: number,
 *   strictTypes: boolean, schemaTypes: string[], partitionStats: PartitionStats[] }} Topic
 */

/** @param {PartitionStats[]} stats */
const hasArchive = (stats) => stats.some((s) => "archived" in s);

/** `first-last (N segments, B bytes)` or `-`. @param {ArchivedRange | null | undefined} a */
const archivedText = (a) => (a ? `${a.first}-${a.last} (${num(a.segments)} seg, ${bytes(a.bytes)})` : "-");

/** @param {number} n */
const bytes = (n) => (n < 1024 ? `${n} B` : n < 1024 ** 2 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`);

export const topics = command({
  name: "topics",
  summary: "List topics: partitions, events and head per partition, archived range",
  details: "HEADS lists each partition's head sequence (events committed) in partition order.",
  async run({ api, json }) {
    /** @type {{ topics: Topic[] }} */
    const body = await api("GET", "/v1/topics");
    if (json) return printJson(body);
    const archive = body.topics.some((t) => hasArchive(t.partitionStats));
    const rows = body.topics.map((t) => {
      const heads = t.partitionStats.map((s) => s.head);
      const archivedEvents = t.partitionStats.reduce((n, s) => n + (s.archived ? s.archived.last - s.archived.first + 1 : 0), 0);
      const segments = t.partitionStats.reduce((n, s) => n + (s.archived?.segments ?? 0), 0);
      const row = [t.name, t.partitions, heads.reduce((a, b) => a + b, 0), truncate(heads.join(","), 48)];
      if (archive) row.push(segments > 0 ? `${num(archivedEvents)} events, ${num(segments)} seg` : "-");
      return row;
    });
    console.log(table(["TOPIC", "PARTITIONS", "EVENTS", "HEADS", ...(archive ? ["ARCHIVED"] : [])], rows));
    return 0;
  },
});

export const topic = command({
  name: "topic",
  args: ["<name>"],
  summary: "One topic: config, and per partition head, count, first, archived range, outbox",
  details:
    "COUNT and FIRST describe the events still in the partition log; ARCHIVED the range sealed into\nR2 segments; OUTBOX the events not yet handed to each subscription's queue.",
  async run({ api, json, args: [name = ""] }) {
    /** @type {Topic} */
    const t = await api("GET", `/v1/topics/${seg(name)}`);
    if (json) return printJson(t);
    console.log(`${t.name}${t.description ? `: ${t.description}` : ""}`);
    console.log(
      `partitions ${t.partitions}, retention ${t.retentionHours} h, ${t.strictTypes ? "strict types" : "any type"}` +
        (t.schemaTypes.length > 0 ? `, schemas: ${t.schemaTypes.join(", ")}` : ""),
    );
    console.log("");
    const archive = hasArchive(t.partitionStats);
    const rows = t.partitionStats.map((s) => {
      const outbox = Object.entries(s.outbox ?? {})
        .filter(([, n]) => n > 0)
        .map(([sub, n]) => `${sub}:${n}`)
        .join(" ");
      return [s.partition, s.head, s.count, s.first, ...(archive ? [archivedText(s.archived)] : []), outbox || "-"];
    });
    console.log(table(["PARTITION", "HEAD", "COUNT", "FIRST", ...(archive ? ["ARCHIVED"] : []), "OUTBOX"], rows));
    return 0;
  },
});

export const archive = command({
  name: "archive",
  args: ["<topic>"],
  summary: "Seal and archive every partition's unarchived events to R2 now",
  details: "Prints per partition the segments sealed, the events they hold, and the sequence archived through.",
  async run({ api, json, args: [name = ""] }) {
    /** @type {{ topic: string, partitions: { partition: number, archivedThrough: number, trimmed?: number,
     *   sealed: { first: number, last: number, count: number, bytes: number, key: string }[] }[] }} */
    const body = await api("POST", `/v1/topics/${seg(name)}/archive`);
    if (json) return printJson(body);
    const rows = body.partitions.map((p) => [
      p.partition,
      p.sealed.length,
      p.sealed.reduce((n, s) => n + s.count, 0),
      p.sealed.length > 0 ? `${p.sealed[0]?.first}-${p.sealed.at(-1)?.last}` : "-",
      bytes(p.sealed.reduce((n, s) => n + s.bytes, 0)),
      p.archivedThrough,
      p.trimmed ?? "-",
    ]);
    console.log(table(["PARTITION", "SEALED", "EVENTS", "RANGE", "BYTES", "ARCHIVED THROUGH", "TRIMMED"], rows));
    const sealed = body.partitions.reduce((n, p) => n + p.sealed.length, 0);
    console.log(`\n${body.topic}: ${num(sealed)} segment${sealed === 1 ? "" : "s"} sealed`);
    return 0;
  },
});
