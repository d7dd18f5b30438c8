import { env, exports } from "cloudflare:workers";
import { expect } from "vitest";
import config from "../eventline.config";
import { partitionName } from "../sdk/partition-name";
import { partitionFor } from "../shared/partitioner";

export const BASE = "http://eventline.test";
export const STRUCTURED = "application/cloudevents+json";
export const BATCH = "application/cloudevents-batch+json";

export function event(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { specversion: "1.0", id: crypto.randomUUID(), source: "/tests", type: "test.created", data: { ok: true }, ...overrides };
}

/** The test stack's bootstrap admin key (vitest.config.ts); `request` sends it unless told otherwise. */
export const ADMIN_KEY: string = env.EVENTLINE_ADMIN_KEY;

/** A request to the platform Worker, as the admin unless `init.headers` carries its own Authorization. */
export function request(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (!headers.has("authorization")) headers.set("authorization", `Bearer ${ADMIN_KEY}`);
  return exports.default.fetch(`${BASE}${path}`, { ...init, headers });
}

/** A request with no credentials at all. */
export function anonymousRequest(path: string, init: RequestInit = {}): Promise<Response> {
  return exports.default.fetch(`${BASE}${path}`, init);
}

/** A request sent with `token` as its bearer credential. */
export function requestAs(token: string, path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${token}`);
  return exports.default.fetch(`${BASE}${path}`, { ...init, headers });
}

export function postStructured(topic: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return request(`/v1/topics/${topic}/events`, {
    method: "POST",
    headers: { "content-type": STRUCTURED, ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

export function postBatch(topic: string, events: unknown[], headers: Record<string, string> = {}): Promise<Response> {
  return request(`/v1/topics/${topic}/events`, {
    method: "POST",
    headers: { "content-type": BATCH, ...headers },
    body: JSON.stringify(events),
  });
}

export interface Ack {
  id: string;
  partition: number;
  sequence: number;
  duplicate: boolean;
  streamVersion?: number;
}

export async function expectAccepted(res: Response): Promise<Ack[]> {
  const text = await res.text();
  expect(res.status, text).toBe(202);
  const body = JSON.parse(text) as { events: Ack[] };
  return body.events;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  requestId: string;
  issues?: { path: string; message: string }[];
  events?: Record<string, unknown>[];
}

export async function expectProblem(res: Response, status: number): Promise<Problem> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  const body = JSON.parse(text) as Problem;
  expect(body.status).toBe(status);
  expect(body.type).toMatch(/^https:\/\/eventline\.dev\/problems\//);
  expect(body.title.length).toBeGreaterThan(0);
  expect(body.detail.length).toBeGreaterThan(0);
  expect(body.requestId).toBe(res.headers.get("x-request-id"));
  return body;
}

/** Head sequence of every partition of every topic, read through the public API. */
export async function allHeads(): Promise<Record<string, number[]>> {
  const res = await request("/v1/topics");
  expect(res.status).toBe(200);
  const body = (await res.json()) as { topics: { name: string; partitionStats: { head: number; count: number }[] }[] };
  return Object.fromEntries(body.topics.map((t) => [t.name, t.partitionStats.map((p) => p.head)]));
}

export interface StoredEvent extends Record<string, unknown> {
  id: string;
  partition: number;
  sequence: string;
  traceparent: string;
}

/** Every event of one partition, following the cursor. */
export async function readAll(topic: string, partition: number, limit = 1000): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  let href = `/v1/topics/${topic}/partitions/${partition}/events?from=1&limit=${limit}`;
  for (;;) {
    const res = await request(href);
    expect(res.status).toBe(200);
    const page = (await res.json()) as { events: StoredEvent[]; next: { href: string }; hasMore: boolean };
    out.push(...page.events);
    if (!page.hasMore) return out;
    href = page.next.href;
  }
}

export const topicConfig = (name: string) => {
  const t = config.topics.find((x) => x.name === name);
  if (t === undefined) throw new Error(`no topic ${name}`);
  return t;
};

/** Polls `read` until `done` holds or the time is up; returns the last value read (assert on it). */
export async function waitFor<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A partition key (`<salt>-<n>`) that places events in `partition`, so a test can own a partition. */
export function partitionKeyFor(partition: number, partitions: number, salt: string): string {
  for (let i = 0; ; i++) {
    const key = `${salt}-${i}`;
    if (partitionFor({ id: key, partitionkey: key }, partitions) === partition) return key;
  }
}

/**
 * Waits until every subscription the partition routed events to has settled them (its checkpoint
 * reached the last sequence routed to it); returns those still behind (assert it is empty). Trimming
 * keeps events a subscription has not acknowledged, so tests that trim wait for this first.
 */
export async function allAcknowledged(topic: string, partition: number, timeoutMs = 20_000): Promise<string[]> {
  const behind = async () => {
    const { routed, outbox } = await env.PARTITION_LOG.getByName(partitionName(topic, partition)).stats();
    const lagging: string[] = [];
    for (const [subscription, last] of Object.entries(routed)) {
      // A processor's feed is acknowledged by its call: what it has not taken is still in the outbox.
      if (subscription.startsWith("processor:")) {
        if ((outbox[subscription] ?? 0) > 0) lagging.push(subscription);
        continue;
      }
      const row = await env.DB.prepare("SELECT sequence FROM checkpoints WHERE subscription = ? AND topic = ? AND partition = ?")
        .bind(subscription, topic, partition)
        .first<{ sequence: number }>();
      if ((row?.sequence ?? 0) < last) lagging.push(subscription);
    }
    return lagging;
  };
  return waitFor(behind, (lagging) => lagging.length === 0, timeoutMs);
}

/** A Content-Security-Policy header's directives, each name to its values (an absent header: none). */
export function cspDirectives(header: string | null): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const part of (header ?? "").split(";")) {
    const [name, ...values] = part.trim().split(/\s+/);
    if (name) map.set(name, values);
  }
  return map;
}
