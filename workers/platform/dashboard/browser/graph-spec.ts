import { fmtInt, fmtNum, fmtPct, fmtRate, hostOf, isNum, plural, sum } from "./format";
import type { Model, PartitionModel, ProcessorModel } from "./types";

/**
 * The flow graph's layout: producers → topics → partitions → subscriptions → consumers, one band
 * of rows per topic. A stream processor sits below its input topic's subscriptions, fed by the
 * input's partitions; its results go back to its output topic and its re-partitioning to its
 * internal topic (edges routed back left, `points`). Nodes and edges carry their texts and accessible
 * labels; graph.ts draws them.
 */

export type NodeKind = "producer" | "topic" | "partition" | "subscription" | "processor" | "consumer";

export const COL: Record<NodeKind, number> = { producer: 10, topic: 190, partition: 380, subscription: 616, processor: 616, consumer: 872 };
const WIDTH: Record<NodeKind, number> = { producer: 140, topic: 150, partition: 196, subscription: 214, processor: 214, consumer: 150 };
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
  /**
   * From a node to one further left (a processor's output or internal topic): drawn through these
   * points instead of a curve — out to the right of the consumers, along the target band's top
   * edge, down into the target's top — with its label at `labelAt`.
   */
  points?: [number, number][];
  labelAt?: [number, number];
}

interface BackEdge {
  from: GraphNode;
  /** The target topic's name. */
  to: string;
  what: string;
  text?: string;
  active?: boolean;
  thin?: boolean;
}

/**
 * Lays out the edges that go back left: each its own vertical lane right of the consumers, then
 * along the gap above the target topic's band (no node sits there), then down into the topic. An
 * edge whose target is not drawn (a topic the key cannot see) is left out. Returns the width needed.
 */
function routeBack(back: BackEdge[], nodes: GraphNode[], bandTop: Map<string, number>, edges: GraphEdge[]): number {
  const byKey = new Map(nodes.map((n) => [n.key, n]));
  const into = new Map<string, number>();
  let lane = COL.consumer + WIDTH.consumer + 10;
  for (const e of back) {
    const target = byKey.get(nodeKey("topic", e.to));
    const top = bandTop.get(e.to);
    if (target === undefined || top === undefined) continue;
    const n = into.get(target.key) ?? 0;
    into.set(target.key, n + 1);
    const x1 = e.from.x + e.from.w;
    const y1 = e.from.y + NODE_H / 2;
    const tx = target.x + target.w / 2 + n * 12;
    // Above the first band the gap is the column heads' margin.
    const via = Math.max(top, TOP - 6);
    edges.push({
      key: `e:${e.from.key}>${e.what}`,
      from: e.from.key,
      to: target.key,
      points: [
        [x1, y1],
        [lane, y1],
        [lane, via],
        [tx, via],
        [tx, target.y - 2],
      ],
      ...(e.text === undefined ? {} : { text: e.text, labelAt: [(x1 + COL.consumer + WIDTH.consumer) / 2, y1 - 5] as [number, number] }),
      ...(e.active === undefined ? {} : { active: e.active }),
      ...(e.thin === undefined ? {} : { thin: e.thin }),
    });
    lane += 7;
  }
  return Math.max(GRAPH_W, lane + 3);
}

export interface GraphSpec {
  nodes: GraphNode[];
  edges: GraphEdge[];
  bands: number[];
  height: number;
  width: number;
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

/** Seconds as the largest whole unit: 42 s, 12 min, 5 h, 3 d. */
function ago(seconds: number): string {
  if (seconds < 120) return `${fmtNum(seconds)} s`;
  if (seconds < 7200) return `${fmtInt(seconds / 60)} min`;
  if (seconds < 172_800) return `${fmtInt(seconds / 3600)} h`;
  return `${fmtInt(seconds / 86_400)} d`;
}

function processorNode(p: ProcessorModel, y: number): GraphNode {
  const lagText = `lag ${fmtInt(p.lag)}`;
  const wmText = isNum(p.watermarkLagSeconds) ? `wm ${ago(p.watermarkLagSeconds)} behind` : "no watermark yet";
  const figures = `open ${fmtInt(p.openWindows)} · late ${fmtInt(p.lateEvents)} · ${fmtRate(p.outputPerSecond)} out`;
  const cls = [p.lateEvents > 0 ? "late" : "", p.lag > 0 ? "lagging" : "", p.outputsFailing ? "open" : ""].join(" ").trim();
  return {
    key: nodeKey("processor", p.name),
    kind: "processor",
    x: COL.processor,
    y,
    w: WIDTH.processor,
    lines: [p.name, `${lagText} · ${wmText}`, figures],
    lineCls: ["t", "lag", "latet"],
    label:
      `Processor ${p.name} (${p.kind}) from ${p.input} to ${p.output}: ${plural(p.lag, "event", "events")} not yet applied, ` +
      (p.lowWatermark ? `low watermark ${p.lowWatermark}, ` : "") +
      (isNum(p.watermarkLagSeconds) ? `watermark ${ago(p.watermarkLagSeconds)} behind, ` : "no watermark yet, ") +
      `${plural(p.openWindows, "open window", "open windows")}, ${plural(p.lateEvents, "late event", "late events")}, ` +
      `${plural(p.results, "result", "results")}, ${fmtRate(p.outputPerSecond)} out` +
      (p.outputsFailing ? `, outputs failing with ${fmtInt(p.pendingOutputs)} waiting` : ""),
    tip: `Re-partitions by its key through ${p.internalTopic}`,
    cls,
    data: {
      node: "processor",
      name: p.name,
      kind: p.kind,
      input: p.input,
      output: p.output,
      lag: p.lag,
      watermark: p.lowWatermark ?? "",
      open: p.openWindows,
      late: p.lateEvents,
      results: p.results,
    },
  };
}

/** Nodes and edges with their positions and texts. */
export function graphSpec(model: Model): GraphSpec {
  const nodes: GraphNode[] = [];
  const edges: GraphEdge[] = [];
  let y = TOP;
  const bands: number[] = [];
  const bandTop = new Map<string, number>();
  const backEdges: BackEdge[] = [];
  for (const t of model.topics) {
    const subs = model.subscriptions.filter((x) => x.topic === t.name);
    const procs = model.processors.filter((p) => p.input === t.name);
    // Subscriptions, then processors, share the column; consumers stay on their subscriptions' rows.
    const sharing = subs.length + procs.length;
    const rows = Math.max(t.partitions.length, sharing, 1);
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
      for (const x of procs)
        edges.push({ key: `e:${key}>${nodeKey("processor", x.name)}`, from: key, to: nodeKey("processor", x.name), thin: true });
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
        y: centre(i, sharing),
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
        y: centre(i, sharing),
        w: WIDTH.consumer,
        lines: [x.kind === "webhook" ? "Webhook" : "Worker", target, `errors ${fmtPct(x.errorRate)}`],
        label: `Consumer of ${x.name}: ${x.kind === "webhook" ? "webhook " : "Worker "}${target}, ${fmtRate(x.rate)} handled`,
        cls: "",
        data: { node: "consumer", name: x.name, kind: x.kind },
      });
      edges.push({ key: `e:${consumerKey}`, from: key, to: consumerKey, text: fmtRate(x.rate), active: x.moving });
    });
    procs.forEach((p, i) => {
      const node = processorNode(p, centre(subs.length + i, sharing));
      nodes.push(node);
      // Results are appended to the output topic; inputs re-partitioned by key through the internal one.
      backEdges.push({ from: node, to: p.output, what: "out", text: fmtRate(p.outputPerSecond), active: p.moving });
      backEdges.push({ from: node, to: p.internalTopic, what: "internal", thin: true });
    });
    bandTop.set(t.name, y);
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
  const width = routeBack(backEdges, nodes, bandTop, edges);
  return { nodes, edges, bands: bands.slice(0, -1), height, width };
}
