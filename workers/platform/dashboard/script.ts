/**
 * The dashboard's browser script, served as /dashboard/app.js: vanilla JS, no framework, no
 * external resource. It is a string (wrangler bundles it; no build step), written without
 * template literals so String.raw keeps it verbatim. test/integration/dashboard.test.ts checks
 * it parses and that every API path it names needs credentials; test/browser/ runs it in Chromium.
 *
 * Structure: sign-in (key in sessionStorage) → poll every 2 s (GET /v1/metrics, falling back to
 * /v1/topics + /v1/subscriptions + /v1/replays while metrics is missing; GET /v1/health, falling
 * back to a status derived from DLQ depth and circuits) → normalise into one model → rates from
 * counter deltas between polls → render the flow graph (SVG, rebuilt only when the topology
 * changes, otherwise updated in place so focus survives), charts (SVG polylines over the last
 * 5 minutes, kept in memory), subscriptions table and replay progress. Drill-downs are hash
 * routes: #/topic/{topic}/{partition}/{from}, #/event/{topic}/{partition}/{sequence},
 * #/subscription/{name}. Every value from the API is put in the DOM as text, never as markup.
 */
export const DASHBOARD_SCRIPT = String.raw`"use strict";
(() => {
  const TOKEN_KEY = "eventline.dashboard.token";
  const POLL_MS = 2000;
  const WINDOW_MS = 5 * 60 * 1000;
  /** An optional endpoint that answered 404 is asked again after this long (it may be deployed meanwhile). */
  const PROBE_MS = 30000;
  const PAGE_SIZE = 20;
  const SVG_NS = "http://www.w3.org/2000/svg";

  /** Every API path the dashboard calls (all need a bearer credential). */
  const API = {
    metrics: "/v1/metrics",
    health: "/v1/health",
    topics: "/v1/topics",
    subscriptions: "/v1/subscriptions",
    subscription: "/v1/subscriptions/{name}",
    dlq: "/v1/subscriptions/{name}/dlq",
    redrive: "/v1/subscriptions/{name}/dlq/redrive",
    replays: "/v1/replays",
    events: "/v1/topics/{topic}/partitions/{partition}/events",
    trace: "/v1/topics/{topic}/partitions/{partition}/events/{sequence}/trace",
  };

  const state = {
    token: null,
    timer: 0,
    generation: 0,
    prev: null,
    model: null,
    samples: [],
    missing: {},
    meta: {},
    metaAt: 0,
    graphSig: "",
    graphRefs: null,
    detailSeq: 0,
    redriving: false,
  };

  // ---------------------------------------------------------------- DOM helpers

  const byId = (id) => document.getElementById(id);

  function setAttrs(el, attrs) {
    if (!attrs) return el;
    for (const k of Object.keys(attrs)) {
      const v = attrs[k];
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") el.textContent = String(v);
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    return el;
  }
  function add(el, children) {
    if (children === undefined || children === null || children === false) return el;
    for (const c of Array.isArray(children) ? children : [children]) {
      if (c === undefined || c === null || c === false) continue;
      el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  /** An HTML element; children are nodes or text (never parsed as markup). */
  const h = (tag, attrs, children) => add(setAttrs(document.createElement(tag), attrs), children);
  /** An SVG element. */
  const s = (tag, attrs, children) => add(setAttrs(document.createElementNS(SVG_NS, tag), attrs), children);
  const clear = (el) => {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  };

  // ---------------------------------------------------------------- formatting

  const nf = new Intl.NumberFormat("en-US");
  const isNum = (n) => typeof n === "number" && Number.isFinite(n);
  const fmtInt = (n) => (isNum(n) ? nf.format(Math.round(n)) : "–");
  const fmtNum = (n) => (!isNum(n) ? "–" : Math.abs(n) >= 10 ? nf.format(Math.round(n)) : String(Math.round(n * 10) / 10));
  const fmtRate = (r) => (isNum(r) ? fmtNum(r) + "/s" : "–");
  const fmtPct = (x) => (isNum(x) ? fmtNum(x * 100) + "%" : "–");
  const fmtMs = (ms) => (!isNum(ms) ? "–" : ms >= 1000 ? fmtNum(ms / 1000) + " s" : fmtNum(ms) + " ms");
  const fmtClock = (d) => d.toLocaleTimeString("en-GB", { hour12: false });
  const plural = (n, one, many) => fmtInt(n) + " " + (n === 1 ? one : many);
  const num = (v, fallback) => (isNum(v) ? v : isNum(fallback) ? fallback : 0);
  const sum = (xs) => xs.reduce((a, b) => a + (isNum(b) ? b : 0), 0);
  const truncate = (text, max) => (text.length > max ? text.slice(0, max - 1) + "…" : text);
  const compact = (v) => {
    if (v === null || v === undefined) return "";
    if (typeof v === "object") return truncate(JSON.stringify(v), 120);
    return String(v);
  };
  const hostOf = (url) => {
    try {
      return new URL(url).host;
    } catch {
      return url || "";
    }
  };

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, title, detail, body) {
      super(status ? status + " " + title + (detail ? ": " + detail : "") : title + (detail ? ": " + detail : ""));
      this.status = status;
      this.title = title;
      this.detail = detail;
      this.body = body;
    }
  }

  function apiPath(template, params, query) {
    let path = template.replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(String(params[name])));
    if (query) {
      const q = new URLSearchParams();
      for (const k of Object.keys(query)) if (query[k] !== undefined && query[k] !== null) q.set(k, String(query[k]));
      const text = q.toString();
      if (text) path += "?" + text;
    }
    return path;
  }

  /** Calls the API with the signed-in credential; resolves to the parsed body, rejects with ApiError. */
  async function api(template, params, options) {
    const opts = options || {};
    const headers = { accept: "application/json" };
    if (state.token) headers.authorization = "Bearer " + state.token;
    const init = { method: opts.method || "GET", headers, cache: "no-store", credentials: "omit", signal: AbortSignal.timeout(10000) };
    if (opts.body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    let res;
    try {
      res = await fetch(apiPath(template, params || {}, opts.query), init);
    } catch (err) {
      throw new ApiError(0, "Cannot reach the API", err && err.message ? err.message : String(err));
    }
    const text = await res.text();
    let body = null;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    if (!res.ok) {
      const problem = body && typeof body === "object" ? body : {};
      const title = problem.title || res.statusText || "HTTP error";
      const detail = problem.detail || (typeof body === "string" ? truncate(body, 200) : "");
      throw new ApiError(res.status, title, detail, body);
    }
    return body;
  }

  /** An endpoint that may not exist on this server yet: {body}, or {missing}/{error} to fall back. 401 still throws. */
  async function optional(key, template) {
    const since = state.missing[key];
    if (since !== undefined && Date.now() - since < PROBE_MS) return { missing: true };
    try {
      const body = await api(template);
      delete state.missing[key];
      return { body };
    } catch (err) {
      if (!(err instanceof ApiError) || err.status === 401) throw err;
      if (err.status === 404 || err.status === 405 || err.status === 501) {
        state.missing[key] = Date.now();
        return { missing: true };
      }
      return { error: err };
    }
  }

  // ---------------------------------------------------------------- model

  const circuitOf = (c) => (typeof c === "string" ? c : c && typeof c.state === "string" ? c.state : "closed");

  function normReplay(r) {
    let progress = null;
    if (isNum(r.progress)) progress = r.progress > 1 ? r.progress / 100 : r.progress;
    else if (isNum(r.total) && r.total > 0) progress = num(r.scanned) / r.total;
    else if (r.state === "done") progress = 1;
    return {
      id: String(r.id),
      topic: r.topic,
      subscription: r.subscription,
      state: r.state || "unknown",
      sent: num(r.sent),
      scanned: num(r.scanned),
      total: isNum(r.total) ? r.total : null,
      eventsPerSecond: isNum(r.eventsPerSecond) ? r.eventsPerSecond : null,
      progress: progress === null ? null : Math.max(0, Math.min(1, progress)),
    };
  }

  /** Polls once: metrics (or the resources' own counters), health and replays, normalised. */
  async function load() {
    const healthP = optional("health", API.health);
    // Awaited below; a 401 there is the same as the metrics' 401 (handled once, by the caller).
    healthP.catch(() => undefined);
    const metrics = await optional("metrics", API.metrics);
    const model = { at: Date.now(), source: "", note: "", topics: [], subscriptions: [], replays: null, replaysNote: "", health: null };
    const usable = metrics.body && Array.isArray(metrics.body.topics) && Array.isArray(metrics.body.subscriptions);
    if (usable) {
      model.source = API.metrics;
      // Subscription metadata (webhook URL, description) is not in the metrics: refresh it now and
      // then, and at once when a subscription appears.
      const unknown = metrics.body.subscriptions.some((x) => !state.meta[x.subscription]);
      if (unknown || Date.now() - state.metaAt > 15000) {
        try {
          rememberMeta(await api(API.subscriptions));
        } catch (err) {
          if (err instanceof ApiError && err.status === 401) throw err;
        }
      }
      const m = metrics.body;
      model.topics = m.topics.map((t) => ({
        name: String(t.topic),
        rejects: t.rejects || {},
        partitions: (t.partitions || []).map((p) => ({
          partition: num(p.partition),
          head: num(p.head),
          appended: num(p.appended, p.head),
          archived: p.archived || null,
          first: null,
          appendLatency: latencyMs(p.appendLatency),
        })),
      }));
      model.subscriptions = m.subscriptions.map((x) => {
        const meta = state.meta[x.subscription] || {};
        const lag = Array.isArray(x.lag) ? x.lag : [];
        const seconds = lag.map((l) => l.seconds).filter(isNum);
        return {
          name: String(x.subscription),
          topic: String(x.topic),
          kind: x.kind || meta.kind || "worker",
          url: meta.url,
          description: meta.description,
          handled: num(x.handled),
          retried: num(x.retried),
          deadLettered: num(x.deadLettered),
          dlqDepth: num(x.dlqDepth),
          circuit: circuitOf(x.circuit),
          lag: sum(lag.map((l) => l.events)),
          lagSeconds: seconds.length ? Math.max(...seconds) : null,
          e2e: latencyMs(x.endToEndLatency),
        };
      });
      model.replays = Array.isArray(m.replays) ? m.replays.map(normReplay) : [];
    } else {
      model.source = API.topics + " + " + API.subscriptions;
      model.note = metrics.error ? "metrics failed (" + metrics.error.message + ")" : "no /v1/metrics on this server";
      const [topics, subs, replays] = await Promise.all([api(API.topics), api(API.subscriptions), optional("replays", API.replays)]);
      rememberMeta(subs);
      model.topics = topics.topics.map((t) => ({
        name: String(t.name),
        description: t.description,
        rejects: {},
        partitions: t.partitionStats.map((p) => ({
          partition: num(p.partition),
          head: num(p.head),
          appended: num(p.head),
          archived: p.archived || null,
          first: num(p.first),
          appendLatency: null,
        })),
      }));
      model.subscriptions = subs.subscriptions.map((x) => ({
        name: String(x.name),
        topic: String(x.topic),
        kind: x.kind,
        url: x.target ? x.target.url : undefined,
        description: x.description,
        handled: num(x.counts && x.counts.handled),
        retried: num(x.counts && x.counts.retried),
        deadLettered: num(x.counts && x.counts.deadLettered),
        dlqDepth: num(x.dlqDepth),
        circuit: circuitOf(x.circuit),
        lag: num(x.lag),
        lagSeconds: null,
        e2e: null,
      }));
      if (replays.body && Array.isArray(replays.body.replays)) model.replays = replays.body.replays.map(normReplay);
      else if (replays.error && replays.error.status === 403) model.replaysNote = "Replay jobs are admin only for this key.";
      else model.replaysNote = replays.error ? "Replay jobs unavailable: " + replays.error.message : "No replay endpoint on this server.";
    }
    model.replays = model.replays && model.replays.slice(0, 10);
    const health = await healthP;
    // "failing" comes as a 503 with the same body.
    const report = health.body || (health.error && health.error.body && typeof health.error.body === "object" ? health.error.body : null);
    if (report && typeof report.status === "string") {
      model.health = { status: report.status, reasons: Array.isArray(report.reasons) ? report.reasons.map(String) : [], derived: false };
    } else {
      model.health = deriveHealth(model);
    }
    return model;
  }

  /** The metrics' latency summaries are in seconds; the charts use milliseconds. */
  function latencyMs(l) {
    if (!l || typeof l !== "object") return null;
    const ms = (v) => (isNum(v) ? v * 1000 : null);
    return { count: num(l.count), p50: ms(l.p50), p95: ms(l.p95), p99: ms(l.p99) };
  }

  function rememberMeta(body) {
    if (!body || !Array.isArray(body.subscriptions)) return;
    state.meta = {};
    for (const x of body.subscriptions) {
      state.meta[x.name] = { kind: x.kind, url: x.target ? x.target.url : undefined, description: x.description };
    }
    state.metaAt = Date.now();
  }

  /** While /v1/health is missing: failing with an open circuit, degraded with dead letters. */
  function deriveHealth(model) {
    const reasons = [];
    let status = "ok";
    for (const x of model.subscriptions) {
      if (x.circuit === "open") {
        status = "failing";
        reasons.push(x.name + ": circuit open");
      } else if (x.circuit !== "closed") {
        if (status === "ok") status = "degraded";
        reasons.push(x.name + ": circuit " + x.circuit);
      }
      if (x.dlqDepth > 0) {
        if (status === "ok") status = "degraded";
        reasons.push(x.name + ": " + plural(x.dlqDepth, "dead letter", "dead letters"));
      }
    }
    return { status, reasons, derived: true };
  }

  /** Rates from counter deltas against the previous poll (null on the first poll or after a reset). */
  function computeRates(model, prev) {
    const dt = prev ? (model.at - prev.at) / 1000 : 0;
    const rate = (now, before) => (prev && dt > 0 && isNum(before) && now >= before ? (now - before) / dt : null);
    const prevParts = new Map();
    const prevSubs = new Map();
    if (prev) {
      for (const t of prev.topics) for (const p of t.partitions) prevParts.set(t.name + "/" + p.partition, p.appended);
      for (const x of prev.subscriptions) prevSubs.set(x.name, x);
    }
    let totalIn = prev ? 0 : null;
    for (const t of model.topics) {
      t.events = sum(t.partitions.map((p) => p.head));
      t.appended = sum(t.partitions.map((p) => p.appended));
      t.rate = prev ? 0 : null;
      for (const p of t.partitions) {
        p.rate = rate(p.appended, prevParts.get(t.name + "/" + p.partition));
        if (p.rate !== null && t.rate !== null) t.rate += p.rate;
      }
      if (t.rate !== null) totalIn += t.rate;
    }
    let totalOut = prev ? 0 : null;
    let handledDelta = 0;
    let errorDelta = 0;
    for (const x of model.subscriptions) {
      const before = prevSubs.get(x.name);
      x.rate = before ? rate(x.handled, before.handled) : null;
      x.errorRate = before ? rate(x.retried + x.deadLettered, before.retried + before.deadLettered) : null;
      if (x.rate !== null) {
        totalOut += x.rate;
        handledDelta += x.handled - before.handled;
      }
      if (x.errorRate !== null) errorDelta += x.retried + x.deadLettered - before.retried - before.deadLettered;
    }
    // Latency: the slowest subscription's end-to-end percentiles, else the slowest partition's append.
    let latency = null;
    const withE2e = model.subscriptions.filter((x) => x.e2e && x.e2e.count > 0 && isNum(x.e2e.p50));
    if (withE2e.length) {
      latency = { kind: "end-to-end", p50: Math.max(...withE2e.map((x) => num(x.e2e.p50))), p99: Math.max(...withE2e.map((x) => num(x.e2e.p99))) };
    } else {
      const parts = [];
      for (const t of model.topics) for (const p of t.partitions) if (p.appendLatency && p.appendLatency.count > 0 && isNum(p.appendLatency.p50)) parts.push(p.appendLatency);
      if (parts.length) latency = { kind: "append", p50: Math.max(...parts.map((l) => num(l.p50))), p99: Math.max(...parts.map((l) => num(l.p99))) };
    }
    model.latency = latency;
    if (prev) {
      const attempts = handledDelta + errorDelta;
      state.samples.push({
        t: model.at,
        in: totalIn,
        out: totalOut,
        errorRate: attempts > 0 ? errorDelta / attempts : 0,
        p50: latency ? latency.p50 : null,
        p99: latency ? latency.p99 : null,
      });
      while (state.samples.length && state.samples[0].t < model.at - WINDOW_MS) state.samples.shift();
    }
    model.totalIn = totalIn;
    model.totalOut = totalOut;
  }

  // ---------------------------------------------------------------- flow graph

  const COL = { producer: 10, topic: 190, partition: 380, subscription: 616, consumer: 872 };
  const WIDTH = { producer: 140, topic: 150, partition: 196, subscription: 214, consumer: 150 };
  const ROW = 62;
  const NODE_H = 52;
  const TOP = 34;
  const GRAPH_W = 1032;

  function nodeKey(kind, ...parts) {
    return kind + ":" + parts.join("/");
  }

  function archivedText(p) {
    if (p.archived && isNum(p.archived.first) && isNum(p.archived.last) && p.archived.last > 0) {
      return "archived " + fmtInt(p.archived.first) + "–" + fmtInt(p.archived.last);
    }
    if (p.head === 0) return "empty";
    return "not archived yet";
  }

  /** Nodes and edges with their positions and texts. */
  function graphSpec(model) {
    const nodes = [];
    const edges = [];
    let y = TOP;
    const bands = [];
    for (const t of model.topics) {
      const subs = model.subscriptions.filter((x) => x.topic === t.name);
      const rows = Math.max(t.partitions.length, subs.length, 1);
      const bandH = rows * ROW;
      const centre = (i, n) => y + (rows - n) * (ROW / 2) + i * ROW + (ROW - NODE_H) / 2;
      const rejected = sum(Object.values(t.rejects || {}));
      const topicKey = nodeKey("topic", t.name);
      nodes.push({
        key: topicKey,
        kind: "topic",
        x: COL.topic,
        y: centre(0, 1),
        w: WIDTH.topic,
        href: "#/topic/" + encodeURIComponent(t.name),
        lines: [t.name, plural(t.events, "event", "events"), plural(t.partitions.length, "partition", "partitions") + " · " + fmtRate(t.rate)],
        label:
          "Topic " + t.name + ": " + plural(t.events, "event", "events") + " in " + plural(t.partitions.length, "partition", "partitions") +
          ", " + (isNum(t.rate) ? fmtNum(t.rate) + " events per second" : "rate pending") + (rejected ? ", " + fmtInt(rejected) + " rejected" : ""),
        tip: t.description || "",
        cls: "",
        data: { node: "topic", name: t.name, events: t.events, appended: t.appended, rate: isNum(t.rate) ? t.rate.toFixed(3) : "" },
      });
      edges.push({ key: "e:" + topicKey, from: "producers", to: topicKey, text: fmtRate(t.rate), active: t.rate > 0, at: 0.62 });
      t.partitions.forEach((p, i) => {
        const key = nodeKey("partition", t.name, p.partition);
        nodes.push({
          key,
          kind: "partition",
          x: COL.partition,
          y: centre(i, t.partitions.length),
          w: WIDTH.partition,
          href: "#/topic/" + encodeURIComponent(t.name) + "/" + p.partition,
          lines: ["p" + p.partition + " · head " + fmtInt(p.head), archivedText(p), fmtRate(p.rate) + " appended"],
          label: "Partition " + p.partition + " of " + t.name + ": head " + fmtInt(p.head) + ", " + archivedText(p) + ", " + fmtRate(p.rate),
          cls: "",
          data: { node: "partition", topic: t.name, partition: p.partition, head: p.head, appended: p.appended },
        });
        edges.push({ key: "e:" + key, from: topicKey, to: key, text: fmtRate(p.rate), active: p.rate > 0, at: 0.72 });
        for (const x of subs) edges.push({ key: "e:" + key + ">" + x.name, from: key, to: nodeKey("subscription", x.name), thin: true });
      });
      subs.forEach((x, i) => {
        const key = nodeKey("subscription", x.name);
        const lagText = "lag " + fmtInt(x.lag) + (isNum(x.lagSeconds) && x.lag > 0 ? " (" + fmtNum(x.lagSeconds) + " s)" : "");
        const dlqText = "DLQ " + fmtInt(x.dlqDepth);
        const cls = [x.dlqDepth > 0 ? "dlq" : "", x.lag > 0 ? "lagging" : "", x.circuit === "open" ? "open" : ""].join(" ").trim();
        nodes.push({
          key,
          kind: "subscription",
          x: COL.subscription,
          y: centre(i, subs.length),
          w: WIDTH.subscription,
          href: "#/subscription/" + encodeURIComponent(x.name),
          lines: [x.name, lagText, dlqText + " · circuit " + x.circuit],
          lineCls: ["t", "lag", "dlqt"],
          label:
            "Subscription " + x.name + " on " + x.topic + " (" + x.kind + "): " + lagText + ", " + dlqText +
            (x.dlqDepth > 0 ? " dead letters waiting" : "") + ", circuit " + x.circuit + ", " + fmtRate(x.rate) + " handled",
          tip: x.description || "",
          cls,
          data: { node: "subscription", name: x.name, topic: x.topic, kind: x.kind, dlq: x.dlqDepth, lag: x.lag, handled: x.handled, circuit: x.circuit },
        });
        const consumerKey = nodeKey("consumer", x.name);
        const target = x.kind === "webhook" ? hostOf(x.url) || "webhook" : /example consumer/i.test(x.description || "") ? "example-consumer" : "platform Worker";
        nodes.push({
          key: consumerKey,
          kind: "consumer",
          x: COL.consumer,
          y: centre(i, subs.length),
          w: WIDTH.consumer,
          lines: [x.kind === "webhook" ? "Webhook" : "Worker", target, "errors " + fmtRate(x.errorRate)],
          label: "Consumer of " + x.name + ": " + (x.kind === "webhook" ? "webhook " : "Worker ") + target + ", " + fmtRate(x.rate) + " handled",
          cls: "",
          data: { node: "consumer", name: x.name, kind: x.kind },
        });
        edges.push({ key: "e:" + consumerKey, from: key, to: consumerKey, text: fmtRate(x.rate), active: x.rate > 0 });
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
      lines: ["Producers", "HTTP ingest", fmtRate(model.totalIn) + " in"],
      label: "Producers (HTTP ingest): " + fmtRate(model.totalIn) + " appended in total",
      cls: "",
      data: { node: "producer", name: "producers" },
    });
    return { nodes, edges, bands: bands.slice(0, -1), height };
  }

  /** A horizontal cubic curve from a's right side to b's left side, and the point at t for its label. */
  function edgePath(a, b, t) {
    const x1 = a.x + a.w;
    const y1 = a.y + NODE_H / 2;
    const x2 = b.x - 2;
    const y2 = b.y + NODE_H / 2;
    const dx = Math.max(30, (x2 - x1) / 2);
    const u = 1 - t;
    const at = (p0, p1, p2, p3) => u * u * u * p0 + 3 * u * u * t * p1 + 3 * u * t * t * p2 + t * t * t * p3;
    return {
      d: "M" + x1 + " " + y1 + " C" + (x1 + dx) + " " + y1 + " " + (x2 - dx) + " " + y2 + " " + x2 + " " + y2,
      mx: at(x1, x1 + dx, x2 - dx, x2),
      my: at(y1, y1, y2, y2),
    };
  }

  function applyNode(ref, n) {
    ref.el.setAttribute("class", "node " + n.kind + (n.cls ? " " + n.cls : ""));
    ref.el.setAttribute("aria-label", n.label);
    for (const k of Object.keys(n.data)) ref.el.setAttribute("data-" + k, String(n.data[k]));
    n.lines.forEach((line, i) => {
      const max = Math.floor((n.w - 16) / (i === 0 ? 7.6 : 6.3));
      if (ref.texts[i].textContent !== truncate(line, max)) ref.texts[i].textContent = truncate(line, max);
    });
    if (ref.tip) ref.tip.textContent = n.tip ? n.label + " — " + n.tip : n.label;
  }

  function applyEdge(ref, e) {
    ref.path.setAttribute("class", "edge" + (e.thin ? " thin" : "") + (e.active ? " active" : ""));
    if (ref.text) {
      ref.text.textContent = e.text;
      ref.text.setAttribute("class", "elabel" + (e.active ? "" : " idle"));
    }
  }

  function renderGraph(model) {
    const spec = graphSpec(model);
    const sig = spec.nodes.map((n) => n.key).join("|") + "#" + spec.edges.length;
    const container = byId("graph");
    if (sig !== state.graphSig || !state.graphRefs) {
      // The topology changed (first render, a subscription created or deleted): build anew,
      // keeping keyboard focus on the same node.
      const focused = document.activeElement && document.activeElement.getAttribute ? document.activeElement.getAttribute("data-key") : null;
      const refs = { nodes: new Map(), edges: new Map() };
      const svg = s("svg", {
        class: "graph",
        viewBox: "0 0 " + GRAPH_W + " " + spec.height,
        width: GRAPH_W,
        height: spec.height,
        role: "group",
        "aria-label": "Event flow graph",
      });
      const marker = { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, markerUnits: "userSpaceOnUse", orient: "auto" };
      const defs = s("defs", null, s("marker", marker, s("path", { d: "M0 0 L10 5 L0 10 z" })));
      svg.appendChild(defs);
      const heads = [["Producers", "producer"], ["Topics", "topic"], ["Partitions", "partition"], ["Subscriptions", "subscription"], ["Consumers", "consumer"]];
      for (const [text, kind] of heads) svg.appendChild(s("text", { class: "colhead", x: COL[kind], y: 16, "aria-hidden": "true", text }));
      for (const by of spec.bands) svg.appendChild(s("line", { class: "band", x1: 0, x2: GRAPH_W, y1: by, y2: by, "aria-hidden": "true" }));
      const byKey = new Map(spec.nodes.map((n) => [n.key, n]));
      const edgeLayer = s("g", { "aria-hidden": "true" });
      const labelLayer = s("g", { "aria-hidden": "true" });
      for (const e of spec.edges) {
        const a = byKey.get(e.from);
        const b = byKey.get(e.to);
        if (!a || !b) continue;
        const geo = edgePath(a, b, e.at ?? 0.5);
        const path = s("path", { d: geo.d, "marker-end": e.thin ? null : "url(#arrow)" });
        edgeLayer.appendChild(path);
        let text = null;
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
            class: (n.lineCls && n.lineCls[i]) || (i === 0 ? "t" : i === 2 ? "m" : ""),
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
        const again = container.querySelector('[data-key="' + CSS.escape(focused) + '"]');
        if (again) again.focus();
      }
      return;
    }
    for (const n of spec.nodes) {
      const ref = state.graphRefs.nodes.get(n.key);
      if (ref) applyNode(ref, n);
    }
    for (const e of spec.edges) {
      const ref = state.graphRefs.edges.get(e.key);
      if (ref) applyEdge(ref, e);
    }
  }

  // ---------------------------------------------------------------- charts

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  /** A line chart of the last 5 minutes: series [{name, cls, key}], values from state.samples. */
  function renderChart(id, title, series, format, emptyText) {
    const fig = clear(byId(id));
    fig.setAttribute("data-samples", String(state.samples.length));
    const W = 320;
    const H = 130;
    const L = 44;
    const R = 8;
    const T = 8;
    const B = 20;
    const now = state.model ? state.model.at : Date.now();
    const samples = state.samples;
    // At most the last 5 minutes; less (but at least a minute) while the page has not been open that long.
    const span = Math.min(WINDOW_MS, Math.max(60000, samples.length ? now - samples[0].t : 0));
    const ago = span >= WINDOW_MS ? "−5 min" : span >= 60000 ? "−" + fmtNum(span / 60000) + " min" : "−" + Math.round(span / 1000) + " s";
    let max = 0;
    for (const x of series) for (const p of samples) if (isNum(p[x.key])) max = Math.max(max, p[x.key]);
    max = niceMax(max);
    const xOf = (t) => L + ((t - (now - span)) / span) * (W - L - R);
    const yOf = (v) => T + (1 - v / max) * (H - T - B);
    const latest = series.map((x) => {
      const last = samples.length ? samples[samples.length - 1][x.key] : null;
      return x.name + " " + format(last);
    });
    const hasData = series.some((x) => samples.some((p) => isNum(p[x.key])));
    fig.appendChild(h("figcaption", { text: title }));
    const svg = s("svg", {
      class: "plot",
      viewBox: "0 0 " + W + " " + H,
      role: "img",
      "aria-label": title + ", over the last " + ago.slice(1) + "; latest: " + (hasData ? latest.join(", ") : emptyText),
    });
    for (const v of [0, max / 2, max]) {
      svg.appendChild(s("line", { class: "grid", x1: L, x2: W - R, y1: yOf(v), y2: yOf(v) }));
      svg.appendChild(s("text", { class: "axis", x: L - 4, y: yOf(v) + 3, "text-anchor": "end", text: format(v) }));
    }
    svg.appendChild(s("text", { class: "axis", x: L, y: H - 5, text: ago }));
    svg.appendChild(s("text", { class: "axis", x: W - R, y: H - 5, "text-anchor": "end", text: "now" }));
    for (const x of series) {
      // A gap (no value) splits the line.
      let run = [];
      const flush = () => {
        if (run.length === 1) run.push(run[0]);
        if (run.length) svg.appendChild(s("polyline", { class: x.cls, points: run.join(" ") }));
        run = [];
      };
      for (const p of samples) {
        if (isNum(p[x.key])) run.push(xOf(p.t).toFixed(1) + "," + yOf(p[x.key]).toFixed(1));
        else flush();
      }
      flush();
    }
    if (!hasData) svg.appendChild(s("text", { class: "axis", x: (L + W - R) / 2, y: H / 2, "text-anchor": "middle", text: emptyText }));
    fig.appendChild(svg);
    const legend = h("ul", { class: "legend" });
    series.forEach((x, i) => legend.appendChild(h("li", null, [h("span", { class: "sw " + x.cls, "aria-hidden": "true" }), latest[i]])));
    fig.appendChild(legend);
  }

  function renderCharts(model) {
    renderChart(
      "chart-throughput",
      "Throughput (events/s)",
      [
        { name: "appended", cls: "s1", key: "in" },
        { name: "handled", cls: "s2", key: "out" },
      ],
      fmtRate,
      "collecting…",
    );
    renderChart("chart-errors", "Error rate (retries + dead letters)", [{ name: "errors", cls: "s3", key: "errorRate" }], fmtPct, "collecting…");
    const kind = model.latency ? model.latency.kind : null;
    renderChart(
      "chart-latency",
      "Latency" + (kind ? " (" + kind + ")" : ""),
      [
        { name: "p50", cls: "s1", key: "p50" },
        { name: "p99", cls: "s4", key: "p99" },
      ],
      fmtMs,
      model.source === API.metrics ? "no latency recorded yet" : "needs /v1/metrics",
    );
  }

  // ---------------------------------------------------------------- tables and lists

  function table(headers, rows, caption) {
    const t = h("table", null, caption ? h("caption", { class: "sr", text: caption }) : null);
    t.appendChild(h("thead", null, h("tr", null, headers.map((x) => h("th", { scope: "col", class: x.num ? "num" : null, text: x.text })))));
    const body = h("tbody");
    for (const r of rows) body.appendChild(r);
    t.appendChild(body);
    return t;
  }

  function rememberFocus(container) {
    const a = document.activeElement;
    return a && container.contains(a) && a.getAttribute("data-key") ? a.getAttribute("data-key") : null;
  }
  function restoreFocus(container, key) {
    if (!key) return;
    const el = container.querySelector('[data-key="' + CSS.escape(key) + '"]');
    if (el) el.focus();
  }

  function renderSubscriptions(model) {
    const container = byId("subscriptions");
    const focused = rememberFocus(container);
    const rows = model.subscriptions.map((x) =>
      h("tr", { "data-subscription": x.name }, [
        h("th", { scope: "row" }, h("a", { href: "#/subscription/" + encodeURIComponent(x.name), "data-key": "sub:" + x.name, text: x.name })),
        h("td", { text: x.topic }),
        h("td", { text: x.kind }),
        h("td", { class: "num" + (x.lag > 0 ? " warn" : ""), text: fmtInt(x.lag) }),
        h("td", { class: "num" + (x.dlqDepth > 0 ? " alert" : ""), "data-dlq": x.dlqDepth, text: fmtInt(x.dlqDepth) }),
        h("td", { class: x.circuit === "closed" ? null : "alert", text: x.circuit }),
        h("td", { class: "num", text: fmtRate(x.rate) }),
        h("td", { class: "num" + (x.errorRate > 0 ? " warn" : ""), text: fmtRate(x.errorRate) }),
      ]),
    );
    clear(container);
    if (!rows.length) container.appendChild(h("p", { class: "note", text: "No subscriptions visible to this key." }));
    else
      container.appendChild(
        table(
          [
            { text: "Subscription" },
            { text: "Topic" },
            { text: "Kind" },
            { text: "Lag", num: true },
            { text: "DLQ", num: true },
            { text: "Circuit" },
            { text: "Handled", num: true },
            { text: "Errors", num: true },
          ],
          rows,
          "Subscriptions with lag, dead-letter depth, circuit state and rates",
        ),
      );
    restoreFocus(container, focused);
  }

  function renderReplays(model) {
    const container = clear(byId("replays"));
    if (!model.replays) {
      container.appendChild(h("p", { class: "note", text: model.replaysNote || "Replay jobs unavailable." }));
      return;
    }
    if (!model.replays.length) {
      container.appendChild(h("p", { class: "note", text: "No replay jobs. Start one with POST /v1/replays or npx eventline replay." }));
      return;
    }
    const list = h("ul", { class: "replays" });
    for (const r of model.replays) {
      const pct = r.progress === null ? null : Math.round(r.progress * 100);
      const label = "Replay " + r.id + " of " + r.topic + " to " + r.subscription;
      list.appendChild(
        h("li", { "data-replay": r.id }, [
          h("div", { class: "head" }, [
            h("span", null, [h("code", { title: r.id, text: truncate(r.id, 16) }), " " + r.topic + " → " + r.subscription]),
            h("span", { class: "state " + r.state, text: r.state }),
          ]),
          h("progress", { max: 100, value: pct === null ? null : pct, "aria-label": label + " progress" }),
          h("div", {
            class: "note",
            text:
              (pct === null ? "progress unknown" : pct + "%") + " · sent " + fmtInt(r.sent) + " · scanned " + fmtInt(r.scanned) +
              (r.total !== null ? " of " + fmtInt(r.total) : "") + (r.eventsPerSecond !== null ? " · " + fmtNum(r.eventsPerSecond) + " events/s" : ""),
          }),
        ]),
      );
    }
    container.appendChild(list);
  }

  function renderHealth(model) {
    const el = byId("health");
    const hh = model.health;
    el.hidden = false;
    el.className = "badge " + hh.status;
    el.setAttribute("data-status", hh.status);
    el.textContent = "Health: " + hh.status + (hh.derived ? " (derived)" : "");
    el.title = hh.derived ? "Derived from DLQ depth and circuits (no /v1/health on this server)" : "From /v1/health";
    const reasons = byId("health-reasons");
    reasons.hidden = hh.reasons.length === 0;
    reasons.textContent = hh.reasons.length ? truncate(hh.reasons.slice(0, 2).join("; "), 140) + (hh.reasons.length > 2 ? " (+" + (hh.reasons.length - 2) + " more)" : "") : "";
    reasons.title = hh.reasons.join("\n");
  }

  function render(model) {
    renderGraph(model);
    renderCharts(model);
    renderSubscriptions(model);
    renderReplays(model);
    renderHealth(model);
  }

  // ---------------------------------------------------------------- polling and sign-in

  function showError(text) {
    const el = byId("error");
    el.hidden = !text;
    el.textContent = text || "";
    byId("graph").classList.toggle("stale", Boolean(text));
  }

  async function poll() {
    const generation = state.generation;
    let model;
    try {
      model = await load();
    } catch (err) {
      if (generation !== state.generation) return false;
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
        signOut(
          (err.status === 401 ? "The API did not accept this key (401 Unauthorized)" : "This key may not read the topics (403 Forbidden)") +
            (err.detail ? ": " + err.detail : "") + ". Sign in with another key.",
        );
        return false;
      }
      showError("Update failed at " + fmtClock(new Date()) + ": " + (err && err.message ? err.message : String(err)) + " — retrying every 2 s.");
      return state.model !== null;
    }
    if (generation !== state.generation) return false;
    computeRates(model, state.prev);
    const first = state.model === null;
    state.prev = model;
    state.model = model;
    showError("");
    try {
      render(model);
    } catch (err) {
      console.error(err);
      showError("Could not draw the update: " + (err && err.message ? err.message : String(err)));
    }
    const updated = byId("updated");
    updated.textContent = "Last updated " + fmtClock(new Date(model.at)) + " · source " + model.source + (model.note ? " (" + model.note + ")" : "");
    updated.setAttribute("data-updated", String(model.at));
    const route = parseRoute();
    if (first) showRoute(false);
    else if (route && route.view === "subscription" && !state.redriving) showSubscription(route, true);
    return true;
  }

  function schedule() {
    clearTimeout(state.timer);
    const generation = state.generation;
    state.timer = setTimeout(async () => {
      if (generation !== state.generation) return;
      await poll();
      if (generation === state.generation && state.token) schedule();
    }, POLL_MS);
  }

  function storage() {
    try {
      return window.sessionStorage;
    } catch {
      return null;
    }
  }

  function showSignIn(message) {
    byId("app").hidden = true;
    byId("signin").hidden = false;
    byId("signout").hidden = true;
    byId("health").hidden = true;
    byId("health-reasons").hidden = true;
    byId("updated").textContent = "Not signed in";
    const err = byId("signin-error");
    err.hidden = !message;
    err.textContent = message || "";
    byId("token").focus();
  }

  function signOut(message) {
    state.generation++;
    clearTimeout(state.timer);
    state.token = null;
    const st = storage();
    if (st) st.removeItem(TOKEN_KEY);
    showSignIn(message);
  }

  async function signIn(token) {
    state.generation++;
    clearTimeout(state.timer);
    state.token = token;
    state.prev = null;
    state.model = null;
    state.samples = [];
    state.missing = {};
    state.metaAt = 0;
    state.graphSig = "";
    state.graphRefs = null;
    await poll();
    // A refused key has signed out already; any other failure shows inline and polling goes on.
    if (state.token !== token) return;
    const st = storage();
    if (st) st.setItem(TOKEN_KEY, token);
    byId("signin").hidden = true;
    byId("app").hidden = false;
    byId("signout").hidden = false;
    schedule();
  }

  // ---------------------------------------------------------------- drill-down views

  function parseRoute() {
    const parts = location.hash.replace(/^#\/?/, "").split("/").filter((p) => p !== "").map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    });
    const int = (v) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : null);
    if (parts[0] === "topic" && parts[1]) return { view: "topic", topic: parts[1], partition: int(parts[2]) ?? 0, from: int(parts[3]) };
    if (parts[0] === "subscription" && parts[1]) return { view: "subscription", name: parts[1] };
    if (parts[0] === "event" && parts[1] && int(parts[2]) !== null && int(parts[3]) !== null) {
      return { view: "event", topic: parts[1], partition: int(parts[2]), sequence: int(parts[3]) };
    }
    return null;
  }

  const topicHash = (topic, partition, from) =>
    "#/topic/" + encodeURIComponent(topic) + "/" + partition + (from !== null && from !== undefined ? "/" + from : "");
  const eventHash = (topic, partition, sequence) => "#/event/" + encodeURIComponent(topic) + "/" + partition + "/" + sequence;

  function openDetail(title, focus) {
    const section = byId("detail");
    section.hidden = false;
    byId("detail-title").textContent = title;
    if (focus) {
      byId("detail-title").focus({ preventScroll: true });
      section.scrollIntoView({ block: "start" });
    }
    return clear(byId("detail-body"));
  }

  function showRoute(focus) {
    if (!state.token || !state.model) return;
    const route = parseRoute();
    if (!route) {
      byId("detail").hidden = true;
      state.detailSeq++;
      return;
    }
    if (route.view === "topic") showTopic(route, focus);
    else if (route.view === "subscription") showSubscription(route, false, focus);
    else showEvent(route, focus);
  }

  const message = (text, cls) => h("p", { class: "msg" + (cls ? " " + cls : ""), role: cls === "bad" ? "alert" : "status", text });

  function describeFailure(err, what) {
    if (err instanceof ApiError && err.status === 403) return what + ": admin only (403). " + (err.detail || "");
    if (err instanceof ApiError && err.status === 404) return what + ": not found. " + (err.detail || "");
    return what + " failed: " + (err && err.message ? err.message : String(err));
  }

  async function showTopic(route, focus) {
    const seq = ++state.detailSeq;
    const topic = state.model.topics.find((t) => t.name === route.topic);
    const body = openDetail("Topic " + route.topic, focus);
    if (!topic) {
      body.appendChild(message("Topic " + route.topic + " is not visible to this key.", "bad"));
      return;
    }
    const part = topic.partitions.find((p) => p.partition === route.partition) || topic.partitions[0];
    const partition = part ? part.partition : 0;
    const head = part ? part.head : 0;
    const from = route.from ?? Math.max(1, head - PAGE_SIZE + 1);

    const select = h(
      "select",
      { id: "partition-picker", onchange: (e) => (location.hash = topicHash(topic.name, Number(e.target.value), null)) },
      topic.partitions.map((p) =>
        h("option", { value: p.partition, selected: p.partition === partition, text: "Partition " + p.partition + " (head " + fmtInt(p.head) + ")" }),
      ),
    );
    const jump = h("input", { id: "jump-sequence", type: "number", min: 1, step: 1, inputmode: "numeric", value: from });
    const prev = h("button", { type: "button", disabled: true, text: "← Previous" });
    const next = h("button", { type: "button", disabled: true, text: "Next →" });
    const latest = h("button", { type: "button", text: "Latest", onclick: () => (location.hash = topicHash(topic.name, partition, null)) });
    body.appendChild(
      h("div", { class: "toolbar" }, [
        h("label", { for: "partition-picker", text: "Partition" }),
        select,
        h(
          "form",
          {
            onsubmit: (e) => {
              e.preventDefault();
              const v = Number(jump.value);
              if (Number.isInteger(v) && v >= 1) location.hash = topicHash(topic.name, partition, v);
            },
          },
          [h("label", { for: "jump-sequence", text: "Jump to sequence" }), jump, h("button", { type: "submit", text: "Go" })],
        ),
        prev,
        next,
        latest,
      ]),
    );
    const status = h("p", { class: "note", role: "status", text: "Loading events…" });
    const results = h("div", { class: "scroll" });
    body.appendChild(status);
    body.appendChild(results);
    let page;
    try {
      page = await api(API.events, { topic: topic.name, partition }, { query: { from, limit: PAGE_SIZE } });
    } catch (err) {
      if (seq !== state.detailSeq) return;
      status.replaceWith(message(describeFailure(err, "Reading events"), "bad"));
      return;
    }
    if (seq !== state.detailSeq) return;
    const events = Array.isArray(page.events) ? page.events : [];
    const lowest = Math.max(1, num(page.first, 1));
    if (!events.length) status.textContent = "No events from sequence " + fmtInt(from) + " (head " + fmtInt(page.head) + ").";
    else {
      status.textContent =
        "Sequences " + fmtInt(Number(events[0].sequence)) + "–" + fmtInt(Number(events[events.length - 1].sequence)) + " of partition " + partition +
        " (head " + fmtInt(page.head) + ").";
    }
    if (from > lowest) {
      prev.disabled = false;
      prev.addEventListener("click", () => (location.hash = topicHash(topic.name, partition, Math.max(lowest, from - PAGE_SIZE))));
    }
    if (page.hasMore && page.next) {
      next.disabled = false;
      next.addEventListener("click", () => (location.hash = topicHash(topic.name, partition, page.next.from)));
    }
    if (events.length) {
      const rows = events.map((e) => {
        const sq = Number(e.sequence);
        return h("tr", { "data-sequence": sq }, [
          h("td", { class: "num" }, h("a", { href: eventHash(topic.name, partition, sq), "aria-label": "Event at sequence " + sq, text: fmtInt(sq) })),
          h("td", { class: "mono", text: truncate(String(e.id ?? ""), 40) }),
          h("td", { text: String(e.type ?? "") }),
          h("td", { text: String(e.subject ?? "") }),
          h("td", { text: String(e.receivedtime ?? e.time ?? "") }),
        ]);
      });
      results.appendChild(
        table(
          [{ text: "Sequence", num: true }, { text: "Id" }, { text: "Type" }, { text: "Subject" }, { text: "Received" }],
          rows,
          "Events of " + topic.name + " partition " + partition,
        ),
      );
    }
  }

  function keyValues(pairs) {
    const dl = h("dl", { class: "kv" });
    for (const [k, v] of pairs) {
      if (v === undefined || v === null || v === "") continue;
      dl.appendChild(h("dt", { text: k }));
      dl.appendChild(h("dd", null, v instanceof Node ? v : String(v)));
    }
    return dl;
  }

  /**
   * Renders an event's trace: its scalar members (and the commit time), one block per subscription
   * with its state and delivery attempts, any other array of objects as a table, and the JSON.
   * Tolerant of shapes it does not know.
   */
  function renderTrace(container, trace) {
    if (!trace || typeof trace !== "object") {
      container.appendChild(h("pre", { class: "json", text: JSON.stringify(trace, null, 2) }));
      return;
    }
    const scalars = Object.keys(trace).filter((k) => trace[k] === null || typeof trace[k] !== "object");
    const pairs = scalars.map((k) => [k, compact(trace[k])]);
    if (trace.committed && trace.committed.at) pairs.push(["committed", trace.committed.at]);
    container.appendChild(keyValues(pairs));
    if (Array.isArray(trace.subscriptions)) {
      const list = h("ul", { class: "replays", "aria-label": "Subscriptions of the event" });
      for (const x of trace.subscriptions) {
        if (!x || typeof x !== "object") continue;
        const attempts = Array.isArray(x.attempts) ? x.attempts : [];
        const cls = { dead_lettered: "failed", handled: "done", pending: "running", routed: "running", in_transit: "running", redelivered: "running", retrying: "running" }[x.state] || "";
        list.appendChild(
          h("li", { "data-trace-subscription": x.subscription }, [
            h("div", { class: "head" }, [
              h("span", null, [h("strong", { text: String(x.subscription) }), " (" + (x.kind || "?") + ")" + (x.matched === false ? " · filter does not match" : "")]),
              h("span", { class: "state " + cls, text: String(x.state || "unknown").replace(/_/g, " ") }),
            ]),
            attempts.length
              ? h(
                  "ol",
                  null,
                  attempts.map((a) =>
                    h("li", {
                      text:
                        "attempt " + a.attempt + " · " + a.outcome + " · " + a.at + (a.sentAt ? " (queued " + a.sentAt + ")" : "") +
                        (a.error ? " · " + truncate(String(a.error), 200) : ""),
                    }),
                  ),
                )
              : h("div", { class: "note", text: x.routed === false ? "not routed to it" : "no delivery attempt recorded" }),
          ]),
        );
      }
      container.appendChild(list);
    }
    for (const k of Object.keys(trace)) {
      const v = trace[k];
      if (k === "subscriptions" || !Array.isArray(v) || !v.length || typeof v[0] !== "object" || v[0] === null) continue;
      const cols = [];
      for (const item of v.slice(0, 20)) for (const c of Object.keys(item || {})) if (!cols.includes(c) && cols.length < 8) cols.push(c);
      container.appendChild(h("h4", { text: k + " (" + v.length + ")" }));
      container.appendChild(
        h(
          "div",
          { class: "scroll" },
          table(
            cols.map((c) => ({ text: c })),
            v.slice(0, 200).map((item) => h("tr", null, cols.map((c) => h("td", { text: compact(item ? item[c] : "") })))),
            k,
          ),
        ),
      );
    }
    container.appendChild(
      h("details", null, [h("summary", { text: "Trace JSON" }), h("pre", { class: "json", text: JSON.stringify(trace, null, 2) })]),
    );
  }

  async function showEvent(route, focus) {
    const seq = ++state.detailSeq;
    const body = openDetail("Event " + route.topic + " / partition " + route.partition + " / sequence " + route.sequence, focus);
    body.appendChild(
      h("p", null, h("a", { href: topicHash(route.topic, route.partition, route.sequence), text: "← Events of " + route.topic + " partition " + route.partition })),
    );
    const eventBox = h("div", null, h("p", { class: "note", role: "status", text: "Loading the event…" }));
    const traceBox = h("div", { id: "trace" }, h("p", { class: "note", role: "status", text: "Loading the trace…" }));
    body.appendChild(eventBox);
    body.appendChild(h("h3", { text: "Trace" }));
    body.appendChild(traceBox);
    const params = { topic: route.topic, partition: route.partition, sequence: route.sequence };
    const [page, trace] = await Promise.allSettled([
      api(API.events, params, { query: { from: route.sequence, limit: 1 } }),
      api(API.trace, params),
    ]);
    if (seq !== state.detailSeq) return;
    clear(eventBox);
    if (page.status === "rejected") eventBox.appendChild(message(describeFailure(page.reason, "Reading the event"), "bad"));
    else {
      const event = (page.value.events || []).find((e) => Number(e.sequence) === route.sequence);
      if (!event) eventBox.appendChild(message("No event at sequence " + route.sequence + " (it may be past the head or trimmed).", "bad"));
      else {
        eventBox.appendChild(
          keyValues([
            ["id", event.id],
            ["type", event.type],
            ["source", event.source],
            ["subject", event.subject],
            ["time", event.time],
            ["received", event.receivedtime],
            ["traceparent", event.traceparent],
          ]),
        );
        eventBox.appendChild(
          h("details", { open: true }, [h("summary", { text: "Event JSON" }), h("pre", { class: "json", text: JSON.stringify(event, null, 2) })]),
        );
      }
    }
    clear(traceBox);
    if (trace.status === "fulfilled") renderTrace(traceBox, trace.value);
    else if (trace.reason instanceof ApiError && trace.reason.status === 404) {
      traceBox.appendChild(message("Trace not available for this event (this server has no trace for it, or no trace endpoint yet)."));
    } else traceBox.appendChild(message(describeFailure(trace.reason, "Trace"), "bad"));
  }

  /** The subscription view; refresh = re-read on a poll without rebuilding the controls or moving focus. */
  async function showSubscription(route, refresh, focus) {
    let view = byId("subscription-view");
    if (!refresh || !view || !view.isConnected || view.getAttribute("data-name") !== route.name) {
      state.detailSeq++;
      const body = openDetail("Subscription " + route.name, focus);
      const button = h("button", { id: "redrive", type: "button", class: "danger", hidden: true, text: "Redrive all" });
      button.addEventListener("click", () => redrive(route.name));
      view = h("div", { id: "subscription-view", "data-name": route.name }, [
        h("div", { id: "sub-summary" }, h("p", { class: "note", text: "Loading…" })),
        h("h3", null, ["Dead letters: ", h("span", { id: "dlq-count", class: "count", "data-depth": "", text: "…" })]),
        h("div", { class: "toolbar" }, [button, h("span", { id: "redrive-result", role: "status" })]),
        h("div", { id: "dlq-list", class: "scroll" }),
      ]);
      body.appendChild(view);
    }
    const seq = state.detailSeq;
    const [sub, dlq] = await Promise.allSettled([
      api(API.subscription, { name: route.name }),
      api(API.dlq, { name: route.name }, { query: { limit: 50 } }),
    ]);
    if (seq !== state.detailSeq || !view.isConnected) return;
    const summary = clear(byId("sub-summary"));
    if (sub.status === "rejected") summary.appendChild(message(describeFailure(sub.reason, "Reading the subscription"), "bad"));
    else {
      const x = sub.value;
      summary.appendChild(
        keyValues([
          ["topic", x.topic],
          ["kind", x.kind],
          ["description", x.description],
          ["target", x.target ? x.target.url || x.target.queue : ""],
          ["filter", x.filter ? JSON.stringify(x.filter) : "none (every event)"],
          ["ordering", x.ordering],
          ["max retries", x.maxRetries],
          ["circuit", x.circuit ? x.circuit.state + " (" + plural(x.circuit.consecutiveFailures, "failure", "failures") + " in a row)" : ""],
          [
            "counts",
            x.counts
              ? "handled " + fmtInt(x.counts.handled) + " · retried " + fmtInt(x.counts.retried) + " · dead-lettered " + fmtInt(x.counts.deadLettered)
              : "",
          ],
          ["lag", fmtInt(x.lag)],
        ]),
      );
      if (Array.isArray(x.partitions) && x.partitions.length) {
        summary.appendChild(
          table(
            [
              { text: "Partition", num: true },
              { text: "Head", num: true },
              { text: "Checkpoint", num: true },
              { text: "Lag", num: true },
              { text: "Outbox", num: true },
            ],
            x.partitions.map((p) =>
              h("tr", null, [
                h("td", { class: "num", text: p.partition }),
                h("td", { class: "num", text: fmtInt(p.head) }),
                h("td", { class: "num", text: fmtInt(p.checkpoint) }),
                h("td", { class: "num" + (p.lag > 0 ? " warn" : ""), text: fmtInt(p.lag) }),
                h("td", { class: "num", text: fmtInt(p.outbox) }),
              ]),
            ),
            "Per-partition checkpoint and lag",
          ),
        );
      }
    }
    const count = byId("dlq-count");
    const list = clear(byId("dlq-list"));
    const button = byId("redrive");
    if (dlq.status === "rejected") {
      const err = dlq.reason;
      count.textContent = err instanceof ApiError && err.status === 403 ? "admin only" : "unavailable";
      count.setAttribute("data-depth", "");
      count.className = "count";
      button.hidden = true;
      if (!(err instanceof ApiError && err.status === 403)) list.appendChild(message(describeFailure(err, "Reading the DLQ"), "bad"));
      return;
    }
    const page = dlq.value;
    const total = num(page.total, (page.deadLetters || []).length);
    count.textContent = fmtInt(total);
    count.setAttribute("data-depth", String(total));
    count.className = "count" + (total > 0 ? " alert" : "");
    // Listing needs admin on the topic, as redrive does: the button shows only when the list was allowed.
    button.hidden = total === 0;
    if (!total) {
      list.appendChild(h("p", { class: "note", text: "The DLQ is empty." }));
      return;
    }
    list.appendChild(
      table(
        [
          { text: "Event" },
          { text: "Reason" },
          { text: "Error" },
          { text: "Attempts", num: true },
          { text: "Dead-lettered" },
        ],
        page.deadLetters.map((d) =>
          h("tr", { "data-dead-letter": d.id }, [
            h("td", null, h("a", { href: eventHash(d.topic, d.partition, d.sequence), text: d.topic + "/" + d.partition + "/" + d.sequence })),
            h("td", { text: d.reason }),
            h("td", { text: truncate(String(d.error || ""), 160) }),
            h("td", { class: "num", text: fmtInt(d.attempts) }),
            h("td", { text: d.deadLetteredAt }),
          ]),
        ),
        "Dead letters, oldest first",
      ),
    );
    if (page.next) list.appendChild(h("p", { class: "note", text: "Showing the oldest " + page.deadLetters.length + " of " + fmtInt(total) + "." }));
  }

  async function redrive(name) {
    const button = byId("redrive");
    const result = byId("redrive-result");
    state.redriving = true;
    button.disabled = true;
    result.className = "msg";
    result.textContent = "Redriving…";
    try {
      const r = await api(API.redrive, { name }, { method: "POST", body: {} });
      result.className = "msg good";
      result.textContent =
        "Redriven " + fmtInt(r.redriven) + "; " + fmtInt(r.remaining) + " remaining" + (r.skipped && r.skipped.length ? "; " + r.skipped.length + " skipped (not deliveries)" : "") + ".";
    } catch (err) {
      result.className = "msg bad";
      result.textContent = err instanceof ApiError && err.status === 403 ? "Redrive is admin only (403)." : describeFailure(err, "Redrive");
    } finally {
      state.redriving = false;
      button.disabled = false;
    }
    const route = parseRoute();
    if (route && route.view === "subscription" && route.name === name) await showSubscription(route, true);
  }

  // ---------------------------------------------------------------- start

  function start() {
    byId("signin-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const input = byId("token");
      const token = input.value.trim();
      if (!token) return;
      const button = e.target.querySelector("button");
      button.disabled = true;
      byId("signin-error").hidden = true;
      byId("updated").textContent = "Signing in…";
      signIn(token).finally(() => {
        button.disabled = false;
        input.value = "";
      });
    });
    byId("signout").addEventListener("click", () => signOut("Signed out."));
    byId("detail-close").addEventListener("click", () => {
      location.hash = "#/";
      byId("flow-title").focus();
    });
    window.addEventListener("hashchange", () => showRoute(true));
    const st = storage();
    const saved = st ? st.getItem(TOKEN_KEY) : null;
    if (saved) {
      byId("updated").textContent = "Signing in…";
      signIn(saved);
    } else showSignIn("");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
`;
