import { expect } from "vitest";
import { request } from "../helpers";

/** GET /v1/metrics as the metrics tests read it (metrics.test.ts, metrics-off.test.ts). */

export interface Latency {
  count: number;
  sum: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}
export interface PartitionJson {
  partition: number;
  head: number;
  appended: number;
  bytes: number;
  duplicates: number;
  appendLatency: Latency;
  recent: { seconds: number; appended: number; appendedPerSecond: number; appendLatency: Latency };
  archived: { first: number; last: number; segments: number; bytes: number } | null;
}
export interface SubscriptionJson {
  subscription: string;
  topic: string;
  kind: "worker" | "webhook";
  delivered: number;
  handled: number;
  retried: number;
  deadLettered: number;
  dlqDepth: number;
  circuit: "closed" | "open" | "half-open";
  errorRate: number;
  handlerLatency: Latency;
  endToEndLatency: Latency;
  lag: { partition: number; events: number; seconds: number | null }[];
  recent: {
    seconds: number;
    delivered: number;
    handled: number;
    retried: number;
    deadLettered: number;
    errorRate: number;
    handledPerSecond: number;
    handlerLatency: Latency;
    endToEndLatency: Latency;
  };
}
export interface RecentTotalsJson {
  windowSeconds: number;
  appendedPerSecond: number;
  handledPerSecond: number;
  errorRate: number;
  latency: { kind: "end-to-end" | "append"; p50: number; p99: number } | null;
}
export interface ReplayJson {
  id: string;
  topic: string;
  subscription: string;
  state: string;
  sent: number;
  scanned: number;
  eventsPerSecond: number;
  progress: number | null;
}
export interface MetricsJson {
  generatedAt: string;
  topics: { topic: string; partitions: PartitionJson[]; rejects: Record<string, number>; internal: boolean }[];
  subscriptions: SubscriptionJson[];
  replays: ReplayJson[];
  recent: RecentTotalsJson;
  encryption?: { rotation: Record<string, unknown> } & Record<string, unknown>;
}
export interface HealthJson {
  status: "ok" | "degraded" | "failing";
  checks: (({ subscription: string } | { processor: string }) & { status: string; reasons: string[] })[];
  reasons: string[];
}

/** The names of a health answer's subscription checks, or of its processor checks, in order. */
export const checkNames = (h: HealthJson, kind: "subscription" | "processor") =>
  h.checks.flatMap((c) =>
    "subscription" in c ? (kind === "subscription" ? [c.subscription] : []) : kind === "processor" ? [c.processor] : [],
  );

export async function metrics(): Promise<MetricsJson> {
  const res = await request("/v1/metrics");
  const text = await res.text();
  expect(res.status, text).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  return JSON.parse(text) as MetricsJson;
}
export const topicOf = (m: MetricsJson, name: string) => {
  const t = m.topics.find((x) => x.topic === name);
  if (t === undefined) throw new Error(`no topic ${name} in the metrics`);
  return t;
};
export const subOf = (m: MetricsJson, name: string) => {
  const s = m.subscriptions.find((x) => x.subscription === name);
  if (s === undefined) throw new Error(`no subscription ${name} in the metrics`);
  return s;
};
