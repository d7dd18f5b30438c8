import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { appendPrepared } from "../../durable-objects/processor/append";
import config from "../../eventline.config";
import type { CloudEvent } from "../../shared/cloudevents";
import { configSource } from "../../workers/platform/ingest/data-schema";
import { prepareEvents } from "../../workers/platform/ingest/parse";
import { expectAccepted, postBatch, request, type StoredEvent, waitFor } from "../helpers";
import { expectAudit } from "../security/helpers";
import { CURRENCIES, iso, json, minute, paid, topicEvents, view } from "./fixtures";

/**
 * POST /v1/processors/{name}/reset: every instance drops its state and rebuilds it from the input
 * topic's history (ADR 0058); the results come back under the same ids, so the output topic holds
 * each once.
 */

const t0 = minute(0);
const ids = (list: StoredEvent[]) => list.map((e) => e.id).sort();

interface Reset {
  processor: string;
  state: string;
  instances: { partition: number; rebuildThrough: number; inputThrough: number[] }[];
  events: number;
  status: string;
}

describe("processor reset", () => {
  it("resets every instance, rebuilds to the same results (same ids, none twice), audited", { timeout: 120_000 }, async () => {
    await expectAccepted(
      await postBatch("orders", [
        paid("r1", "EUR", 100, t0 + 1_000),
        paid("r2", "USD", 70, t0 + 2_000),
        paid("r3", "EUR", 5, t0 + 40_000),
        ...CURRENCIES.map((c, i) => paid(`next${i}`, c, 1, minute(2) + 10_000)),
      ]),
    );
    const before = await waitFor(
      () => topicEvents("orders-revenue"),
      (list) => list.filter((e) => (e.data as { windowStart: string }).windowStart === iso(t0)).length >= 2,
      60_000,
    );
    expect(before.map((e) => e.subject).sort()).toEqual(["EUR", "USD"]);
    const settled = await waitFor(
      () => view("revenue-per-minute"),
      (v) => v.pendingOutputs === 0 && v.lag === 0 && v.results === 2,
    );
    expect(settled.results).toBe(2);
    // A late event before the reset: the rebuild meets it again at the same place in the internal topic.
    await expectAccepted(await postBatch("orders", [paid("r-late", "EUR", 999, t0 + 3_000)]));
    await waitFor(
      () => view("revenue-per-minute"),
      (v) => v.lateEvents === 1 && v.pendingOutputs === 0,
    );
    const rowsBefore = await env.DB.prepare(`SELECT key, window_start, revision, final, data FROM processor_windows ORDER BY key`).all();

    const res = await request("/v1/processors/revenue-per-minute/reset", { method: "POST" });
    const body = await json<Reset>(res, 202);
    expect(res.headers.get("location")).toBe("/v1/processors/revenue-per-minute");
    expect(body).toMatchObject({ processor: "revenue-per-minute", state: "rebuilding", status: "/v1/processors/revenue-per-minute" });
    expect(body.instances.map((i) => i.partition)).toEqual([0, 1, 2, 3]);
    // Each instance backfills the input topic through its heads at the reset (all 12 orders of this
    // file, the late one too), then continues its internal partition after its head then.
    const inputHeads = await Promise.all([0, 1, 2, 3].map(async (q) => (await env.PARTITION_LOG.getByName(`orders/${q}`).stats()).head));
    for (const i of body.instances) expect(i.inputThrough).toEqual(inputHeads);
    expect(body.events).toBe(12);
    const heads = await Promise.all(
      [0, 1, 2, 3].map(async (q) => (await env.PARTITION_LOG.getByName(`processor.revenue-per-minute/${q}`).stats()).head),
    );
    expect(body.instances.map((i) => i.rebuildThrough)).toEqual(heads);
    await expectAudit(res.headers.get("x-request-id") ?? "", {
      action: "processors.reset",
      outcome: "success",
      status: 202,
      resource: "processor:revenue-per-minute",
      details: { instances: 4, events: body.events },
    });

    // The rebuild: every partition applies through what it had, catches up, and hands its outputs on.
    const rebuilt = await waitFor(
      () => view("revenue-per-minute"),
      (v) =>
        v.partitions.every(
          (p) =>
            p.backfill === null &&
            p.applied >= (body.instances[p.partition]?.rebuildThrough ?? 0) &&
            !p.catchingUp &&
            p.pendingOutputs === 0,
        ) && v.results === 2,
      60_000,
    );
    expect(rebuilt.results).toBe(2);
    // All 12 paid events were applied again by the rebuilt instances.
    expect(rebuilt.partitions.reduce((n, p) => n + p.inputsApplied, 0)).toBe(12);
    expect(rebuilt.openWindows).toBe(CURRENCIES.length);
    for (const p of rebuilt.partitions) expect(p.lastOutputError).toBeNull();
    // Whether the rebuild finds the late event late again depends on processing time (idle timeouts), which
    // a rebuild does not replay; either way the result appended first stands, in the topic and in D1.
    const letters = await json<{ total: number }>(await request("/v1/processors/revenue-per-minute/dead-letters"), 200);
    expect(letters.total).toBe(1);

    // Same ids, each once: the re-appended results were duplicates of the ones already there.
    const after = await topicEvents("orders-revenue");
    expect(ids(after)).toEqual(ids(before));
    expect(new Set(ids(after)).size).toBe(after.length);
    expect(after.find((e) => e.subject === "EUR")?.data).toEqual({
      key: "EUR",
      windowStart: iso(t0),
      windowEnd: iso(minute(1)),
      count: 2,
      sum: 105,
    });
    const rowsAfter = await env.DB.prepare(`SELECT key, window_start, revision, final, data FROM processor_windows ORDER BY key`).all();
    expect(rowsAfter.results).toEqual(rowsBefore.results);

    // The processor keeps working after its rebuild: minute 2 closes when minute 4 arrives.
    await expectAccepted(
      await postBatch(
        "orders",
        CURRENCIES.map((c, i) => paid(`later${i}`, c, 1, minute(4) + 10_000)),
      ),
    );
    const more = await waitFor(
      () => topicEvents("orders-revenue"),
      (list) => list.length >= 2 + CURRENCIES.length,
      60_000,
    );
    expect(more.length).toBe(2 + CURRENCIES.length);
    expect(new Set(ids(more)).size).toBe(more.length);
  });

  it("keeps a result already appended under its id when the recomputed one differs; the instance goes on", {
    timeout: 90_000,
  }, async () => {
    // What a rebuild meets when processing time closed a window differently the first time: the id is taken, with other content.
    const start = minute(20);
    const id = `revenue-per-minute:GBP:${start}:final`;
    const stored = {
      specversion: "1.0",
      id,
      source: "/eventline/processors/revenue-per-minute",
      type: "eventline.processor.revenue-per-minute.window.final",
      subject: "GBP",
      datacontenttype: "application/json",
      data: { key: "GBP", windowStart: iso(start), windowEnd: iso(minute(21)), count: 99, sum: 9_999 },
    } as unknown as CloudEvent;
    const topic = config.topics.find((t) => t.name === "orders-revenue");
    if (topic === undefined) throw new Error("no orders-revenue topic");
    const prepared = await prepareEvents([stored], topic, config, {
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      batch: true,
      schemas: configSource(topic, undefined),
    });
    await appendPrepared(env, topic.name, prepared);

    await expectAccepted(
      await postBatch("orders", [
        paid("g1", "GBP", 40, start + 1_000),
        ...CURRENCIES.map((c, i) => paid(`m22-${i}`, c, 1, minute(22) + 10_000)),
      ]),
    );
    // The instance hands its outputs on (the conflicting result dropped), with no error left.
    const settled = await waitFor(
      () => view("revenue-per-minute"),
      (v) => v.lag === 0 && v.pendingOutputs === 0 && v.openWindows === CURRENCIES.length,
      60_000,
    );
    expect(settled.pendingOutputs).toBe(0);
    for (const p of settled.partitions) expect(p.lastOutputError).toBeNull();
    const gbp = (await topicEvents("orders-revenue")).filter((e) => e.id === id);
    expect(gbp.map((e) => e.data)).toEqual([stored.data]);
    // D1 agrees with the topic: the recomputed row was not upserted.
    const row = await env.DB.prepare("SELECT data FROM processor_windows WHERE key = 'GBP' AND window_start = ?").bind(start).first();
    expect(row).toBeNull();
  });
});
