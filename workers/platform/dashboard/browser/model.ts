import { API, ApiError, api, optional } from "./api";
import { isNum, num, plural, sum } from "./format";
import { state } from "./state";
import type { Health, Latency, Model, ProcessorModel, ReplayModel, Sample, SubscriptionModel } from "./types";
import type {
  CircuitWire,
  LatencyWire,
  MetricsDoc,
  ProcessorWire,
  RecentTotalsWire,
  ReplayWire,
  SubscriptionsList,
  TopicsList,
} from "./wire";

/**
 * One poll normalised into the Model: from GET /v1/metrics, or — while a server has no metrics —
 * from /v1/topics + /v1/subscriptions + /v1/replays; health from GET /v1/health, or derived from
 * DLQ depth and circuits while that is missing.
 */

const circuitOf = (c: CircuitWire): string => (typeof c === "string" ? c : c && typeof c.state === "string" ? c.state : "closed");

function normReplay(r: ReplayWire): ReplayModel {
  let progress: number | null = null;
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

function normProcessor(p: ProcessorWire): ProcessorModel {
  const parts = Array.isArray(p.partitions) ? p.partitions : [];
  const behind = parts.map((i) => i.watermarkLagSeconds).filter(isNum);
  return {
    name: String(p.processor),
    kind: p.kind || "aggregate",
    input: String(p.inputTopic ?? ""),
    output: String(p.outputTopic ?? ""),
    internalTopic: String(p.internalTopic ?? ""),
    lag: num(p.lag),
    lowWatermark: typeof p.lowWatermark === "string" ? p.lowWatermark : null,
    watermarkLagSeconds: behind.length ? Math.max(...behind) : isNum(p.watermarkLagSeconds) ? p.watermarkLagSeconds : null,
    openWindows: num(p.openWindows),
    lateEvents: num(p.lateEvents),
    results: num(p.results),
    outputPerSecond: num(p.outputPerSecond),
    pendingOutputs: num(p.pendingOutputs),
    outputsFailing: parts.some((i) => typeof i.lastOutputError === "string" && num(i.pendingOutputs) > 0),
    moving: false,
  };
}

function isMetricsDoc(body: unknown): body is MetricsDoc {
  if (!body || typeof body !== "object") return false;
  const doc = body as { topics?: unknown; subscriptions?: unknown };
  return Array.isArray(doc.topics) && Array.isArray(doc.subscriptions);
}

/** The metrics' latency summaries are in seconds; the charts use milliseconds. */
function latencyMs(l: LatencyWire | null | undefined): Latency | null {
  if (!l || typeof l !== "object") return null;
  const ms = (v: unknown) => (isNum(v) ? v * 1000 : null);
  return { count: num(l.count), p50: ms(l.p50), p95: ms(l.p95), p99: ms(l.p99) };
}

/**
 * A chart sample from the server's windowed totals (GET /v1/metrics `recent`, or a history sample):
 * the charts plot exactly what the server computed, as health and the table read it.
 */
export function sampleOf(w: RecentTotalsWire | null | undefined, t: number): Sample | null {
  if (!w || typeof w !== "object" || !isNum(w.errorRate)) return null;
  const latency = w.latency && isNum(w.latency.p50) && isNum(w.latency.p99) ? w.latency : null;
  return {
    t,
    in: isNum(w.appendedPerSecond) ? w.appendedPerSecond : null,
    out: isNum(w.handledPerSecond) ? w.handledPerSecond : null,
    errorRate: w.errorRate,
    p50: latency ? num(latency.p50) * 1000 : null,
    p99: latency ? num(latency.p99) * 1000 : null,
  };
}

function rememberMeta(body: unknown): void {
  if (!body || typeof body !== "object" || !Array.isArray((body as Partial<SubscriptionsList>).subscriptions)) return;
  state.meta = {};
  for (const x of (body as SubscriptionsList).subscriptions) {
    state.meta[x.name] = { kind: x.kind, url: x.target ? x.target.url : undefined, description: x.description };
  }
  state.metaAt = Date.now();
}

/** While /v1/health is missing: failing with an open circuit, degraded with dead letters. */
function deriveHealth(model: Model): Health {
  const reasons: string[] = [];
  let status = "ok";
  for (const x of model.subscriptions) {
    if (x.circuit === "open") {
      status = "failing";
      reasons.push(`${x.name}: circuit open`);
    } else if (x.circuit !== "closed") {
      if (status === "ok") status = "degraded";
      reasons.push(`${x.name}: circuit ${x.circuit}`);
    }
    if (x.dlqDepth > 0) {
      if (status === "ok") status = "degraded";
      reasons.push(`${x.name}: ${plural(x.dlqDepth, "dead letter", "dead letters")}`);
    }
  }
  return { status, reasons, derived: true };
}

async function fromMetrics(model: Model, m: MetricsDoc): Promise<void> {
  model.source = API.metrics;
  // Subscription metadata (webhook URL, description) is not in the metrics: refresh it now and
  // then, and at once when a subscription appears.
  const unknown = m.subscriptions.some((x) => !state.meta[x.subscription]);
  if (unknown || Date.now() - state.metaAt > 15000) {
    try {
      rememberMeta(await api(API.subscriptions));
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) throw err;
    }
  }
  model.topics = m.topics.map((t) => ({
    name: String(t.topic),
    rejects: t.rejects || {},
    internal: t.internal === true,
    partitions: (t.partitions || []).map((p) => ({
      partition: num(p.partition),
      head: num(p.head),
      appended: num(p.appended, p.head),
      archived: p.archived || null,
      first: null,
      appendLatency: latencyMs(p.appendLatency),
      rate: null,
      serverRate: p.recent && isNum(p.recent.appendedPerSecond) ? p.recent.appendedPerSecond : null,
      moving: false,
    })),
    events: 0,
    appended: 0,
    rate: null,
    moving: false,
  }));
  model.subscriptions = m.subscriptions.map((x): SubscriptionModel => {
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
      rate: null,
      errorRate: null,
      server:
        x.recent && isNum(x.recent.handledPerSecond) && isNum(x.recent.errorRate)
          ? { rate: x.recent.handledPerSecond, errorRate: x.recent.errorRate }
          : null,
      moving: false,
    };
  });
  model.replays = Array.isArray(m.replays) ? m.replays.map(normReplay) : [];
  model.processors = Array.isArray(m.processors) ? m.processors.map(normProcessor) : [];
  // The server's clock, as the history's samples carry it.
  const generated = Date.parse(String(m.generatedAt));
  model.recent = sampleOf(m.recent, Number.isFinite(generated) ? generated : model.at);
  const l = m.recent?.latency;
  if (model.recent && l && isNum(l.p50) && isNum(l.p99))
    model.latency = { kind: l.kind === "append" ? "append" : "end-to-end", p50: l.p50 * 1000, p99: l.p99 * 1000 };
  model.windowSeconds = m.recent && isNum(m.recent.windowSeconds) ? m.recent.windowSeconds : null;
}

async function fromResources(model: Model, metricsError: ApiError | undefined): Promise<void> {
  model.source = `${API.topics} + ${API.subscriptions}`;
  model.note = metricsError ? `metrics failed (${metricsError.message})` : "no /v1/metrics on this server";
  const [topics, subs, replays] = await Promise.all([
    api<TopicsList>(API.topics),
    api<SubscriptionsList>(API.subscriptions),
    optional("replays", API.replays),
  ]);
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
      rate: null,
      serverRate: null,
      moving: false,
    })),
    events: 0,
    appended: 0,
    rate: null,
    internal: false,
    moving: false,
  }));
  model.subscriptions = subs.subscriptions.map((x) => ({
    name: String(x.name),
    topic: String(x.topic),
    kind: x.kind,
    url: x.target ? x.target.url : undefined,
    description: x.description,
    handled: num(x.counts?.handled),
    retried: num(x.counts?.retried),
    deadLettered: num(x.counts?.deadLettered),
    dlqDepth: num(x.dlqDepth),
    circuit: circuitOf(x.circuit),
    lag: num(x.lag),
    lagSeconds: null,
    e2e: null,
    rate: null,
    errorRate: null,
    server: null,
    moving: false,
  }));
  const list = replays.body as { replays?: unknown } | null | undefined;
  if (list && Array.isArray(list.replays)) model.replays = (list.replays as ReplayWire[]).map(normReplay);
  else if (replays.error && replays.error.status === 403) model.replaysNote = "Replay jobs are admin only for this key.";
  else model.replaysNote = replays.error ? `Replay jobs unavailable: ${replays.error.message}` : "No replay endpoint on this server.";
}

/** Polls once: metrics (or the resources' own counters), health and replays, normalised. */
export async function load(): Promise<Model> {
  const healthP = optional("health", API.health);
  // Awaited below; a 401 there is the same as the metrics' 401 (handled once, by the caller).
  healthP.catch(() => undefined);
  const metrics = await optional("metrics", API.metrics);
  const model: Model = {
    at: Date.now(),
    source: "",
    note: "",
    topics: [],
    subscriptions: [],
    processors: [],
    replays: null,
    replaysNote: "",
    health: null,
    latency: null,
    totalIn: null,
    totalOut: null,
    recent: null,
    windowSeconds: null,
  };
  if (isMetricsDoc(metrics.body)) await fromMetrics(model, metrics.body);
  else await fromResources(model, metrics.error);
  model.replays = model.replays?.slice(0, 10) ?? null;
  const health = await healthP;
  // "failing" comes as a 503 with the same body.
  const errorBody = health.error?.body;
  const report = (health.body || (errorBody && typeof errorBody === "object" ? errorBody : null)) as {
    status?: unknown;
    reasons?: unknown;
  } | null;
  if (report && typeof report.status === "string") {
    model.health = { status: report.status, reasons: Array.isArray(report.reasons) ? report.reasons.map(String) : [], derived: false };
  } else {
    model.health = deriveHealth(model);
  }
  return model;
}
