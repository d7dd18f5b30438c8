import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import pkg from "../../package.json";
import { REFERENCE_SCRIPT_PATH } from "../../workers/platform/reference/page";
import { launchChromium } from "./chromium";

/**
 * The API reference (/docs, Scalar's renderer; ADR 0043) in a real headless Chromium against the local
 * stack of test/cli/stack.ts: it renders the document's operations, its version and authentication
 * section, "Test Request" sends the bearer token typed in, the only CSP report is the renderer's
 * caught eval probe, and nothing is requested from another origin. The screenshot for the docs goes
 * to docs/images/api-reference.png (fixed viewport; its pixels are not compared).
 */

const BASE = inject("eventlineUrl");
const TOKEN = inject("eventlineToken");
const SCREENSHOT = path.resolve(import.meta.dirname, "../../docs/images/api-reference.png");

interface Seen {
  problems: string[];
  violations: { directive: string; blocked: string }[];
  offOrigin: string[];
  requests: string[];
}

function watch(page: Page): Seen {
  const seen: Seen = { problems: [], violations: [], offOrigin: [], requests: [] };
  page.on("pageerror", (err) => seen.problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    const text = msg.text();
    if (text.startsWith("csp-violation ")) {
      const [directive = "", blocked = ""] = text.slice("csp-violation ".length).split(" ");
      seen.violations.push({ directive, blocked });
    } else if (msg.type() === "error" && !text.startsWith("Refused to evaluate a string as JavaScript")) {
      seen.problems.push(`console error: ${text}`);
    }
  });
  page.on("request", (req) => {
    if (!req.url().startsWith(`${BASE}/`)) seen.offOrigin.push(req.url());
    else seen.requests.push(new URL(req.url()).pathname);
  });
  return seen;
}

describe("API reference in Chromium", () => {
  let browser: Browser;
  let page: Page;
  let seen: Seen;

  beforeAll(async () => {
    ({ browser } = await launchChromium());
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: "light", reducedMotion: "reduce" });
    page = await context.newPage();
    page.setDefaultTimeout(20_000);
    seen = watch(page);
    await page.addInitScript({
      content: `document.addEventListener("securitypolicyviolation", (e) => console.log("csp-violation " + e.violatedDirective + " " + e.blockedURI));`,
    });
  });

  afterAll(async () => {
    await browser?.close();
  });

  it("renders the operations, the version and the authentication section, and is screenshot for the docs", async () => {
    const res = await page.goto(`${BASE}/docs`);
    expect(res?.status()).toBe(200);
    await page.getByRole("heading", { name: "Eventline API", level: 1 }).waitFor();
    // The sidebar's table of contents: the document's tags, and an operation of the open group.
    for (const tag of ["Ingest", "Topics", "Streams", "Subscriptions", "Replays", "Security", "Operations", "Orders"]) {
      expect(
        await page
          .getByRole("button", { name: `Open Group - ${tag}` })
          .or(page.getByRole("button", { name: `Close Group - ${tag}` }))
          .count(),
        tag,
      ).toBe(1);
    }
    await page.getByText("Publish CloudEvents to a topic").first().waitFor();
    expect(await page.getByText(`v${pkg.version}`, { exact: true }).count()).toBeGreaterThan(0);
    await page.getByRole("heading", { name: "Authentication" }).first().waitFor();
    expect(await page.getByLabel("Token").count()).toBeGreaterThan(0);
    // Schemas and examples come from the document: the ingest operation's request body and its answers.
    await page.getByText("Every event is committed").first().waitFor({ state: "attached" });
    await page.getByText("CloudEvent", { exact: true }).first().waitFor({ state: "attached" });
    expect(seen.requests).toContain(REFERENCE_SCRIPT_PATH);
    expect(seen.requests).toContain("/openapi.json");

    await mkdir(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
  });

  it('"Test Request" sends the bearer token typed under Authentication', async () => {
    await page.getByLabel("Token").first().fill(TOKEN);
    await page.getByRole("button", { name: "Open Group - Topics" }).click();
    await page.getByText("List topics with per-partition head sequences").first().click();
    await page.locator("button", { hasText: "Test Request(get /v1/topics)" }).first().click();
    const sent = page.waitForRequest((req) => req.url() === `${BASE}/v1/topics` && req.method() === "GET");
    const answered = page.waitForResponse((r) => r.url() === `${BASE}/v1/topics` && r.request().method() === "GET");
    await page.locator("button", { hasText: "Send get request to /v1/topics" }).first().click();
    expect((await sent).headers().authorization).toBe(`Bearer ${TOKEN}`);
    const response = await answered;
    expect(response.status()).toBe(200);
    expect(((await response.json()) as { topics: { name: string }[] }).topics.map((t) => t.name)).toContain("events");
  });

  it("no script error, no CSP report but the renderer's caught eval probe, no request to another origin", () => {
    expect(seen.problems).toEqual([]);
    // Scalar's bundled zod tests once whether `new Function` works (and falls back when it throws).
    expect(seen.violations.filter((v) => !(v.directive === "script-src" && v.blocked === "eval"))).toEqual([]);
    expect(seen.offOrigin).toEqual([]);
  });
});
