import { byId, clear, s } from "./dom";
import { truncate } from "./format";
import { COL, type GraphEdge, type GraphNode, graphSpec, NODE_H, type NodeKind } from "./graph-spec";
import { state } from "./state";
import type { EdgeRef, GraphRefs, Model, NodeRef } from "./types";

/**
 * The flow graph as SVG: rebuilt only when the topology changes (keyboard focus moves to the same
 * node in the new drawing), otherwise updated in place so focus and hover survive the 2 s polls.
 */

/** A polyline through `points` with rounded corners (a routed edge). */
function routedPath(points: [number, number][], radius = 6): string {
  const [first, ...rest] = points;
  if (first === undefined) return "";
  let d = `M${first[0]} ${first[1]}`;
  rest.forEach(([x, y], i) => {
    const next = rest[i + 1];
    const [px, py] = points[i] ?? first;
    if (next === undefined) {
      d += ` L${x} ${y}`;
      return;
    }
    // Stop short of the corner by at most half of either segment, then curve through it.
    const r = Math.min(radius, Math.hypot(x - px, y - py) / 2, Math.hypot(next[0] - x, next[1] - y) / 2);
    const towards = (ax: number, ay: number) => {
      const len = Math.hypot(ax - x, ay - y) || 1;
      return [x + ((ax - x) / len) * r, y + ((ay - y) / len) * r];
    };
    const [bx, by] = towards(px, py);
    const [cx, cy] = towards(next[0], next[1]);
    d += ` L${bx} ${by} Q${x} ${y} ${cx} ${cy}`;
  });
  return d;
}

/** A horizontal cubic curve from a's right side to b's left side, and the point at t for its label. */
function edgePath(a: GraphNode, b: GraphNode, t: number) {
  const x1 = a.x + a.w;
  const y1 = a.y + NODE_H / 2;
  const x2 = b.x - 2;
  const y2 = b.y + NODE_H / 2;
  const dx = Math.max(30, (x2 - x1) / 2);
  const u = 1 - t;
  const at = (p0: number, p1: number, p2: number, p3: number) => u * u * u * p0 + 3 * u * u * t * p1 + 3 * u * t * t * p2 + t * t * t * p3;
  return {
    d: `M${x1} ${y1} C${x1 + dx} ${y1} ${x2 - dx} ${y2} ${x2} ${y2}`,
    mx: at(x1, x1 + dx, x2 - dx, x2),
    my: at(y1, y1, y2, y2),
  };
}

function applyNode(ref: NodeRef, n: GraphNode): void {
  ref.el.setAttribute("class", `node ${n.kind}${n.cls ? ` ${n.cls}` : ""}`);
  ref.el.setAttribute("aria-label", n.label);
  for (const [k, v] of Object.entries(n.data)) ref.el.setAttribute(`data-${k}`, String(v));
  n.lines.forEach((line, i) => {
    const max = Math.floor((n.w - 16) / (i === 0 ? 7.6 : 6.3));
    const text = ref.texts[i];
    if (text && text.textContent !== truncate(line, max)) text.textContent = truncate(line, max);
  });
  ref.tip.textContent = n.tip ? `${n.label} — ${n.tip}` : n.label;
}

function applyEdge(ref: EdgeRef, e: GraphEdge): void {
  ref.path.setAttribute("class", `edge${e.thin ? " thin" : ""}${e.points ? " back" : ""}${e.active ? " active" : ""}`);
  if (ref.text) {
    ref.text.textContent = e.text ?? "";
    ref.text.setAttribute("class", `elabel${e.active ? "" : " idle"}`);
  }
}

const HEADS: [string, NodeKind][] = [
  ["Producers", "producer"],
  ["Topics", "topic"],
  ["Partitions", "partition"],
  ["Subscriptions", "subscription"],
  ["Consumers", "consumer"],
];

export function renderGraph(model: Model): void {
  const spec = graphSpec(model);
  const sig = `${spec.nodes.map((n) => n.key).join("|")}#${spec.edges.length}`;
  const container = byId("graph");
  if (sig === state.graphSig && state.graphRefs) {
    for (const n of spec.nodes) {
      const ref = state.graphRefs.nodes.get(n.key);
      if (ref) applyNode(ref, n);
    }
    for (const e of spec.edges) {
      const ref = state.graphRefs.edges.get(e.key);
      if (ref) applyEdge(ref, e);
    }
    return;
  }
  // The topology changed (first render, a subscription created or deleted): build anew,
  // keeping keyboard focus on the same node.
  const focused = document.activeElement?.getAttribute("data-key") ?? null;
  const refs: GraphRefs = { nodes: new Map(), edges: new Map() };
  const svg = s("svg", {
    class: "graph",
    viewBox: `0 0 ${spec.width} ${spec.height}`,
    width: spec.width,
    height: spec.height,
    role: "group",
    "aria-label": "Event flow graph",
  });
  const marker = {
    id: "arrow",
    viewBox: "0 0 10 10",
    refX: 10,
    refY: 5,
    markerWidth: 8,
    markerHeight: 8,
    markerUnits: "userSpaceOnUse",
    orient: "auto",
  };
  svg.appendChild(s("defs", null, s("marker", marker, s("path", { d: "M0 0 L10 5 L0 10 z" }))));
  for (const [text, kind] of HEADS) {
    const head = kind === "subscription" && model.processors.length > 0 ? "Subscriptions · processors" : text;
    svg.appendChild(s("text", { class: "colhead", x: COL[kind], y: 16, "aria-hidden": "true", text: head }));
  }
  for (const by of spec.bands) svg.appendChild(s("line", { class: "band", x1: 0, x2: spec.width, y1: by, y2: by, "aria-hidden": "true" }));
  const byKey = new Map(spec.nodes.map((n) => [n.key, n]));
  const edgeLayer = s("g", { "aria-hidden": "true" });
  const labelLayer = s("g", { "aria-hidden": "true" });
  for (const e of spec.edges) {
    const a = byKey.get(e.from);
    const b = byKey.get(e.to);
    if (!a || !b) continue;
    const curve = edgePath(a, b, e.at ?? 0.5);
    const [lx, ly] = e.labelAt ?? [curve.mx, curve.my];
    const geo = e.points ? { d: routedPath(e.points), mx: lx, my: ly - 4 } : curve;
    const path = s("path", { d: geo.d, "marker-end": e.thin && !e.points ? null : "url(#arrow)", "data-edge": e.key });
    edgeLayer.appendChild(path);
    let text: SVGTextElement | null = null;
    if (e.text !== undefined) {
      text = s("text", { x: geo.mx, y: geo.my + 4, "text-anchor": "middle" });
      labelLayer.appendChild(text);
    }
    const ref = { path, text };
    refs.edges.set(e.key, ref);
    applyEdge(ref, e);
  }
  svg.appendChild(edgeLayer);
  const nodeLayer = s("g");
  for (const n of spec.nodes) {
    const el = n.href ? s("a", { href: n.href, "data-key": n.key }) : s("g", { role: "img", "data-key": n.key });
    const tip = s("title");
    el.appendChild(tip);
    el.appendChild(s("rect", { x: n.x, y: n.y, width: n.w, height: NODE_H, rx: 7 }));
    const texts = n.lines.map((_, i) =>
      s("text", {
        x: n.x + 8,
        y: n.y + 17 + i * 15,
        class: n.lineCls?.[i] || (i === 0 ? "t" : i === 2 ? "m" : ""),
        "aria-hidden": "true",
      }),
    );
    for (const t of texts) el.appendChild(t);
    const ref = { el, texts, tip };
    refs.nodes.set(n.key, ref);
    applyNode(ref, n);
    nodeLayer.appendChild(el);
  }
  svg.appendChild(nodeLayer);
  svg.appendChild(labelLayer);
  clear(container).appendChild(svg);
  state.graphSig = sig;
  state.graphRefs = refs;
  if (focused) {
    const again = container.querySelector<SVGElement>(`[data-key="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
}
