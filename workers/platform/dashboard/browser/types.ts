/** The dashboard's one model of a poll, whichever endpoints it came from (model.ts), with rates (rates.ts). */

export interface Latency {
  count: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface PartitionModel {
  partition: number;
  head: number;
  appended: number;
  archived: { first?: number; last?: number } | null;
  first: number | null;
  appendLatency: Latency | null;
  /** Events appended per second: the server's recent window, else since the previous poll (rates.ts). */
  rate: number | null;
  /** The server's windowed rate (GET /v1/metrics `recent`), when it gives one. */
  serverRate: number | null;
  /** Appended since the previous poll: its edge is animated only then. */
  moving: boolean;
}

export interface TopicModel {
  name: string;
  description?: string;
  rejects: Record<string, unknown>;
  partitions: PartitionModel[];
  events: number;
  appended: number;
  rate: number | null;
  /** Written only by the platform (the audit log): drawn without a producer edge. */
  internal: boolean;
  moving: boolean;
}

export interface SubscriptionModel {
  name: string;
  topic: string;
  kind: string;
  url?: string;
  description?: string;
  handled: number;
  retried: number;
  deadLettered: number;
  dlqDepth: number;
  circuit: string;
  lag: number;
  lagSeconds: number | null;
  e2e: Latency | null;
  /** Handled per second: the server's recent window, else since the previous poll. */
  rate: number | null;
  /** (retried + dead-lettered) ÷ delivered: the server's recent window (what health judges), else since the previous poll. */
  errorRate: number | null;
  /** The server's windowed figures, when it gives them. */
  server: { rate: number; errorRate: number } | null;
  moving: boolean;
}

/** A stream processor (GET /v1/metrics `processors`): drawn between its input and output topics. */
export interface ProcessorModel {
  name: string;
  kind: string;
  input: string;
  output: string;
  internalTopic: string;
  /** Events not yet applied (waiting to be re-partitioned plus in the internal topic). */
  lag: number;
  /** RFC 3339: the lowest instance watermark (null while an instance has had no input). */
  lowWatermark: string | null;
  /** The furthest an instance's watermark is behind the server's clock, seconds (null before any input). */
  watermarkLagSeconds: number | null;
  openWindows: number;
  lateEvents: number;
  results: number;
  outputPerSecond: number;
  pendingOutputs: number;
  /** An instance's last hand-on of its outputs failed and results wait. */
  outputsFailing: boolean;
  /** Results grew since the previous poll: its output edge is animated only then. */
  moving: boolean;
}

export interface ReplayModel {
  id: string;
  topic: string;
  subscription: string;
  state: string;
  sent: number;
  scanned: number;
  total: number | null;
  eventsPerSecond: number | null;
  /** 0..1, or null when the server gives no way to tell. */
  progress: number | null;
}

export interface Health {
  status: string;
  reasons: string[];
  /** True when computed here from DLQ depth and circuits (no /v1/health on the server). */
  derived: boolean;
}

export interface Model {
  at: number;
  source: string;
  note: string;
  topics: TopicModel[];
  subscriptions: SubscriptionModel[];
  processors: ProcessorModel[];
  replays: ReplayModel[] | null;
  replaysNote: string;
  health: Health | null;
  latency: { kind: "end-to-end" | "append"; p50: number; p99: number } | null;
  totalIn: number | null;
  totalOut: number | null;
  /** GET /v1/metrics `recent`: the chart sample of this poll, as the server computes every one. */
  recent: Sample | null;
  /** Its window, seconds (null: the server gives no windowed figures). */
  windowSeconds: number | null;
}

/** One point of the charts: the server's windowed figures (or, without them, rates between two polls); latency in ms. */
export interface Sample {
  t: number;
  in: number | null;
  out: number | null;
  errorRate: number;
  p50: number | null;
  p99: number | null;
}

/** What /v1/metrics does not say about a subscription, kept from /v1/subscriptions. */
export interface SubscriptionMeta {
  kind?: string;
  url?: string;
  description?: string;
}

export interface NodeRef {
  el: SVGElement;
  texts: SVGTextElement[];
  tip: SVGTitleElement;
}
export interface EdgeRef {
  path: SVGPathElement;
  text: SVGTextElement | null;
}
/** The drawn graph's elements by node and edge key, for in-place updates (graph.ts draws, state.ts keeps them). */
export interface GraphRefs {
  nodes: Map<string, NodeRef>;
  edges: Map<string, EdgeRef>;
}
