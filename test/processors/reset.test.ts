import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { expectAudit } from "../security/helpers";
import { expectAccepted, postBatch, request, type StoredEvent, waitFor } from "../helpers";
import { CURRENCIES, iso, json, minute, paid, topicEvents, view } from "./fixtures";

/**
 * POST /v1/processors/{name}/reset: every instance drops its state and rebuilds it from its
 * internal topic; the results come back under the same ids, so the output topic holds each once.
 */

const t0 = minute(0);
const ids = (list: StoredEvent[]) => list.map((e) => e.id).sort();

interface Reset {
  processor: string;
  state: string;
  instances: { partition: number; rebuildThrough: number }[];
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
    const rowsBefore = await env.DB.prepare(`SELECT key, window_start, revision, final, data FROM processor_windows ORDER BY key`).all();

    const res = await request("/v1/processors/revenue-per-minute/reset", { method: "POST" });
    const body = await json<Reset>(res, 202);
    expect(res.headers.get("location")).toBe("/v1/processors/revenue-per-minute");
    expect(body).toMatchObject({ processor: "revenue-per-minute", state: "rebuilding", status: "/v1/processors/revenue-per-minute" });
    expect(body.instances.map((i) => i.partition)).toEqual([0, 1, 2, 3]);
    // Every paid event is in the internal topic: the rebuild reads all 11 again.
    expect(body.events).toBe(11);
    expect(body.instances.reduce((n, i) => n + i.rebuildThrough, 0)).toBe(11);
    await expectAudit(res.headers.get("x-request-id") ?? "", {
      action: "processors.reset",
      outcome: "success",
      status: 202,
      resource: "processor:revenue-per-minute",
      details: { instances: 4, events: 11 },
    });

    // The rebuild: every partition applies through what it had, catches up, and hands its outputs on.
    const rebuilt = await waitFor(
      () => view("revenue-per-minute"),
      (v) =>
        v.partitions.every(
          (p) => p.applied >= (body.instances[p.partition]?.rebuildThrough ?? 0) && !p.catchingUp && p.pendingOutputs === 0,
        ) && v.results === 2,
      60_000,
    );
    expect(rebuilt.results).toBe(2);
    expect(rebuilt.openWindows).toBe(CURRENCIES.length);
    for (const p of rebuilt.partitions) expect(p.lastOutputError).toBeNull();

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
});
