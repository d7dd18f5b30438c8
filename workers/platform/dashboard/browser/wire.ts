/**
 * The API's JSON as the dashboard reads it. The dashboard also runs against servers that lack some
 * endpoints or fields (it falls back, see model.ts), so most members are optional and every read is
 * defensive; these types describe what is read, they are not a validation of what arrives.
 */

export type CircuitWire = string | { state?: string; consecutiveFailures?: number } | null | undefined;

export interface LatencyWire {
  count?: number;
  p50?: number;
  p95?: number;
  p99?: number;
}

export interface ArchivedWire {
  first?: number;
  last?: number;
}

/** The totals over the server's recent window (GET /v1/metrics `recent`, and each GET /v1/metrics/history sample). */
export interface RecentTotalsWire {
  windowSeconds?: number;
  appendedPerSecond?: number;
  handledPerSecond?: number;
  errorRate?: number;
  latency?: { kind?: string; p50?: number; p99?: number } | null;
}

/** GET /v1/metrics/history. */
export interface HistoryDoc {
  windowSeconds?: number;
  historySeconds?: number;
  samples?: (RecentTotalsWire & { at?: string })[];
}

/** GET /v1/metrics. */
export interface MetricsDoc {
  generatedAt?: string;
  topics: {
    topic: string;
    rejects?: Record<string, unknown>;
    internal?: boolean;
    partitions?: {
      partition?: number;
      head?: number;
      appended?: number;
      archived?: ArchivedWire | null;
      appendLatency?: LatencyWire | null;
      recent?: { appendedPerSecond?: number } | null;
    }[];
  }[];
  subscriptions: {
    subscription: string;
    topic: string;
    kind?: string;
    handled?: number;
    retried?: number;
    deadLettered?: number;
    dlqDepth?: number;
    circuit?: CircuitWire;
    lag?: { events?: number; seconds?: number }[];
    endToEndLatency?: LatencyWire | null;
    recent?: { handledPerSecond?: number; errorRate?: number } | null;
  }[];
  replays?: ReplayWire[];
  processors?: ProcessorWire[];
  recent?: RecentTotalsWire | null;
}

/** An item of GET /v1/metrics `processors`. */
export interface ProcessorWire {
  processor: string;
  kind?: string;
  inputTopic?: string;
  outputTopic?: string;
  internalTopic?: string;
  lowWatermark?: string | null;
  watermarkLagSeconds?: number | null;
  lag?: number;
  openWindows?: number;
  lateEvents?: number;
  results?: number;
  outputPerSecond?: number;
  pendingOutputs?: number;
  partitions?: { watermarkLagSeconds?: number | null; pendingOutputs?: number; lastOutputError?: string | null }[];
}

export interface ReplayWire {
  id: string;
  topic: string;
  subscription: string;
  state?: string;
  progress?: number;
  total?: number;
  scanned?: number;
  sent?: number;
  eventsPerSecond?: number;
}

/** GET /v1/topics. */
export interface TopicsList {
  topics: {
    name: string;
    description?: string;
    partitionStats: { partition: number; head: number; first?: number; archived?: ArchivedWire | null }[];
  }[];
}

/** An item of GET /v1/subscriptions, and GET /v1/subscriptions/{name}. */
export interface SubscriptionWire {
  name: string;
  topic: string;
  kind: string;
  description?: string;
  target?: { url?: string; queue?: string } | null;
  counts?: { handled?: number; retried?: number; deadLettered?: number };
  dlqDepth?: number;
  circuit?: CircuitWire;
  lag?: number;
  filter?: unknown;
  ordering?: string;
  maxRetries?: number;
  partitions?: { partition: number; head?: number; routed?: number; checkpoint?: number; lag?: number; outbox?: number }[];
}

export interface SubscriptionsList {
  subscriptions: SubscriptionWire[];
}

/** A CloudEvent as the read API returns it (with its partition and sequence). */
export interface EventWire {
  id?: string;
  type?: string;
  source?: string;
  subject?: string;
  time?: string;
  receivedtime?: string;
  traceparent?: string;
  sequence?: number | string;
}

/** GET /v1/topics/{topic}/partitions/{partition}/events. */
export interface EventsPage {
  events?: EventWire[];
  first?: number;
  head?: number;
  hasMore?: boolean;
  next?: { from: number } | null;
}

/** GET /v1/subscriptions/{name}/dlq. */
export interface DlqPage {
  total?: number;
  deadLetters?: {
    id: string;
    topic: string;
    partition: number;
    sequence: number;
    reason?: string;
    error?: string | null;
    attempts?: number;
    deadLetteredAt?: string;
  }[];
  next?: unknown;
}

/** POST /v1/subscriptions/{name}/dlq/redrive. */
export interface RedriveResult {
  redriven?: number;
  remaining?: number;
  skipped?: unknown[];
}
