import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import shipped from "../../eventline.config";
import { defineConfig, type EventlineConfigInput, type HealthThresholds } from "../../shared/config";
import { PROMETHEUS_CONTENT_TYPE } from "../../shared/metrics";
import { parseGrants } from "../../shared/security/grants";
import type { Principal } from "../../workers/platform/auth/principal";
import { activityProjection } from "../../workers/platform/consumers/activity";
import { evaluateHealth } from "../../workers/platform/health";
import { collectMetrics } from "../../workers/platform/metrics-model";
import { testBindings } from "../bindings";
import {
  type Ack,
  ADMIN_KEY,
  anonymousRequest,
  event,
  expectAccepted,
  expectProblem,
  partitionKeyFor,
  postBatch,
  postStructured,
  request,
  STRUCTURED,
  waitFor,
} from "../helpers";
import { parseExposition } from "../prometheus";
import { testApp } from "../security/helpers";
import { checkNames, type HealthJson, metrics, subOf, topicOf } from "./metrics-helpers";

/**
 * A scripted run against the platform, then GET /v1/metrics (JSON and Prometheus) and
 * GET /v1/health compared with what the run is known to have done. The tests build on each other
 * (storage is per file, tests run in order).
 */

afterEach(() => vi.restoreAllMocks());

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const utf8 = new TextEncoder();

/** Stored bodies of a partition, exactly as the log holds them. */
const storedBodies = async (topic: string, partition: number) =>
  (await env.PARTITION_LOG.getByName(`${topic}/${partition}`).read(1, 1000)).events;

const KEYS = [0, 1, 2, 3].map((p) => partitionKeyFor(p, 4, "metrics"));
const mk = (p: number, i: number, over: Record<string, unknown> = {}) =>
  event({ id: `m-${p}-${i}`, type: "metrics.test", partitionkey: KEYS[p], data: { p, i, note: "héllo wörld 😀" }, ...over });
const POISON = "m-0-0";
const FLAKY = "m-1-0";

/** What the script did, per partition of `events`: successful append calls and duplicates. */
const truth = { calls: [0, 0, 0, 0], duplicates: [0, 0, 0, 0] };
function account(acks: Ack[]): Ack[] {
  for (const p of new Set(acks.map((a) => a.partition))) truth.calls[p] = (truth.calls[p] ?? 0) + 1;
  for (const a of acks) if (a.duplicate) truth.duplicates[a.partition] = (truth.duplicates[a.partition] ?? 0) + 1;
  return acks;
}

describe("GET /v1/metrics after a scripted run", () => {
  it("JSON equals the ground truth: appends, bytes, duplicates, rejects, consumer counts, DLQ, lag, archive, replays", async () => {
    const rejectsBefore = topicOf(await metrics(), "events").rejects;

    // Failures injected into the activity projection: one event always fails (3 retries, then
    // dead-lettered), one fails on its first delivery only.
    const original = activityProjection.statements.bind(activityProjection);
    let flakyFailed = false;
    vi.spyOn(activityProjection, "statements").mockImplementation((db, es) => {
      // A batch's set (handleBatch) fails whole if one of it would; each event then runs alone.
      if (es.length > 1 && es.some((e) => e.id === POISON || (e.id === FLAKY && !flakyFailed))) throw new Error("poison in the set");
      for (const e of es) {
        if (e.id === POISON) throw new Error("poison");
        if (e.id === FLAKY && !flakyFailed) {
          flakyFailed = true;
          throw new Error("transient");
        }
      }
      return original(db, es);
    });

    // 14 events over the four partitions (2, 3, 4, 5), one request: one append call per partition.
    const first = [0, 1, 2, 3].flatMap((p) => Array.from({ length: p + 2 }, (_, i) => mk(p, i)));
    account(await expectAccepted(await postBatch("events", first)));
    // Duplicates: two of partition 1, one of partition 3 beside a new event there, then one of partition 0.
    const again = account(await expectAccepted(await postBatch("events", [mk(1, 1), mk(1, 2), mk(3, 0), mk(3, 99)])));
    expect(again.map((a) => a.duplicate)).toEqual([true, true, true, false]);
    account(await expectAccepted(await postStructured("events", mk(0, 1))));
    // A backlog for `greetings` (nothing consumes its queue in the tests): 12 events in partition 2.
    const greetings = Array.from({ length: 12 }, (_, i) =>
      event({ id: `m-greet-${i}`, type: "com.example.greeting.hello", partitionkey: KEYS[2], data: { to: `n${i}` } }),
    );
    account(await expectAccepted(await postBatch("events", greetings)));

    // Rejects of known statuses; an unknown topic is not counted.
    await expectProblem(await postStructured("events", { specversion: "1.0", id: "no-source", type: "t" }), 400);
    await expectProblem(await postBatch("events", [mk(0, 50), { specversion: "1.0", id: "no-type", source: "/s" }]), 400);
    await expectProblem(
      await request("/v1/topics/events/events", { method: "POST", headers: { "content-type": "application/xml" }, body: "<x/>" }),
      415,
    );
    await expectProblem(await postStructured("events", mk(2, 0, { data: { changed: true } })), 409);
    await expectProblem(
      await anonymousRequest("/v1/topics/events/events", {
        method: "POST",
        headers: { "content-type": STRUCTURED },
        body: JSON.stringify(mk(0, 60)),
      }),
      401,
    );
    await expectProblem(await postStructured("nope", event()), 404);

    // Wait until activity has settled everything: lag 0 everywhere.
    const heads = (await metrics()).topics.find((t) => t.topic === "events")?.partitions.map((p) => p.head) ?? [];
    const stored = sum(heads);
    expect(stored).toBe(14 + 1 + 12);
    const m = await waitFor(
      metrics,
      (x) => {
        const a = subOf(x, "activity");
        return a.lag.every((l) => l.events === 0) && a.handled + a.deadLettered === stored;
      },
      90_000,
    );

    // Partitions: appended = head = events stored; bytes = their stored UTF-8 size; duplicates; append calls.
    const events = topicOf(m, "events");
    expect(events.partitions.map((p) => p.partition)).toEqual([0, 1, 2, 3]);
    for (const p of events.partitions) {
      const bodies = await storedBodies("events", p.partition);
      expect(p.head).toBe(bodies.length);
      expect(p.appended).toBe(bodies.length);
      expect(p.bytes).toBe(sum(bodies.map((b) => utf8.encode(b).byteLength)));
      expect(p.duplicates).toBe(truth.duplicates[p.partition]);
      expect(p.appendLatency.count).toBe(truth.calls[p.partition]);
      expect(p.appendLatency.sum).toBeGreaterThanOrEqual(0);
      expect(p.appendLatency.p50).not.toBeNull();
      expect(p.archived).toBeNull();
    }
    expect(events.partitions.map((p) => p.head)).toEqual([2, 3, 4 + 12, 5 + 1]);
    expect(events.partitions.map((p) => p.duplicates)).toEqual([1, 2, 0, 1]);
    expect(events.partitions.map((p) => p.appendLatency.count)).toEqual([2, 2, 2, 2]);

    // Rejects by status (this isolate's counts: the delta of this run).
    const delta = Object.fromEntries(
      Object.entries(events.rejects)
        .map(([status, n]) => [status, n - (rejectsBefore[status] ?? 0)])
        .filter(([, n]) => n !== 0),
    );
    expect(delta).toEqual({ 400: 2, 401: 1, 409: 1, 415: 1 });
    expect(m.topics.map((t) => t.topic)).not.toContain("nope");

    // activity: 26 handled, the flaky event retried once, the poison event retried 3× then dead-lettered.
    const activity = subOf(m, "activity");
    expect(activity).toMatchObject({
      topic: "events",
      kind: "worker",
      handled: stored - 1,
      retried: 1 + 3,
      deadLettered: 1,
      dlqDepth: 1,
      circuit: "closed",
    });
    // A run retried for its failing events brings its settled events back as duplicates (ADR 0030, runs).
    const redelivered = await env.DB.prepare("SELECT duplicates FROM subscription_stats WHERE subscription = 'activity'").first<{
      duplicates: number;
    }>();
    expect(activity.delivered).toBe(activity.handled + activity.retried + activity.deadLettered + (redelivered?.duplicates ?? 0));
    expect(activity.errorRate).toBeCloseTo(5 / activity.delivered, 12);
    // Every handler run is a handled, retried or dead-lettered delivery; every handled one was a live delivery.
    expect(activity.handlerLatency.count).toBe(activity.handled + activity.retried + activity.deadLettered);
    expect(activity.endToEndLatency.count).toBe(activity.handled);
    expect(activity.endToEndLatency.sum).toBeGreaterThan(0);
    expect(activity.endToEndLatency.p99).toBeGreaterThanOrEqual(activity.endToEndLatency.p50 ?? 0);
    expect(activity.lag).toEqual([0, 1, 2, 3].map((partition) => ({ partition, events: 0, seconds: 0, redelivered: 0, maxSends: 0 })));
    const status = (await (await request("/v1/subscriptions/activity")).json()) as { dlqDepth: number; counts: Record<string, number> };
    expect(status).toMatchObject({ dlqDepth: 1, counts: { handled: activity.handled, retried: 4, deadLettered: 1 } });

    // greetings: nothing consumed; its events are all in partition 2, so only there it lags, by the
    // 12 events routed to it (not the partition's other 4: ADR 0030), as old as the first of them.
    const greeting = subOf(m, "greetings");
    expect(greeting).toMatchObject({ handled: 0, retried: 0, deadLettered: 0, delivered: 0, dlqDepth: 0, errorRate: 0 });
    expect(greeting.lag.map((l) => l.events)).toEqual([0, 0, 12, 0]);
    const firstOfP2 = (await storedBodies("events", 2))
      .map((text) => JSON.parse(text) as { receivedtime: string; type: string })
      .find((e) => e.type.startsWith("com.example.greeting")) ?? { receivedtime: "" };
    expect(greeting.lag[2]?.seconds).toBeCloseTo((Date.parse(m.generatedAt) - Date.parse(firstOfP2.receivedtime)) / 1000, 3);
    expect(greeting.lag[2]?.seconds).toBeGreaterThan(0);
    expect([0, 1, 3].map((p) => greeting.lag[p]?.seconds)).toEqual([0, 0, 0]);
    expect(greeting.handlerLatency).toEqual({ count: 0, sum: 0, p50: null, p95: null, p99: null });

    // Archive: sealed on request; the metrics' range equals each partition's manifest.
    expect((await request("/v1/topics/events/archive", { method: "POST" })).status).toBe(200);
    const manifest = (await (await request("/v1/topics/events/archive")).json()) as {
      partitions: { partition: number; segments: { first: number; last: number; bytes: number }[] }[];
    };
    const archived = topicOf(await metrics(), "events").partitions;
    for (const { partition, segments } of manifest.partitions) {
      expect(segments.length).toBeGreaterThan(0);
      expect(archived[partition]?.archived).toEqual({
        first: segments[0]?.first,
        last: segments.at(-1)?.last,
        segments: segments.length,
        bytes: sum(segments.map((s) => s.bytes)),
      });
      expect(archived[partition]?.archived?.last).toBe(heads[partition]);
    }

    // A replay of partition 0 to activity: sent, scanned, rate and progress as the job reports
    // them; every replayed event is a duplicate to activity, so delivered grows by what was sent.
    const started = await request("/v1/replays", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ topic: "events", subscription: "activity", partitions: [0], from: { sequence: 1 } }),
    });
    expect(started.status).toBe(201);
    const { id } = (await started.json()) as { id: string };
    const done = await waitFor(
      async () =>
        (await (await request(`/v1/replays/${id}`)).json()) as { state: string; sent: number; scanned: number; eventsPerSecond: number },
      (v) => v.state === "done",
    );
    expect(done).toMatchObject({ state: "done", sent: 2, scanned: 2 });
    const after = await waitFor(metrics, (x) => subOf(x, "activity").delivered === activity.delivered + done.sent, 60_000);
    expect(after.replays.find((r) => r.id === id)).toEqual({
      id,
      topic: "events",
      subscription: "activity",
      state: "done",
      sent: done.sent,
      scanned: done.scanned,
      eventsPerSecond: done.eventsPerSecond,
      progress: 1,
    });
    const replayed = subOf(after, "activity");
    expect(replayed).toMatchObject({ handled: activity.handled, retried: activity.retried, deadLettered: activity.deadLettered });
    const duplicates = await env.DB.prepare(
      "SELECT duplicates, replay_duplicates FROM subscription_stats WHERE subscription = 'activity'",
    ).first();
    // The replay's copies, on top of the duplicates the live runs already had.
    expect(duplicates).toEqual({ duplicates: (redelivered?.duplicates ?? 0) + done.sent, replay_duplicates: done.sent });
    // Duplicates never reach the handler and are not end-to-end deliveries.
    expect(replayed.handlerLatency.count).toBe(activity.handlerLatency.count);
    expect(replayed.endToEndLatency.count).toBe(activity.endToEndLatency.count);

    // The wire format to its key order (JSON.stringify keeps it; the dashboard reads this document).
    const keys = (o: object | null | undefined) => Object.keys(o ?? {});
    const [part] = topicOf(after, "events").partitions;
    // `encryption` is there for global admins only (test/security/kek-rotation.test.ts checks who sees it).
    expect(keys(after)).toEqual(["generatedAt", "topics", "subscriptions", "replays", "processors", "recent", "encryption"]);
    expect(keys(after.encryption)).toEqual(["kek", "dataKeys", "rotationComplete", "rotation"]);
    expect(keys(after.encryption?.rotation)).toEqual([
      "state",
      "remaining",
      "rewrapped",
      "progress",
      "removable",
      "shards",
      "startedAt",
      "completedAt",
      "errors",
    ]);
    expect(keys(topicOf(after, "events"))).toEqual(["topic", "partitions", "rejects", "internal"]);
    expect(keys(part)).toEqual(["partition", "head", "appended", "bytes", "duplicates", "appendLatency", "archived", "recent"]);
    expect(keys(part?.appendLatency)).toEqual(["count", "sum", "p50", "p95", "p99"]);
    expect(keys(part?.archived)).toEqual(["first", "last", "segments", "bytes"]);
    expect(keys(replayed)).toEqual([
      "subscription",
      "topic",
      "kind",
      "delivered",
      "handled",
      "retried",
      "deadLettered",
      "dlqDepth",
      "circuit",
      "errorRate",
      "handlerLatency",
      "endToEndLatency",
      "lag",
      "recent",
    ]);
    expect(keys(replayed.endToEndLatency)).toEqual(["count", "sum", "p50", "p95", "p99"]);
    expect(keys(replayed.lag[0])).toEqual(["partition", "events", "seconds", "redelivered", "maxSends"]);
    expect(keys(after.replays[0])).toEqual(["id", "topic", "subscription", "state", "sent", "scanned", "eventsPerSecond", "progress"]);
  }, 180_000);

  it("Prometheus text: parsed by the standard parser, HELP/TYPE on every family, no duplicate series, values equal the JSON", async () => {
    const json = await metrics();
    const res = await request("/v1/metrics", { headers: { accept: "text/plain; version=0.0.4" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe(PROMETHEUS_CONTENT_TYPE);
    const text = await res.text();
    const later = Date.parse((await metrics()).generatedAt);
    const plain = await request("/v1/metrics", { headers: { accept: "text/plain" } });
    expect(plain.headers.get("content-type")).toBe(PROMETHEUS_CONTENT_TYPE);
    await plain.body?.cancel();

    const prom = parseExposition(text);
    const types = Object.fromEntries(prom.families.map((f) => [f.name, f.type]));
    expect(types).toMatchObject({
      eventline_events_appended_total: "COUNTER",
      eventline_event_bytes_total: "COUNTER",
      eventline_duplicates_total: "COUNTER",
      eventline_append_duration_seconds: "HISTOGRAM",
      eventline_archive_segments_total: "COUNTER",
      eventline_archive_bytes_total: "COUNTER",
      eventline_archived_sequence: "GAUGE",
      eventline_rejects_total: "COUNTER",
      eventline_subscription_delivered_total: "COUNTER",
      eventline_subscription_handled_total: "COUNTER",
      eventline_subscription_retried_total: "COUNTER",
      eventline_subscription_dead_lettered_total: "COUNTER",
      eventline_dlq_depth: "GAUGE",
      eventline_circuit_open: "GAUGE",
      eventline_circuit_state: "GAUGE",
      eventline_subscription_error_ratio: "GAUGE",
      eventline_subscription_recent_error_ratio: "GAUGE",
      eventline_metrics_window_seconds: "GAUGE",
      eventline_handler_duration_seconds: "HISTOGRAM",
      eventline_end_to_end_latency_seconds: "HISTOGRAM",
      eventline_subscription_lag_events: "GAUGE",
      eventline_subscription_lag_seconds: "GAUGE",
      eventline_replay_events_sent_total: "COUNTER",
      eventline_replay_events_scanned_total: "COUNTER",
      eventline_replay_events_per_second: "GAUGE",
      eventline_replay_progress_ratio: "GAUGE",
    });
    for (const name of Object.keys(types)) expect(name).toMatch(/^eventline_[a-z0-9_]+$/);

    const histogram = (family: string, labels: Record<string, string>) =>
      prom.histograms.get(family)?.find((h) => JSON.stringify(h.labels) === JSON.stringify(labels));
    let compared = 0;
    const same = (name: string, labels: Record<string, string>, expected: number) => {
      expect(prom.value(name, labels), `${name} ${JSON.stringify(labels)}`).toBe(expected);
      compared++;
    };
    for (const t of json.topics) {
      for (const p of t.partitions) {
        const labels = { topic: t.topic, partition: String(p.partition) };
        same("eventline_events_appended_total", labels, p.appended);
        same("eventline_event_bytes_total", labels, p.bytes);
        same("eventline_duplicates_total", labels, p.duplicates);
        same("eventline_archive_segments_total", labels, p.archived?.segments ?? 0);
        same("eventline_archive_bytes_total", labels, p.archived?.bytes ?? 0);
        same("eventline_archived_sequence", labels, p.archived?.last ?? 0);
        expect(histogram("eventline_append_duration_seconds", labels)).toMatchObject({
          count: p.appendLatency.count,
          sum: p.appendLatency.sum,
        });
      }
      for (const [status, n] of Object.entries(t.rejects)) same("eventline_rejects_total", { topic: t.topic, status }, n);
    }
    expect(Object.keys(topicOf(json, "events").rejects).length).toBeGreaterThan(0);
    for (const s of json.subscriptions) {
      const labels = { subscription: s.subscription };
      same("eventline_subscription_delivered_total", labels, s.delivered);
      same("eventline_subscription_handled_total", labels, s.handled);
      same("eventline_subscription_retried_total", labels, s.retried);
      same("eventline_subscription_dead_lettered_total", labels, s.deadLettered);
      same("eventline_dlq_depth", labels, s.dlqDepth);
      same("eventline_subscription_error_ratio", labels, s.errorRate);
      same("eventline_subscription_recent_error_ratio", labels, s.recent.errorRate);
      same("eventline_circuit_open", labels, s.circuit === "open" ? 1 : 0);
      same("eventline_circuit_state", { ...labels, state: s.circuit }, 1);
      expect(histogram("eventline_handler_duration_seconds", labels)).toMatchObject({
        count: s.handlerLatency.count,
        sum: s.handlerLatency.sum,
      });
      expect(histogram("eventline_end_to_end_latency_seconds", labels)).toMatchObject({
        count: s.endToEndLatency.count,
        sum: s.endToEndLatency.sum,
      });
      for (const l of s.lag) {
        const lagLabels = { subscription: s.subscription, topic: s.topic, partition: String(l.partition) };
        same("eventline_subscription_lag_events", lagLabels, l.events);
        // A backlog ages between the two reads.
        const seconds = prom.value("eventline_subscription_lag_seconds", lagLabels) ?? Number.NaN;
        expect(seconds).toBeGreaterThanOrEqual(l.seconds ?? 0);
        expect(seconds).toBeLessThanOrEqual((l.seconds ?? 0) + (later - Date.parse(json.generatedAt)) / 1000 + 0.001);
      }
    }
    expect(subOf(json, "activity").handlerLatency.count).toBeGreaterThan(0);
    for (const r of json.replays) {
      same("eventline_replay_events_sent_total", { replay: r.id, subscription: r.subscription }, r.sent);
      same("eventline_replay_events_scanned_total", { replay: r.id, subscription: r.subscription }, r.scanned);
      same("eventline_replay_events_per_second", { replay: r.id }, r.eventsPerSecond);
      same("eventline_replay_progress_ratio", { replay: r.id }, r.progress ?? Number.NaN);
    }
    expect(json.replays).toHaveLength(1);
    expect(compared).toBeGreaterThan(100);
  });
});

describe("GET /v1/health", () => {
  type Thresholds = Partial<HealthThresholds>;
  /** The shipped config with some subscriptions' health thresholds replaced. */
  const withHealth = (health: Record<string, Thresholds>) =>
    defineConfig({
      ...(shipped as EventlineConfigInput),
      subscriptions: shipped.subscriptions.map((s) =>
        health[s.name] === undefined ? s : { ...s, health: { ...s.health, ...health[s.name] } },
      ),
    });
  const health = async (thresholds: Record<string, Thresholds>): Promise<[number, HealthJson]> => {
    const res = await testApp(withHealth(thresholds)).call("/v1/health", { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    return [res.status, (await res.json()) as HealthJson];
  };
  // The backlog of the run above: greetings lags 12 events, long enough to matter only by count.
  const calm = { activity: { maxErrorRate: 0.9 }, greetings: { maxLagEvents: 12, maxLagSeconds: 86_400 } };

  it("ok → degraded (a backlog over a low threshold) → failing (10× over it) → failing (a circuit open)", async () => {
    expect(subOf(await metrics(), "greetings").lag.map((l) => l.events)).toEqual([0, 0, 12, 0]);

    const [okStatus, ok] = await health(calm);
    expect(okStatus).toBe(200);
    expect(ok.status).toBe("ok");
    expect(ok.reasons).toEqual([]);
    expect(checkNames(ok, "subscription").sort()).toEqual(["activity", "customer-summary", "greetings", "orders-view"]);
    expect(checkNames(ok, "processor")).toEqual(["revenue-per-minute", "unpaid-orders"]);
    expect(ok.checks.every((c) => c.status === "ok" && c.reasons.length === 0)).toBe(true);

    const [degradedStatus, degraded] = await health({ ...calm, greetings: { ...calm.greetings, maxLagEvents: 5 } });
    expect(degradedStatus).toBe(200);
    expect(degraded).toMatchObject({ status: "degraded", reasons: ["subscription greetings lag 12 events > 5"] });
    expect(degraded.checks.find((c) => "subscription" in c && c.subscription === "greetings")).toEqual({
      subscription: "greetings",
      status: "degraded",
      reasons: ["subscription greetings lag 12 events > 5"],
    });

    const [tenfoldStatus, tenfold] = await health({ ...calm, greetings: { ...calm.greetings, maxLagEvents: 1 } });
    expect(tenfoldStatus).toBe(503);
    expect(tenfold).toMatchObject({ status: "failing", reasons: ["subscription greetings lag 12 events > 1 (over 10× the threshold)"] });

    // A webhook whose receiver fails every delivery: five failures in a row open its circuit.
    const sink = testBindings.WEBHOOK_SINK;
    await fetch(`${sink}/control/metrics-hook?status=500`, { method: "POST" });
    const created = await request("/v1/subscriptions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        name: "metrics-hook",
        topic: "events",
        filter: { type: ["metrics.hook"] },
        maxRetries: 0,
        webhook: { url: `${sink}/hooks/metrics-hook` },
      }),
    });
    expect(created.status).toBe(201);
    await expectAccepted(
      await postBatch(
        "events",
        Array.from({ length: 5 }, (_, i) => event({ id: `hook-${i}`, type: "metrics.hook" })),
      ),
    );
    // The circuit opens at the fifth failure; that failure's dead letter is counted in its own write
    // just after, so wait for both.
    const open = await waitFor(
      metrics,
      (x) => {
        const hook = x.subscriptions.find((s) => s.subscription === "metrics-hook");
        return hook?.circuit === "open" && hook.deadLettered === 5 && hook.dlqDepth === 5;
      },
      60_000,
    );
    expect(subOf(open, "metrics-hook")).toMatchObject({ kind: "webhook", circuit: "open", deadLettered: 5, dlqDepth: 5, errorRate: 1 });

    const [failingStatus, failing] = await health(calm);
    expect(failingStatus).toBe(503);
    expect(failing.status).toBe("failing");
    expect(failing.checks.find((c) => "subscription" in c && c.subscription === "metrics-hook")).toEqual({
      subscription: "metrics-hook",
      status: "failing",
      reasons: ["subscription metrics-hook circuit is open", "subscription metrics-hook error rate 1 > 0.1 over the last 300 s"],
    });
    expect(failing.reasons).toContain("subscription metrics-hook circuit is open");
    // Health collects less (no DLQ depths or replays) and judges the same.
    const config = withHealth(calm);
    const admin: Principal = { id: "admin", kind: "admin-key", grants: parseGrants(config.security.adminGrants).grants };
    const full = await collectMetrics(env, config, admin);
    const light = await collectMetrics(env, config, admin, "health");
    const hook = (m: typeof full) => m.subscriptions.find((s) => s.subscription === "metrics-hook");
    expect([full.replays.length, hook(full)?.dlqDepth, hook(full)?.handlerLatency.count]).toEqual([1, 5, 5]);
    expect([light.replays.length, hook(light)?.dlqDepth, hook(light)?.handlerLatency.count]).toEqual([0, 0, 5]);
    expect(evaluateHealth(light, config)).toEqual(evaluateHealth(full, config));
    expect(evaluateHealth(light, config)).toEqual(failing);
    // The platform's own app (shipped thresholds) says the same.
    const shippedHealth = await request("/v1/health");
    expect(shippedHealth.status).toBe(503);
    expect(((await shippedHealth.json()) as HealthJson).status).toBe("failing");
  }, 90_000);

  it("needs a credential (it is not the public liveness check)", async () => {
    await expectProblem(await anonymousRequest("/v1/health"), 401);
    await expectProblem(await anonymousRequest("/v1/metrics"), 401);
    await expectProblem(await request("/v1/metrics", { method: "POST" }), 405);
  });
});
