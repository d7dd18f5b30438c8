import { randomUUID } from "node:crypto";
import type { Browser, Page, Request } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { partitionFor } from "../../shared/partitioner";
import { launchChromium } from "./chromium";

/**
 * The dashboard's topic view following a partition live (issue 19; ADR 0046): new events appear
 * as they are committed, read from GET …/partitions/{p}/stream with live=sse (a fetch with the
 * bearer key, body read as a stream), never by paging the events route; pausing and leaving the
 * view abort the stream request; a dropped connection is resumed without duplicates; the table
 * keeps at most the number of rows its live status names (data-max-rows). Runs against the shared stack of test/cli/stack.ts, writing
 * only to partition 1 of "events" (test/cli/replay.test.ts owns partition 3).
 */

const BASE = inject("eventlineUrl");
const TOKEN = inject("eventlineToken");
const BATCH = "application/cloudevents-batch+json";
const run = randomUUID().slice(0, 8);
const TYPE = `dashboard.live.${run}`;
const PARTITION = 1;

function keyFor(prefix: string, partition: number): string {
  for (let i = 0; ; i++) if (partitionFor({ id: `${prefix}-${i}` }, 4) === partition) return `${prefix}-${i}`;
}
const KEY = keyFor(`live-${run}`, PARTITION);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(check: () => Promise<T> | T, what: string, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Publishes `count` events to PARTITION of "events" in one batch; returns their sequences. */
async function publish(count: number, label: string): Promise<number[]> {
  const events = Array.from({ length: count }, (_, i) => ({
    specversion: "1.0",
    id: randomUUID(),
    source: "/dashboard-live-test",
    type: `${TYPE}.${label}`,
    subject: KEY,
    data: { i },
  }));
  const res = await fetch(`${BASE}/v1/topics/events/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": BATCH },
    body: JSON.stringify(events),
  });
  const text = await res.text();
  expect(res.status, text).toBe(202);
  const acks = (JSON.parse(text) as { events: { partition: number; sequence: number }[] }).events;
  expect(new Set(acks.map((a) => a.partition))).toEqual(new Set([PARTITION]));
  return acks.map((a) => a.sequence);
}

/** The sequence a partition stream offset names (ADR 0046: `0000000000000000_<sequence, 16 digits>`). */
function sequenceOf(offset: string): number {
  const m = /^0{16}_(\d{16})$/.exec(offset);
  if (!m) throw new Error(`not a partition offset: ${offset}`);
  return Number(m[1]);
}

const isStream = (url: string) => new RegExp(`/v1/topics/events/partitions/${PARTITION}/stream\\?`).test(url);
const isPaging = (url: string) => /\/v1\/topics\/[^/]+\/partitions\/\d+\/events(\?|$)/.test(url);

describe("dashboard topic view, followed live", () => {
  let browser: Browser;
  let page: Page;
  const requests: Request[] = [];
  const aborted: Request[] = [];
  const problems: string[] = [];

  const rowSequences = () => page.$$eval("#detail-body tbody tr", (rows) => rows.map((r) => Number(r.getAttribute("data-sequence"))));
  const liveStatus = () => page.locator("#live-status").getAttribute("data-live");
  /** Every sequence appears exactly once, ascending, and `expected` are all there. */
  async function expectRows(expected: number[]) {
    const seqs = await until(
      async () => {
        const s = await rowSequences();
        return expected.every((q) => s.includes(q)) ? s : null;
      },
      `rows ${expected[0]}…${expected.at(-1)} on the page`,
    );
    expect(new Set(seqs).size, "no duplicate rows").toBe(seqs.length);
    expect(seqs, "rows in sequence order").toEqual([...seqs].sort((a, b) => a - b));
    return seqs;
  }

  beforeAll(async () => {
    ({ browser } = await launchChromium());
    page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    page.setDefaultTimeout(15_000);
    page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
    page.on("console", (msg) => {
      if (msg.type() === "error" && !/^Failed to load resource/.test(msg.text())) problems.push(`console error: ${msg.text()}`);
    });
    page.on("request", (req) => requests.push(req));
    page.on("requestfailed", (req) => aborted.push(req));
    await publish(3, "before"); // the partition has a tail to start from
    await page.goto(`${BASE}/dashboard`);
    await page.getByLabel("API key or token").fill(TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Event flow" }).waitFor();
  });

  afterEach(() => {
    expect(problems).toEqual([]);
  });

  afterAll(async () => {
    await browser?.close();
  });

  it("the latest page follows: published events appear in order, from the stream only", async () => {
    await page.evaluate(`location.hash = "#/topic/events/${PARTITION}"`);
    await page.getByRole("heading", { name: "Topic events" }).waitFor();
    await until(async () => (await liveStatus()) === "live", "the live status");
    expect(await page.getByRole("button", { name: "Stop following" }).getAttribute("aria-pressed")).toBe("true");
    const mark = requests.length;

    const published: number[] = [];
    for (const label of ["a", "b", "c"]) {
      published.push(...(await publish(4, label)));
      await sleep(150);
    }
    const started = Date.now();
    await expectRows(published);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await page.locator(`#detail-body tr[data-sequence="${published.at(-1)}"]`).textContent()).toContain(`${TYPE}.c`);

    const since = requests.slice(mark).map((r) => r.url());
    expect(since.filter(isPaging), "no GET of the events paging route while following").toEqual([]);
    // One streaming request serves them all: the reader did not reconnect per event.
    const streams = requests.filter((r) => isStream(r.url()));
    expect(streams.length).toBe(1);
    const url = new URL(streams[0]?.url() ?? "");
    expect(url.searchParams.get("live")).toBe("sse");
    expect(sequenceOf(url.searchParams.get("offset") ?? "")).toBeLessThan(published[0] ?? 0);
    expect(streams[0]?.headers().authorization).toBe(`Bearer ${TOKEN}`);
  });

  it("keeps a bounded number of rows; the newest stay", async () => {
    const LIVE_MAX_ROWS = Number(await page.locator("#live-status").getAttribute("data-max-rows"));
    expect(LIVE_MAX_ROWS).toBe(200);
    const published = [...(await publish(150, "bulk1")), ...(await publish(150, "bulk2"))];
    const seqs = await expectRows(published.slice(-LIVE_MAX_ROWS));
    expect(seqs.length).toBe(LIVE_MAX_ROWS);
    expect(seqs.at(-1)).toBe(published.at(-1));
  });

  it("pausing aborts the stream; following again resumes after the last row without duplicates", async () => {
    const stream = requests.filter((r) => isStream(r.url())).at(-1);
    await page.getByRole("button", { name: "Stop following" }).click();
    await until(() => stream && aborted.includes(stream), "the stream request aborted");
    expect(await liveStatus()).toBe("stopped");
    const mark = requests.length;
    const missed = await publish(3, "paused");
    await sleep(1_000);
    expect((await rowSequences()).filter((s) => missed.includes(s))).toEqual([]);
    expect(requests.slice(mark).filter((r) => isStream(r.url()))).toEqual([]);

    await page.getByRole("button", { name: "Follow live" }).click();
    await until(async () => (await liveStatus()) === "live", "live again");
    const resumed = requests.slice(mark).filter((r) => isStream(r.url()));
    expect(resumed.length).toBe(1);
    expect(sequenceOf(new URL(resumed[0]?.url() ?? "").searchParams.get("offset") ?? "")).toBe((missed[0] ?? 0) - 1);
    await expectRows([...missed, ...(await publish(2, "after-pause"))]);
    expect(
      requests
        .slice(mark)
        .map((r) => r.url())
        .filter(isPaging),
    ).toEqual([]);

    // Off and on again in one task: the stopped reader's late "stopped" leaves the new one's toggle on.
    await page.evaluate(`(() => { const b = document.getElementById("follow-live"); b.click(); b.click(); })()`);
    await until(async () => (await liveStatus()) === "live", "live after off and on");
    await sleep(300);
    expect(await page.locator("#follow-live").getAttribute("aria-pressed")).toBe("true");
    expect(await liveStatus()).toBe("live");
  });

  it("a dropped connection is retried and resumed from the last offset", async () => {
    // The next stream request fails at the network; the one after it goes through.
    let failed = 0;
    await page.route(
      (url) => isStream(url.toString()),
      async (route) => {
        if (failed++ === 0) await route.abort("connectionreset");
        else await route.continue();
      },
    );
    const mark = requests.length;
    await page.getByRole("button", { name: "Stop following" }).click();
    await page.getByRole("button", { name: "Follow live" }).click();
    await until(async () => (await liveStatus()) === "reconnecting", "the reconnecting status");
    await until(async () => (await liveStatus()) === "live", "live after the retry");
    await expectRows(await publish(3, "after-drop"));
    const streams = requests.slice(mark).filter((r) => isStream(r.url()));
    expect(streams.length).toBe(2);
    expect(streams[1]?.url()).toBe(streams[0]?.url());
    await page.unroute((url) => isStream(url.toString()));
  });

  it("leaving the view aborts the stream request and nothing follows after", async () => {
    const stream = requests.filter((r) => isStream(r.url())).at(-1);
    expect(stream && aborted.includes(stream)).toBe(false);
    await page.getByRole("button", { name: "Close" }).click();
    await page.locator("#detail").waitFor({ state: "hidden" });
    await until(() => stream && aborted.includes(stream), "the stream request aborted on leaving");
    const mark = requests.length;
    await publish(2, "gone");
    await sleep(1_000);
    expect(requests.slice(mark).filter((r) => isStream(r.url()) || isPaging(r.url()))).toEqual([]);
  });

  it("an explicit page does not follow until asked; signing out stops it", async () => {
    const tail = await publish(2, "paged");
    await page.evaluate(`location.hash = "#/topic/events/${PARTITION}/${tail[0]}"`);
    await page.locator(`#detail-body tr[data-sequence="${tail[1]}"]`).waitFor();
    await sleep(500);
    expect(await liveStatus()).toBe("stopped");
    const mark = requests.length;
    await page.getByRole("button", { name: "Follow live" }).click();
    await until(async () => (await liveStatus()) === "live", "following from the page");
    await expectRows([...tail, ...(await publish(2, "from-page"))]);
    const stream = requests.slice(mark).find((r) => isStream(r.url()));
    await page.getByRole("button", { name: "Sign out" }).click();
    await until(() => stream && aborted.includes(stream), "the stream request aborted on sign-out");
  });
});
