/**
 * The dashboard's stylesheet, served as /dashboard/app.css. System fonts only, light and dark
 * schemes, visible focus, no external resource.
 */
export const DASHBOARD_STYLES = `
:root {
  color-scheme: light dark;
  --bg: #f4f5f7;
  --card: #ffffff;
  --fg: #1b1d22;
  --muted: #5a5f6b;
  --line: #d5d8de;
  --edge: #9aa1ad;
  --accent: #1f5fbf;
  --ok: #17693a;
  --ok-bg: #dff3e6;
  --warn: #8a5a00;
  --warn-bg: #fcefd4;
  --bad: #b3261e;
  --bad-bg: #fbe3e1;
  --focus: #f0a500;
  --node: #f7f8fa;
  --s1: #1f5fbf;
  --s2: #17803d;
  --s3: #b3261e;
  --s4: #7a3fb8;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #14161a;
    --card: #1d2026;
    --fg: #e8eaee;
    --muted: #a4aab5;
    --line: #393e48;
    --edge: #6c7480;
    --accent: #7fb0ff;
    --ok: #7ad69a;
    --ok-bg: #163222;
    --warn: #f0c060;
    --warn-bg: #3a2e12;
    --bad: #ff8a80;
    --bad-bg: #401b19;
    --node: #252932;
    --s1: #7fb0ff;
    --s2: #6fd18f;
    --s3: #ff8a80;
    --s4: #c79bff;
  }
}
* { box-sizing: border-box; }
html { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
body { margin: 0; background: var(--bg); color: var(--fg); }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.88em; }
a { color: var(--accent); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: var(--card); padding: 0.5rem 1rem; z-index: 10; }
.skip:focus { left: 0.5rem; }
.bar { display: flex; flex-wrap: wrap; align-items: center; gap: 0.75rem 1rem; padding: 0.6rem 1.25rem; background: var(--card); border-bottom: 1px solid var(--line); }
.bar h1 { font-size: 1.2rem; margin: 0; }
.bar .spacer { flex: 1; }
.bar .reasons { color: var(--muted); font-size: 0.88rem; max-width: 40rem; }
#updated { margin: 0; color: var(--muted); font-size: 0.9rem; }
button { font: inherit; padding: 0.35rem 0.8rem; border-radius: 6px; border: 1px solid var(--line); background: var(--node); color: var(--fg); cursor: pointer; }
button:hover:not(:disabled) { border-color: var(--accent); }
button:disabled { opacity: 0.55; cursor: default; }
button.primary { background: var(--accent); border-color: var(--accent); color: var(--card); font-weight: 600; }
button.danger { border-color: var(--bad); color: var(--bad); font-weight: 600; }
input, select { font: inherit; padding: 0.3rem 0.5rem; border: 1px solid var(--line); border-radius: 6px; background: var(--card); color: var(--fg); }
main { padding: 1rem 1.25rem 2rem; max-width: 1500px; margin: 0 auto; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 0.8rem 1rem 1rem; margin-bottom: 1rem; }
.card > h2 { font-size: 1.05rem; margin: 0 0 0.6rem; }
.card h3 { font-size: 0.98rem; margin: 1rem 0 0.4rem; }
.cols { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 1rem; }
.charts { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 1rem; }
@media (max-width: 1000px) { .cols, .charts { grid-template-columns: minmax(0, 1fr); } }
.error { background: var(--bad-bg); color: var(--bad); border: 1px solid var(--bad); border-radius: 8px; padding: 0.5rem 0.75rem; margin: 0 0 1rem; }
.note { color: var(--muted); font-size: 0.9rem; }
.stale { opacity: 0.6; }

/* Sign-in */
#signin { max-width: 32rem; margin: 3rem auto; }
#signin form { display: flex; flex-wrap: wrap; gap: 0.5rem; align-items: center; }
#signin label { width: 100%; font-weight: 600; }
#signin input { flex: 1; min-width: 14rem; }
.help { color: var(--muted); font-size: 0.9rem; }
.help .q { display: inline-block; width: 1.3em; height: 1.3em; line-height: 1.3em; text-align: center; border-radius: 50%; background: var(--accent); color: var(--card); font-weight: 700; margin-right: 0.3em; }

/* Health badge */
.badge { display: inline-block; padding: 0.15rem 0.6rem; border-radius: 999px; font-weight: 600; font-size: 0.88rem; border: 1px solid var(--line); }
.badge.ok { background: var(--ok-bg); color: var(--ok); border-color: var(--ok); }
.badge.degraded { background: var(--warn-bg); color: var(--warn); border-color: var(--warn); }
.badge.failing { background: var(--bad-bg); color: var(--bad); border-color: var(--bad); }

/* Flow graph */
.graph-wrap { overflow-x: auto; }
svg.graph { display: block; width: 100%; min-width: 760px; height: auto; }
.graph .colhead { fill: var(--muted); font-size: 12px; font-weight: 600; text-transform: uppercase; letter-spacing: 0.06em; }
.graph .band { stroke: var(--line); stroke-dasharray: 2 4; }
.graph .node rect { fill: var(--node); stroke: var(--line); stroke-width: 1.2; }
.graph a.node rect { stroke: var(--edge); }
.graph a.node:hover rect { stroke: var(--accent); stroke-width: 2; }
.graph a.node:focus { outline: none; }
.graph a.node:focus-visible rect { stroke: var(--focus); stroke-width: 3; }
.graph .node text { fill: var(--fg); font-size: 11.5px; }
.graph .node text.t { font-size: 13px; font-weight: 700; }
.graph .node text.m { fill: var(--muted); }
.graph .node.topic rect { fill: var(--card); stroke: var(--accent); stroke-width: 1.6; }
.graph .node.lagging rect { stroke: var(--warn); stroke-width: 2; }
.graph .node.lagging text.lag { fill: var(--warn); font-weight: 600; }
.graph .node.dlq rect { fill: var(--bad-bg); stroke: var(--bad); stroke-width: 2.2; }
.graph .node.dlq text.dlqt { fill: var(--bad); font-weight: 700; }
.graph .node.open rect { stroke: var(--bad); stroke-dasharray: 5 3; stroke-width: 2.2; }
.graph .edge { fill: none; stroke: var(--edge); stroke-width: 1.4; }
.graph .edge.thin { stroke-width: 0.8; opacity: 0.55; }
.graph .edge.back { stroke-dasharray: 4 3; }
.graph .node.processor rect { fill: var(--card); stroke: var(--accent); stroke-dasharray: 6 2; }
.graph .node.late text.latet { fill: var(--warn); font-weight: 600; }
.graph .edge.active { stroke: var(--accent); stroke-width: 2; stroke-dasharray: 6 4; animation: flow 1s linear infinite; }
.graph .elabel { font-size: 11px; font-weight: 600; fill: var(--fg); paint-order: stroke; stroke: var(--card); stroke-width: 4px; stroke-linejoin: round; }
.graph .elabel.idle { fill: var(--muted); font-weight: 400; }
@keyframes flow { to { stroke-dashoffset: -10; } }
@media (prefers-reduced-motion: reduce) { .graph .edge.active { animation: none; } }
.graph marker path { fill: var(--edge); }

/* Charts */
figure.chart { margin: 0; }
figure.chart figcaption { font-weight: 600; font-size: 0.95rem; margin-bottom: 0.2rem; }
svg.plot { display: block; width: 100%; height: auto; }
.plot .grid { stroke: var(--line); stroke-width: 1; }
.plot .axis { fill: var(--muted); font-size: 10px; }
.plot polyline { fill: none; stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
.plot .s1, .legend .s1 { stroke: var(--s1); background: var(--s1); }
.plot .s2, .legend .s2 { stroke: var(--s2); background: var(--s2); }
.plot .s3, .legend .s3 { stroke: var(--s3); background: var(--s3); }
.plot .s4, .legend .s4 { stroke: var(--s4); background: var(--s4); }
.legend { display: flex; flex-wrap: wrap; gap: 0.2rem 1rem; list-style: none; margin: 0.3rem 0 0; padding: 0; font-size: 0.85rem; }
.legend .sw { display: inline-block; width: 0.9em; height: 0.3em; vertical-align: middle; margin-right: 0.35em; border-radius: 2px; }

/* Tables */
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { text-align: left; padding: 0.3rem 0.5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 0.82rem; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.alert { color: var(--bad); font-weight: 700; background: var(--bad-bg); }
td.warn { color: var(--warn); font-weight: 600; }
.scroll { overflow-x: auto; }

/* Replays */
.replays { list-style: none; margin: 0; padding: 0; }
.replays li { padding: 0.45rem 0; border-bottom: 1px solid var(--line); }
.replays .head { display: flex; justify-content: space-between; gap: 0.5rem; font-size: 0.9rem; }
.replays ol { margin: 0.2rem 0 0; padding-left: 1.4rem; font-size: 0.88rem; }
.replays ol li { border: 0; padding: 0.05rem 0; }
.replays progress { width: 100%; height: 0.8rem; margin: 0.25rem 0 0.1rem; accent-color: var(--accent); }
.state { font-size: 0.8rem; font-weight: 600; padding: 0 0.4rem; border-radius: 4px; border: 1px solid var(--line); }
.state.running { color: var(--accent); border-color: var(--accent); }
.state.done { color: var(--ok); border-color: var(--ok); }
.state.failed, .state.cancelled { color: var(--bad); border-color: var(--bad); }

/* Detail panel */
#detail { border-color: var(--accent); border-width: 2px; }
#detail .top { display: flex; align-items: center; gap: 1rem; justify-content: space-between; }
#detail .top h2 { margin: 0; font-size: 1.1rem; }
#detail h2:focus { outline: none; }
.toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: 0.5rem 0.75rem; margin: 0.75rem 0; }
.toolbar form { display: inline-flex; gap: 0.4rem; align-items: center; }
.toolbar input[type="number"] { width: 8rem; }
.live-controls { display: inline-flex; gap: 0.4rem; align-items: center; }
.live[data-live="live"] { color: var(--ok); font-weight: 600; }
.live[data-live="reconnecting"] { color: var(--bad); }
dl.kv { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 0.2rem 1rem; margin: 0.5rem 0; font-size: 0.9rem; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
dl.legend-table { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 0.1rem 0.8rem; margin: 0.4rem 0 0.8rem; font-size: 0.8rem; color: var(--muted); }
dl.legend-table dt { font-weight: 600; }
dl.legend-table dd { margin: 0; }
th[title] { cursor: help; text-decoration: underline dotted; text-underline-offset: 3px; }
pre.json { background: var(--node); border: 1px solid var(--line); border-radius: 6px; padding: 0.6rem; overflow: auto; max-height: 24rem; font-size: 0.82rem; }
.count { font-weight: 700; }
.count.alert { color: var(--bad); }
.msg { margin: 0.5rem 0; font-weight: 600; }
.msg.bad { color: var(--bad); }
.msg.good { color: var(--ok); }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;
