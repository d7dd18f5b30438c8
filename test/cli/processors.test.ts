import { describe, expect, inject, it } from "vitest";
import { cli } from "./helpers";

/**
 * `eventline processors …` against the local stack (test/cli/stack.ts): list, show, late, reset
 * with its confirmation and progress, with orders flowing through the demo `revenue-per-minute`.
 * Event times are half an hour ahead of now (within the processor's watermark.maxAhead of 1 h), so
 * events other files published (at now) never hold these windows open; those become late events
 * of the processor instead, hence the filtering by id.
 */

const base = Math.floor((Date.now() + 1_800_000) / 60_000) * 60_000;
const iso = (ms: number) => new Date(ms).toISOString();
const run = Date.now().toString(36);
const CURRENCIES = ["EUR", "USD", "GBP", "JPY", "CHF", "SEK", "NOK", "DKK"];

function paid(id: string, currency: string, amount: number, time: number) {
  return {
    specversion: "1.0",
    id: `cli-${run}-${id}`,
    source: "/test/cli",
    type: "orders.paid",
    time: iso(time),
    data: { orderId: `cli-${run}-${id}`, amount, currency },
  };
}

async function post(events: unknown[]): Promise<void> {
  const res = await fetch(`${inject("eventlineUrl")}/v1/topics/orders/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${inject("eventlineToken")}`, "content-type": "application/cloudevents-batch+json" },
    body: JSON.stringify(events),
  });
  expect(res.status, await res.clone().text()).toBe(202);
}

interface Partition {
  partition: number;
  applied: number;
  head: number;
  catchingUp: boolean;
  pendingOutputs: number;
}
interface View {
  results: number;
  lateEvents: number;
  partitions: Partition[];
}

async function showJson(): Promise<View> {
  const res = await cli(["processors", "show", "revenue-per-minute", "--json"]);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as View;
}

async function until<T>(read: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (done(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Results of this file's minute in orders-revenue (both partitions), by id. */
async function results(): Promise<string[]> {
  const ids: string[] = [];
  for (const p of [0, 1]) {
    const res = await cli(["tail", "orders-revenue", "--partition", String(p), "--from", "1", "--json"]);
    expect(res.code, res.stderr).toBe(0);
    for (const line of res.stdout.split("\n").filter((l) => l.trim() !== "")) {
      const e = JSON.parse(line) as { id: string; data: { windowStart: string } };
      if (e.data.windowStart === iso(base)) ids.push(e.id);
    }
  }
  return ids.sort();
}

describe("eventline processors", () => {
  it("--help of the group lists its four commands", async () => {
    const help = await cli(["processors", "--help"]);
    expect(help.code).toBe(0);
    for (const line of ["processors list ", "processors show <name> ", "processors reset <name> ", "processors late <name> "]) {
      expect(help.stdout).toContain(`  ${line}`);
    }
  });

  it("list prints both demo processors; --json is the API's body", async () => {
    const res = await cli(["processors", "list"]);
    expect(res.code, res.stderr).toBe(0);
    const lines = res.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^NAME\s+KIND\s+INPUT\s+OUTPUT\s+WATERMARK\s+LAG\s+OPEN\s+LATE\s+RESULTS$/);
    expect(lines[1]).toMatch(/^revenue-per-minute\s+aggregate\s+orders\s+orders-revenue\s/);
    expect(lines[2]).toMatch(/^unpaid-orders\s+pattern\s+orders\s+orders-alerts\s/);
    const json = JSON.parse((await cli(["processors", "list", "--json"])).stdout) as { processors: { name: string }[] };
    expect(json.processors.map((p) => p.name)).toEqual(["revenue-per-minute", "unpaid-orders"]);
  });

  it("show prints the declaration and a row per partition once results flow", { timeout: 120_000 }, async () => {
    await post([
      paid("a1", "EUR", 100, base + 1_000),
      paid("a2", "USD", 70, base + 2_000),
      ...CURRENCIES.map((c, i) => paid(`n${i}`, c, 1, base + 130_000)),
    ]);
    const ids = await until(results, (r) => r.length >= 2, 90_000);
    expect(ids).toHaveLength(2);
    const res = await cli(["processors", "show", "revenue-per-minute"]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain("revenue-per-minute (aggregate): Revenue per currency per minute");
    expect(res.stdout).toContain('input      orders, filter {"type":["orders.paid"]} (through processor.revenue-per-minute)');
    expect(res.stdout).toContain("window     tumbling 1m; count = count, sum = sum(/data/amount); emit final");
    expect(res.stdout).toContain("watermark  out-of-orderness 30s, idle timeout 10s, grace 30s");
    expect(res.stdout).toContain("output     orders-revenue and D1 processor_windows");
    expect(res.stdout).toMatch(
      /\nPARTITION\s+WATERMARK\s+APPLIED\s+HEAD\s+LAG\s+OPEN\s+KEYS\s+LATE\s+RESULTS\s+PENDING\s+INPUTS\s+STATE\n/,
    );
    const rows = res.stdout.split("\n").filter((l) => /^\s*\d+\s+\d{4}-|^\s*\d+\s+-\s/.test(l));
    expect(rows).toHaveLength(4);
    for (const row of rows) expect(row).toMatch(/\s4(, none idle| \(idle: [\d, ]+\))\s+(ok|catching up)$/);
  });

  it("late lists a late event with its key and event time, newest first; --json pages", { timeout: 60_000 }, async () => {
    await post([paid("late", "EUR", 5, base + 3_000)]);
    const eventId = `cli-${run}-late`;
    const page = await until(
      async () => JSON.parse((await cli(["processors", "late", "revenue-per-minute", "--json", "--limit", "500"])).stdout),
      (p: { deadLetters: { eventId: string }[] }) => p.deadLetters.some((d) => d.eventId === eventId),
    );
    expect(page.deadLetters.find((d: { eventId: string }) => d.eventId === eventId)).toMatchObject({
      reason: "late_event",
      topic: "orders",
    });
    const res = await cli(["processors", "late", "revenue-per-minute"]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^DEAD-LETTERED\s+POSITION\s+EVENT\s+REASON\s+KEY\s+EVENT TIME\s+ERROR\n/);
    const row = res.stdout.split("\n").find((l) => l.includes(eventId));
    expect(row).toMatch(
      new RegExp(`orders/\\d:\\d+\\s+${eventId}\\s+late_event\\s+EUR\\s+${iso(base + 3_000).replace(".000Z", "Z")}\\s+event time`),
    );
    expect(res.stdout).toMatch(/\n\d+ of \d+ dead letters\n$/);
  });

  it("reset refuses without --yes off a terminal (exit 2), changes nothing", async () => {
    const before = await showJson();
    const res = await cli(["processors", "reset", "revenue-per-minute"]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("a reset drops the processor's state: pass --yes to confirm when not on a terminal");
    const after = await showJson();
    expect(after.partitions.map((p) => p.applied)).toEqual(before.partitions.map((p) => p.applied));
  });

  it("reset --yes rebuilds with progress until every partition caught up; the results keep their ids", { timeout: 120_000 }, async () => {
    const before = await results();
    const res = await cli(["processors", "reset", "revenue-per-minute", "--yes"]);
    expect(res.code, res.stderr).toBe(0);
    const announced = /^processor revenue-per-minute reset on 4 partitions: rebuilding from ([\d,]+) input events\n/.exec(res.stderr);
    expect(announced, res.stderr).not.toBeNull();
    expect(Number(announced?.[1]?.replaceAll(",", ""))).toBeGreaterThan(0);
    // Each of the 4 instances reads the history again: the bar ends at all of it.
    expect(res.stderr).toMatch(/rebuilding: ([\d,]+)\/\1 input events read 100%/);
    expect(res.stdout).toMatch(
      /^processor revenue-per-minute rebuilt from \d+ input events in \d+:\d\d; lag \d+, open windows \d+, results \d+/,
    );
    const view = await showJson();
    for (const p of view.partitions) expect(p.catchingUp).toBe(false);
    const after = await until(
      async () => ({ ids: await results(), view: await showJson() }),
      (x) => x.view.partitions.every((p) => p.pendingOutputs === 0),
    );
    expect(after.view.partitions.map((p) => p.pendingOutputs)).toEqual([0, 0, 0, 0]);
    expect(after.ids).toEqual(before);
  });

  it("an unknown processor is exit 1 with the API's problem", async () => {
    for (const args of [["show"], ["late"], ["reset", "--yes"]]) {
      const [sub = "", ...rest] = args;
      const res = await cli(["processors", sub, "no-such-processor", ...rest]);
      expect(res.code).toBe(1);
      expect(res.stderr).toContain('processor "no-such-processor" does not exist; processors: revenue-per-minute, unpaid-orders');
    }
  });
});
