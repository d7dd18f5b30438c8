import { fmtInt, fmtNum, fmtPct, fmtRate, hostOf, isNum, plural, sum } from "./format";
import type { Model, PartitionModel } from "./types";

/**
 * The flow graph's layout: producers → topics → partitions → subscriptions → consumers, one band
 * of rows per topic. Nodes and edges carry their texts and accessible labels; graph.ts draws them.
 */

export type NodeKind = "producer" | "topic" | "partition" | "subscription" | "consumer";

export const COL: Record<NodeKind, number> = { producer: 10, topic: 190, partition: 380, subscription: 616, consumer: 872 };
const WIDTH: Record<NodeKind, number> = { producer: 140, topic: 150, partition: 196, subscription: 214, consumer: 150 };
const ROW = 62;
export const NODE_H = 52;
const TOP = 34;
export const GRAPH_W = 1032;

export interface GraphNode {
  key: string;
  kind: NodeKind;
  x: number;
  y: number;
  w: number;
  /** A drill-down hash route; nodes without one are not links. */
  href?: string;
  lines: string[];
  lineCls?: string[];
  label: string;
  tip?: string;
  cls: string;
  /** data-* attributes (the browser tests read them). */
  data: Record<string, string | number>;
}

export interface GraphEdge {
  key: string;
  from: string;
  to: string;
  text?: string;
  active?: boolean;
  /** Where along the curve the label sits (0..1). */
  at?: number;
  thin?: boolean;
}

export interface GraphSpec {
  nodes: GraphNode[];
  edges: GraphEdge[];
  bands: number[];
  height: number;
}

function nodeKey(kind: NodeKind, ...parts: (string | number)[]): string {
  return `${kind}:${parts.join("/")}`;
}

function archivedText(p: PartitionModel): string {
  if (p.archived && isNum(p.archived.first) && isNum(p.archived.last) && p.archived.last > 0) {
    return `archived ${fmtInt(p.archived.first)}–${fmtInt(p.archived.last)}`;
  }
  if (p.head === 0) return "empty";
  return "not archived yet";
}

/** Nodes and edges with their positions and texts. */
export function graphSpec(model: Model): GraphSpec {
  const nodes: GraphNode[] = [];
  const edges: GraphEdge[] = [];
  let y = TOP;
  const bands: number[] = [];
  for (const t of model.topics) {
    const subs = model.subscriptions.filter((x) => x.topic === t.name);
    const rows = Math.max(t.partitions.length, subs.length, 1);
    const bandH = rows * ROW;
    const centre = (i: number, n: number) => y + (rows - n) * (ROW / 2) + i * ROW + (ROW - NODE_H) / 2;
    const rejected = sum(Object.values(t.rejects || {}));
    const topicKey = nodeKey("topic", t.name);
    nodes.push({
      key: topicKey,
      kind: "topic",
      x: COL.topic,
      y: centre(0, 1),
      w: WIDTH.topic,
      href: `#/topic/${encodeURIComponent(t.name)}`,
      lines: [
        t.name,
        plural(t.events, "event", "events"),
        t.internal ? "internal · platform-written" : `${plural(t.partitions.length, "partition", "partitions")} · ${fmtRate(t.rate)}`,
      ],
      label:
        `Topic ${t.name}: ${plural(t.events, "event", "events")} in ${plural(t.partitions.length, "partition", "partitions")}, ` +
        (isNum(t.rate) ? `${fmtNum(t.rate)} events per second` : "rate pending") +
        (rejected ? `, ${fmtInt(rejected)} rejected` : "") +
        (t.internal ? ", internal: written by the platform only" : ""),
      tip: t.description || "",
      cls: "",
      data: {
        node: "topic",
        name: t.name,
        events: t.events,
        appended: t.appended,
        rate: isNum(t.rate) ? t.rate.toFixed(3) : "",
        internal: String(t.internal),
      },
    });
    // An internal topic (the audit log) is written by the platform alone: no producer edge leads to it.
    if (!t.internal)
      edges.push({ key: `e:${topicKey}`, from: "producers", to: topicKey, text: fmtRate(t.rate), active: t.moving, at: 0.62 });
    t.partitions.forEach((p, i) => {
      const key = nodeKey("partition", t.name, p.partition);
      nodes.push({
        key,
        kind: "partition",
        x: COL.partition,
        y: centre(i, t.partitions.length),
        w: WIDTH.partition,
        href: `#/topic/${encodeURIComponent(t.name)}/${p.partition}`,
        lines: [`p${p.partition} · head ${fmtInt(p.head)}`, archivedText(p), `${fmtRate(p.rate)} appended`],
        label: `Partition ${p.partition} of ${t.name}: head ${fmtInt(p.head)}, ${archivedText(p)}, ${fmtRate(p.rate)}`,
        cls: "",
        data: { node: "partition", topic: t.name, partition: p.partition, head: p.head, appended: p.appended },
      });
      edges.push({ key: `e:${key}`, from: topicKey, to: key, text: fmtRate(p.rate), active: p.moving, at: 0.72 });
      for (const x of subs) edges.push({ key: `e:${key}>${x.name}`, from: key, to: nodeKey("subscription", x.name), thin: true });
    });
    subs.forEach((x, i) => {
      const key = nodeKey("subscription", x.name);
      const lagText = `lag ${fmtInt(x.lag)}${isNum(x.lagSeconds) && x.lag > 0 ? ` (${fmtNum(x.lagSeconds)} s)` : ""}`;
      const dlqText = `DLQ ${fmtInt(x.dlqDepth)}`;
      const cls = [x.dlqDepth > 0 ? "dlq" : "", x.lag > 0 ? "lagging" : "", x.circuit === "open" ? "open" : ""].join(" ").trim();
      nodes.push({
        key,
        kind: "subscription",
        x: COL.subscription,
        y: centre(i, subs.length),
        w: WIDTH.subscription,
        href: `#/subscription/${encodeURIComponent(x.name)}`,
        lines: [x.name, lagText, `${dlqText} · circuit ${x.circuit}`],
        lineCls: ["t", "lag", "dlqt"],
        label:
          `Subscription ${x.name} on ${x.topic} (${x.kind}): ${lagText}, ${dlqText}` +
          `${x.dlqDepth > 0 ? " dead letters waiting" : ""}, circuit ${x.circuit}, ${fmtRate(x.rate)} handled`,
        tip: x.description || "",
        cls,
        data: {
          node: "subscription",
          name: x.name,
          topic: x.topic,
          kind: x.kind,
          dlq: x.dlqDepth,
          lag: x.lag,
          handled: x.handled,
          circuit: x.circuit,
        },
      });
      const consumerKey = nodeKey("consumer", x.name);
      const target =
        x.kind === "webhook"
          ? hostOf(x.url) || "webhook"
          : /example consumer/i.test(x.description || "")
            ? "example-consumer"
            : "platform Worker";
      nodes.push({
        key: consumerKey,
        kind: "consumer",
        x: COL.consumer,
        y: centre(i, subs.length),
        w: WIDTH.consumer,
        lines: [x.kind === "webhook" ? "Webhook" : "Worker", target, `errors ${fmtPct(x.errorRate)}`],
        label: `Consumer of ${x.name}: ${x.kind === "webhook" ? "webhook " : "Worker "}${target}, ${fmtRate(x.rate)} handled`,
        cls: "",
        data: { node: "consumer", name: x.name, kind: x.kind },
      });
      edges.push({ key: `e:${consumerKey}`, from: key, to: consumerKey, text: fmtRate(x.rate), active: x.moving });
    });
    bands.push(y + bandH);
    y += bandH;
  }
  const height = Math.max(y + 8, TOP + ROW);
  const producerY = Math.max(TOP, (TOP + y) / 2 - NODE_H / 2);
  nodes.unshift({
    key: "producers",
    kind: "producer",
    x: COL.producer,
    y: producerY,
    w: WIDTH.producer,
    lines: ["Producers", "HTTP ingest", `${fmtRate(model.totalIn)} in`],
    label: `Producers (HTTP ingest): ${fmtRate(model.totalIn)} appended in total`,
    cls: "",
    data: { node: "producer", name: "producers" },
  });
  return { nodes, edges, bands: bands.slice(0, -1), height };
}
