import { randomUUID } from "node:crypto";
import { access, mkdir } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import vm from "node:vm";
import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { partitionFor } from "../../shared/partitioner";
import { DASHBOARD_SCRIPT } from "../../workers/platform/dashboard/bundle.generated";
import { launchChromium } from "./chromium";

/**
 * The dashboard in a real headless Chromium (playwright-core; see ./chromium.ts for which one) against the
 * local stack of test/cli/stack.ts: sign-in, the flow graph's nodes, live updates without a reload,
 * drill-down into a topic's events and an event's trace, a dead letter made and redriven from the
 * page, a non-admin key, and no console error, CSP violation or request to another origin.
 * Every wait is a bounded poll. A full-page screenshot goes to docs/images/dashboard.png, the docs'
 * picture (its pixels are not compared).
 */

const BASE = inject("eventlineUrl");
const TOKEN = inject("eventlineToken");
const SCREENSHOT = path.resolve(import.meta.dirname, "../../docs/images/dashboard.png");
const BATCH = "application/cloudevents-batch+json";

const run = randomUUID().slice(0, 8);
const TYPE = `dashboard.test.${run}`;
const SUBSCRIPTION = `dash-${run}`;

/**
 * The stack is shared with test/cli/, whose replay.test.ts archives partition 3 of "events" and
 * reads what it sealed there: this suite writes to partitions 0-2 of "events" only, with partition
 * keys chosen by the partitioner, so it adds nothing to that partition.
 */
function keyFor(prefix: string, partition: number): string {
  for (let i = 0; ; i++) if (partitionFor({ id: `${prefix}-${i}` }, 4) === partition) return `${prefix}-${i}`;
}
const KEYS = [0, 1, 2].map((p) => keyFor(`dash-${run}`, p));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every 100 ms until it returns something truthy; fails after `timeoutMs`. */
async function until<T>(check: () => Promise<T> | T, what: string, timeoutMs = 20_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

function api(route: string, init: RequestInit = {}, token = TOKEN): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${token}`);
  return fetch(`${BASE}${route}`, { ...init, headers });
}

async function json<T>(route: string): Promise<T> {
  const res = await api(route);
  const text = await res.text();
  expect(res.status, `GET ${route}: ${text}`).toBe(200);
  return JSON.parse(text) as T;
}

interface Ack {
  id: string;
  partition: number;
  sequence: number;
}

async function publish(events: Record<string, unknown>[]): Promise<Ack[]> {
  const res = await api("/v1/topics/events/events", {
    method: "POST",
    headers: { "content-type": BATCH },
    body: JSON.stringify(events.map((e) => ({ specversion: "1.0", id: randomUUID(), source: "/dashboard-test", ...e }))),
  });
  const text = await res.text();
  expect(res.status, text).toBe(202);
  const acks = (JSON.parse(text) as { events: Ack[] }).events;
  expect(acks.filter((a) => a.partition === 3)).toEqual([]);
  return acks;
}

/**
 * Background traffic while the page is watched, so its rates, edges and charts have something to
 * show: a few events every 300 ms, and an order placed (through the command API) every second.
 */
function startTraffic() {
  let running = true;
  const loop = (async () => {
    for (let i = 0; running && i < 1000; i++) {
      await publish([0, 1, 2].map((n) => ({ type: `${TYPE}.traffic`, partitionkey: KEYS[n], data: { n } })));
      if (i % 3 === 0) {
        const res = await api("/v1/orders", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            customerId: `dash-${run}`,
            currency: "EUR",
            lines: [{ sku: "DASH-1", quantity: 1 + (i % 4), unitPrice: 1250 }],
          }),
        });
        expect(res.status, await res.text()).toBe(201);
      }
      await sleep(300);
    }
  })();
  loop.catch(() => undefined); // reported by the stop function, which awaits it
  return async () => {
    running = false;
    await loop;
  };
}

const dlqDepth = async (name: string) => (await json<{ dlqDepth: number }>(`/v1/subscriptions/${name}`)).dlqDepth;

/** A webhook receiver on loopback answering `status` (500 until the test says otherwise). */
async function receiver() {
  const state = { status: 500, deliveries: [] as { status: number; id: string; type: string }[] };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString("utf8");
    });
    req.on("end", () => {
      let event: { id?: string; type?: string } = {};
      try {
        event = JSON.parse(body) as typeof event;
      } catch {}
      state.deliveries.push({ status: state.status, id: event.id ?? "", type: event.type ?? "" });
      res.writeHead(state.status, { "content-type": "text/plain" }).end(state.status === 200 ? "ok" : "failing on purpose");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    state,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** What a page did that it should not: script errors, CSP violations, console errors, other origins. */
function watch(page: Page) {
  const problems: string[] = [];
  const offOrigin: string[] = [];
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    // The browser logs every non-2xx fetch; refusals (401/403) and endpoints not built yet (404) are expected.
    if (msg.type() === "error" && !/^Failed to load resource: the server responded with a status of 40[134]/.test(msg.text())) {
      problems.push(`console error: ${msg.text()}`);
    }
  });
  page.on("request", (req) => {
    if (!req.url().startsWith(`${BASE}/`)) offOrigin.push(req.url());
  });
  return { problems, offOrigin };
}

const node = (page: Page, kind: string, name: string) => page.locator(`[data-node="${kind}"][data-name="${name}"]`);
/** A locator's text, whitespace collapsed. */
const textOf = async (locator: Locator) => ((await locator.textContent()) ?? "").replace(/\s+/g, " ").trim();
const attr = async (locator: Locator, name: string) => Number((await locator.getAttribute(name)) ?? Number.NaN);

describe("dashboard in Chromium", () => {
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let seen: ReturnType<typeof watch>;
  let hook: Awaited<ReturnType<typeof receiver>>;
  let readerKeyId: string | undefined;
  let pagedAcks: Ack[] = [];
  let stopTraffic: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    ({ browser } = await launchChromium());
    context = await browser.newContext({ viewport: { width: 1440, height: 1000 }, colorScheme: "light", reducedMotion: "reduce" });
    page = await context.newPage();
    page.setDefaultTimeout(15_000);
    seen = watch(page);
    hook = await receiver();
  });

  // A script error or CSP violation is reported by the test during which it happened.
  afterEach(() => {
    expect(seen.problems).toEqual([]);
  });

  afterAll(async () => {
    await stopTraffic?.();
    // Leave the shared stack as the other suites expect it: no extra subscription or key.
    await api(`/v1/subscriptions/${SUBSCRIPTION}`, { method: "DELETE" }).catch(() => undefined);
    if (readerKeyId !== undefined) await api(`/v1/keys/${readerKeyId}`, { method: "DELETE" }).catch(() => undefined);
    await browser?.close();
    await hook?.close();
  });

  it("the served script is the module's, and parses", async () => {
    const res = await fetch(`${BASE}/dashboard/app.js`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toBe(DASHBOARD_SCRIPT);
    expect(() => new vm.Script(text, { filename: "app.js" })).not.toThrow();
  });

  it("asks for a key; a wrong key gets a clear 401 message and the form again", async () => {
    // The bare origin (what `npm start` prints) lands a browser on the sign-in.
    const res = await page.goto(`${BASE}/`);
    expect(res?.status()).toBe(200);
    expect(page.url()).toBe(`${BASE}/dashboard`);
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    const help = await textOf(page.locator("#signin-help"));
    expect(help).toContain("?");
    expect(help).toMatch(/Locally the admin key is EVENTLINE_ADMIN_KEY in \.dev\.vars/);
    // The base URL to export for the CLI is this server's, and the reference is linked.
    expect(await textOf(page.locator("#signin-start"))).toContain(`export EVENTLINE_URL=${BASE}`);
    expect(await page.locator("#signin-start a").getAttribute("href")).toBe("/docs");

    await page.getByLabel("API key or token").fill("evl_wrong_key_for_the_dashboard_test");
    await page.getByRole("button", { name: "Sign in" }).click();
    const alert = page.locator("#signin-error");
    await alert.waitFor({ state: "visible" });
    expect(await textOf(alert)).toMatch(/did not accept this key \(401 Unauthorized\)/);
    expect(await page.locator("#signin").isVisible()).toBe(true);
    expect(await page.locator("#app").isVisible()).toBe(false);
    expect(await page.evaluate("sessionStorage.getItem('eventline.dashboard.token')")).toBeNull();
  });

  it("signed in, the graph shows every configured topic and subscription as nodes", async () => {
    await page.getByLabel("API key or token").fill(TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Event flow" }).waitFor();
    expect(await page.evaluate("sessionStorage.getItem('eventline.dashboard.token')")).toBe(TOKEN);

    for (const topic of ["events", "orders", "customers", "audit"]) {
      const link = page.getByRole("link", { name: new RegExp(`^Topic ${topic}: [\\d,]+ events? in \\d partitions?`) });
      await link.waitFor();
      expect(await link.getAttribute("data-name")).toBe(topic);
    }
    expect(await page.locator('[data-node="partition"][data-topic="events"]').count()).toBe(4);
    expect(await page.locator('[data-node="partition"][data-topic="customers"]').count()).toBe(2);
    expect(await page.locator('[data-node="partition"][data-topic="audit"]').count()).toBe(1);

    const subscriptions = { activity: "events", greetings: "events", "orders-view": "orders", "customer-summary": "orders" };
    for (const [name, topic] of Object.entries(subscriptions)) {
      const link = page.getByRole("link", { name: new RegExp(`^Subscription ${name} on ${topic} \\(worker\\): lag [\\d,]+`) });
      await link.waitFor();
      expect(await link.getAttribute("data-topic")).toBe(topic);
      expect(await node(page, "consumer", name).count()).toBe(1);
      expect(await page.locator(`#subscriptions tr[data-subscription="${name}"]`).count()).toBe(1);
    }
    expect(await page.getByRole("img", { name: /^Producers \(HTTP ingest\)/ }).count()).toBe(1);
    // Producers feed every topic but the internal audit log, which only the platform writes.
    expect(await page.locator('path[data-edge="e:topic:events"]').count()).toBe(1);
    expect(await page.locator('path[data-edge="e:topic:audit"]').count()).toBe(0);
    expect(await node(page, "topic", "audit").getAttribute("data-internal")).toBe("true");
    expect(await page.locator("#health").getAttribute("data-status")).toMatch(/^(ok|degraded|failing)$/);
    expect(await textOf(page.locator("#updated"))).toMatch(/^Last updated \d\d:\d\d:\d\d · source \/v1\//);
    for (const id of ["chart-throughput", "chart-errors", "chart-latency"])
      expect(await page.locator(`#${id} svg[role="img"]`).count()).toBe(1);
  });

  it("events published through the API show on the page without a reload", async () => {
    const topic = node(page, "topic", "events");
    const before = await attr(topic, "data-events");
    expect(before).toBeGreaterThanOrEqual(0);
    await page.evaluate("window.__sameDocument = true");
    const updatedBefore = await page.locator("#updated").getAttribute("data-updated");

    // One subject: one partition, so the drill-down below has more than a page of them.
    pagedAcks = await publish(Array.from({ length: 25 }, (_, i) => ({ type: `${TYPE}.paged`, subject: KEYS[1], data: { i } })));
    const partition = pagedAcks[0]?.partition ?? -1;
    expect(new Set(pagedAcks.map((a) => a.partition))).toEqual(new Set([partition]));
    // One batch to one partition is one contiguous range.
    expect((pagedAcks.at(-1)?.sequence ?? 0) - (pagedAcks[0]?.sequence ?? 0)).toBe(24);
    stopTraffic = startTraffic();

    await until(async () => (await attr(topic, "data-events")) >= before + 25, "the events topic's count to grow by 25 on the page");
    const partitionNode = page.locator(`[data-node="partition"][data-topic="events"][data-partition="${partition}"]`);
    expect(await attr(partitionNode, "data-head")).toBeGreaterThanOrEqual(pagedAcks.at(-1)?.sequence ?? 0);
    // The poll that saw the new events measured them as a rate on the topic.
    await until(async () => Number(await topic.getAttribute("data-rate")) > 0, "a rate above 0 on the events topic", 5_000);
    // Edges carrying traffic are marked active, and with prefers-reduced-motion nothing animates.
    await until(async () => (await page.locator("path.edge.active").count()) > 0, "an active edge while traffic flows", 5_000);
    expect(await page.evaluate("document.getAnimations().length")).toBe(0);
    expect(await page.evaluate("window.__sameDocument")).toBe(true);
    expect(await page.locator("#updated").getAttribute("data-updated")).not.toBe(updatedBefore);
  });

  it("stream processors are nodes between their input and output topics, with lag, watermark, open windows and late events", async () => {
    const revenue = node(page, "processor", "revenue-per-minute");
    expect(await revenue.getAttribute("aria-label")).toMatch(
      /^Processor revenue-per-minute \(aggregate\) from orders to orders-revenue: [\d,]+ events? not yet applied, .*open windows?, [\d,]+ late events?, /,
    );
    for (const [name, output] of [
      ["revenue-per-minute", "orders-revenue"],
      ["unpaid-orders", "orders-alerts"],
    ] as const) {
      expect([
        await node(page, "processor", name).getAttribute("data-input"),
        await node(page, "processor", name).getAttribute("data-output"),
      ]).toEqual(["orders", output]);
      // Fed by each partition of its input; results back to its output topic, re-partitioned through its internal topic.
      for (const p of [0, 1, 2, 3])
        expect(await page.locator(`path[data-edge="e:partition:orders/${p}>processor:${name}"]`).count()).toBe(1);
      const out = page.locator(`path[data-edge="e:processor:${name}>out"]`);
      const numbers = ((await out.getAttribute("d")) ?? "")
        .split(/[ MLQ]+/)
        .filter(Boolean)
        .map(Number);
      // It leaves the processor's right side and ends pointing into the output topic from above.
      const from = node(page, "processor", name).locator("rect");
      expect(numbers.slice(0, 2)).toEqual([(await attr(from, "x")) + (await attr(from, "width")), (await attr(from, "y")) + 26]);
      const target = node(page, "topic", output).locator("rect");
      const [x, y, w] = [await attr(target, "x"), await attr(target, "y"), await attr(target, "width")];
      expect(numbers.slice(-2)).toEqual([x + w / 2, y - 2]);
      expect(await page.locator(`path[data-edge="e:processor:${name}>internal"]`).count()).toBe(1);
      expect(await node(page, "topic", `processor.${name}`).getAttribute("data-internal")).toBe("true");
    }
    // The traffic places orders: unpaid-orders holds each one open for 15 minutes of event time, and the page shows it.
    const unpaid = node(page, "processor", "unpaid-orders");
    await until(async () => (await attr(unpaid, "data-open")) > 0, "unpaid-orders' open windows above 0 on the page", 20_000);
    const lines = await unpaid.locator("text").allTextContents();
    expect(lines[0]).toBe("unpaid-orders");
    expect(lines[1]).toMatch(/^lag [\d,]+ · (wm [\d.,]+ (s|min|h|d) behind|no watermark yet)$/);
    expect(lines[2]).toMatch(/^open [1-9][\d,]* · late [\d,]+ · /);
    expect(await attr(unpaid, "data-late")).toBeGreaterThanOrEqual(0);
  });

  it("a topic's events page by page; an event's detail and its trace", async () => {
    const first = pagedAcks[0];
    const last = pagedAcks.at(-1);
    if (first === undefined || last === undefined) throw new Error("the previous test published nothing");
    await page.getByRole("link", { name: /^Topic events:/ }).click();
    await page.getByRole("heading", { name: "Topic events" }).waitFor();
    await page.getByLabel("Partition", { exact: true }).selectOption(String(first.partition));
    await page.getByLabel("Jump to sequence").fill(String(first.sequence));
    await page.getByRole("button", { name: "Go" }).click();
    const rows = page.locator("#detail-body tbody tr");
    const firstRow = page.locator(`#detail-body tr[data-sequence="${first.sequence}"]`);
    await firstRow.waitFor();
    expect(await rows.count()).toBe(20);
    expect(await textOf(firstRow)).toContain(`${TYPE}.paged`);

    await page.getByRole("button", { name: "Next →" }).click();
    await page.locator(`#detail-body tr[data-sequence="${first.sequence + 20}"]`).waitFor();
    expect(await page.locator(`#detail-body tr[data-sequence="${last.sequence}"]`).count()).toBe(1);
    await page.getByRole("button", { name: "← Previous" }).click();
    await firstRow.waitFor();

    await page.getByRole("link", { name: `Event at sequence ${first.sequence}`, exact: true }).click();
    await page.getByRole("heading", { name: `Event events / partition ${first.partition} / sequence ${first.sequence}` }).waitFor();
    await until(async () => (await textOf(page.locator("#detail-body dl").first())).includes(first.id), "the event's attributes");
    const trace = page.locator("#trace");
    const text = await until(async () => {
      const t = await textOf(trace);
      return t.includes("Loading") ? "" : t;
    }, "the trace");
    // The trace endpoint is built in parallel: either its answer (activity got the event), or "not available".
    expect(text).toMatch(/activity|Trace not available/);
    expect(text).not.toMatch(/failed/);
    await page.getByRole("button", { name: "Close" }).click();
    await page.locator("#detail").waitFor({ state: "hidden" });
  });

  it("a dead letter shows on the page (highlighted); Redrive all empties the DLQ", { timeout: 150_000 }, async () => {
    const created = await api("/v1/subscriptions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        name: SUBSCRIPTION,
        topic: "events",
        filter: { type: [TYPE] },
        maxRetries: 0,
        webhook: { url: hook.url },
      }),
    });
    expect(created.status, await created.text()).toBe(201);
    const subNode = node(page, "subscription", SUBSCRIPTION);
    await subNode.waitFor({ timeout: 20_000 });
    expect(await subNode.getAttribute("data-kind")).toBe("webhook");
    expect(await node(page, "consumer", SUBSCRIPTION).getAttribute("aria-label")).toContain("webhook 127.0.0.1:");

    const [poison] = await publish([{ type: TYPE, partitionkey: KEYS[2], data: { poison: true } }]);
    try {
      await until(async () => (await dlqDepth(SUBSCRIPTION)) > 0, "the webhook subscription's DLQ depth above 0 (API)", 60_000);
      expect(hook.state.deliveries.some((d) => d.id === poison?.id && d.status === 500)).toBe(true);
      await until(async () => (await attr(subNode, "data-dlq")) > 0, "the DLQ depth above 0 on the page");
      expect(await subNode.getAttribute("class")).toMatch(/\bdlq\b/);
      expect(await subNode.getAttribute("aria-label")).toMatch(/DLQ 1 dead letters waiting/);
      expect(await page.locator(`#subscriptions tr[data-subscription="${SUBSCRIPTION}"] td.alert[data-dlq="1"]`).count()).toBe(1);

      await page.getByRole("link", { name: new RegExp(`^Subscription ${SUBSCRIPTION} on events \\(webhook\\)`) }).click();
      await page.getByRole("heading", { name: `Subscription ${SUBSCRIPTION}` }).waitFor();
      const count = page.locator("#dlq-count");
      await until(async () => (await count.getAttribute("data-depth")) === "1", "the DLQ count 1 in the subscription view");
      const letter = page.locator("#dlq-list tbody tr");
      await letter.first().waitFor();
      expect(await letter.count()).toBe(1);
      expect(await textOf(letter.first())).toMatch(/max_retries/);
      expect(await textOf(letter.first())).toContain(`events/${poison?.partition}/${poison?.sequence}`);
      const redrive = page.getByRole("button", { name: "Redrive all" });
      expect(await redrive.isVisible()).toBe(true);
      // The picture for the README: the dead letter highlighted, traffic measured on the page and
      // half a minute of it in the charts.
      const samples = page.locator("#chart-throughput");
      await until(async () => (await attr(samples, "data-samples")) >= 15, "15 samples (30 s) in the charts", 60_000);
      await until(async () => (await attr(node(page, "topic", "events"), "data-rate")) > 0, "traffic measured on the page", 10_000);
      // The topology is on the page: the topic and the subscription it feeds, drawn in the graph.
      expect(await node(page, "topic", "events").isVisible()).toBe(true);
      expect(await subNode.isVisible()).toBe(true);
      await mkdir(path.dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });

      hook.state.status = 200;
      await redrive.click();
      await until(async () => (await count.getAttribute("data-depth")) === "0", "the DLQ count 0 on the page after the redrive", 30_000);
      expect(await textOf(page.locator("#redrive-result"))).toMatch(/^Redriven 1; 0 remaining\.$/);
      expect(await dlqDepth(SUBSCRIPTION)).toBe(0);
      await until(async () => (await attr(subNode, "data-dlq")) === 0, "the graph's DLQ depth back to 0");
      // …and the receiver, answering 200 now, got the event again.
      await until(() => hook.state.deliveries.some((d) => d.id === poison?.id && d.status === 200), "the redriven delivery", 30_000);
    } finally {
      await stopTraffic?.();
    }
  });

  it("a key without admin sees its topics, and the DLQ and redrive as admin only", async () => {
    const created = await api("/v1/keys", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: `dashboard-reader-${run}`, grants: ["consume:events"] }),
    });
    const text = await created.text();
    expect(created.status, text).toBe(201);
    const key = JSON.parse(text) as { id: string; key: string };
    readerKeyId = key.id;

    const reader = await context.browser()?.newContext({ viewport: { width: 1280, height: 900 } });
    if (reader === undefined) throw new Error("no browser");
    try {
      const other = await reader.newPage();
      const otherSeen = watch(other);
      await other.goto(`${BASE}/dashboard#/subscription/activity`);
      await other.getByLabel("API key or token").fill(key.key);
      const signedInAt = Date.now();
      await other.getByRole("button", { name: "Sign in" }).click();
      await other.getByRole("link", { name: /^Topic events:/ }).waitFor();
      expect(await other.locator('[data-node="topic"]').count()).toBe(1);
      // The charts open with the server's history (GET /v1/metrics/history): samples from before the page.
      expect(await attr(other.locator("#chart-throughput"), "data-first")).toBeLessThan(signedInAt - 10_000);
      // Motion allowed here: edges animate only while counts move, so with the traffic stopped nothing runs.
      await until(async () => (await other.evaluate("document.getAnimations().length")) === 0, "no running animation once idle");
      await other.getByRole("heading", { name: "Subscription activity" }).waitFor();
      await until(async () => (await textOf(other.locator("#dlq-count"))) === "admin only", "the DLQ shown as admin only");
      expect(await other.getByRole("button", { name: "Redrive all" }).isVisible()).toBe(false);
      expect(otherSeen.problems).toEqual([]);
      expect(otherSeen.offOrigin).toEqual([]);
    } finally {
      await reader.close();
    }
  });

  it("no script error, CSP violation or console error, and no request left the origin", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    expect(await page.evaluate("sessionStorage.getItem('eventline.dashboard.token')")).toBeNull();
    expect(seen.problems).toEqual([]);
    expect(seen.offOrigin).toEqual([]);
    await access(SCREENSHOT);
  });
});
