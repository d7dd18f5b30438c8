import { API } from "./api";
import { byId, clear, h, s } from "./dom";
import { fmtMs, fmtNum, fmtPct, fmtRate, isNum } from "./format";
import { state, WINDOW_MS } from "./state";
import type { Model, Sample } from "./types";

/**
 * The three line charts over the samples: the server's history (GET /v1/metrics/history, loaded on
 * open) and one sample per poll (rates.ts). Each point is a windowed figure as the server computes
 * it: rates, error rate and latency over the `recent` window ending at that point.
 */

interface Series {
  name: string;
  cls: string;
  key: Exclude<keyof Sample, "t">;
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

/** A line chart of the charts' span (the server's history, else 5 minutes), values from state.samples. */
function renderChart(id: string, title: string, series: Series[], format: (v: unknown) => string, emptyText: string): void {
  const fig = clear(byId(id));
  fig.setAttribute("data-samples", String(state.samples.length));
  fig.setAttribute("data-first", String(state.samples[0]?.t ?? ""));
  const W = 320;
  const H = 130;
  const L = 44;
  const R = 8;
  const T = 8;
  const B = 20;
  const samples = state.samples;
  const first = samples[0];
  const last = samples[samples.length - 1];
  // The server's clock stamps the samples; the page's may differ a little.
  const now = Math.max(state.model ? state.model.at : Date.now(), last ? last.t : 0);
  const full = state.historyMs || WINDOW_MS;
  // At most the whole span; less (but at least a minute) while there is less to show.
  const span = Math.min(full, Math.max(60000, first ? now - first.t : 0));
  const ago = span >= 60000 ? `−${fmtNum(Math.round(span / 6000) / 10)} min` : `−${Math.round(span / 1000)} s`;
  let max = 0;
  for (const x of series) for (const p of samples) if (isNum(p[x.key])) max = Math.max(max, p[x.key] ?? 0);
  max = niceMax(max);
  const xOf = (t: number) => L + ((t - (now - span)) / span) * (W - L - R);
  const yOf = (v: number) => T + (1 - v / max) * (H - T - B);
  const latest = series.map((x) => `${x.name} ${format(last ? last[x.key] : null)}`);
  const hasData = series.some((x) => samples.some((p) => isNum(p[x.key])));
  fig.appendChild(h("figcaption", { text: title }));
  const svg = s("svg", {
    class: "plot",
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": `${title}, over the last ${ago.slice(1)}; latest: ${hasData ? latest.join(", ") : emptyText}`,
  });
  for (const v of [0, max / 2, max]) {
    svg.appendChild(s("line", { class: "grid", x1: L, x2: W - R, y1: yOf(v), y2: yOf(v) }));
    svg.appendChild(s("text", { class: "axis", x: L - 4, y: yOf(v) + 3, "text-anchor": "end", text: format(v) }));
  }
  svg.appendChild(s("text", { class: "axis", x: L, y: H - 5, text: ago }));
  svg.appendChild(s("text", { class: "axis", x: W - R, y: H - 5, "text-anchor": "end", text: "now" }));
  for (const x of series) {
    // A gap (no value) splits the line.
    let run: string[] = [];
    const flush = () => {
      const only = run[0];
      if (run.length === 1 && only !== undefined) run.push(only);
      if (run.length) svg.appendChild(s("polyline", { class: x.cls, points: run.join(" ") }));
      run = [];
    };
    for (const p of samples) {
      const v = p[x.key];
      if (isNum(v)) run.push(`${xOf(p.t).toFixed(1)},${yOf(v).toFixed(1)}`);
      else flush();
    }
    flush();
  }
  if (!hasData) svg.appendChild(s("text", { class: "axis", x: (L + W - R) / 2, y: H / 2, "text-anchor": "middle", text: emptyText }));
  fig.appendChild(svg);
  const legend = h("ul", { class: "legend" });
  series.forEach((x, i) => {
    legend.appendChild(h("li", null, [h("span", { class: `sw ${x.cls}`, "aria-hidden": "true" }), latest[i]]));
  });
  fig.appendChild(legend);
}

export function renderCharts(model: Model): void {
  const over = model.windowSeconds ? `, over ${fmtWindow(model.windowSeconds)}` : "";
  renderChart(
    "chart-throughput",
    `Throughput (events/s${over})`,
    [
      { name: "appended", cls: "s1", key: "in" },
      { name: "handled", cls: "s2", key: "out" },
    ],
    fmtRate,
    "collecting…",
  );
  renderChart(
    "chart-errors",
    `Error rate (retries + dead letters ÷ deliveries${over})`,
    [{ name: "errors", cls: "s3", key: "errorRate" }],
    fmtPct,
    "collecting…",
  );
  const kind = model.latency ? model.latency.kind : null;
  renderChart(
    "chart-latency",
    `Latency${kind ? ` (${kind}${over})` : ""}`,
    [
      { name: "p50", cls: "s1", key: "p50" },
      { name: "p99", cls: "s4", key: "p99" },
    ],
    fmtMs,
    model.source === API.metrics ? "no latency recorded yet" : "needs /v1/metrics",
  );
}

/** "5 min", "90 s". */
function fmtWindow(seconds: number): string {
  return seconds % 60 === 0 ? `${seconds / 60} min` : `${seconds} s`;
}
