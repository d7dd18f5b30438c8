import { describe, expect, it } from "vitest";
import { DASHBOARD_ASSETS } from "../../workers/platform/dashboard/assets";
import { anonymousRequest, cspDirectives, request, requestAs } from "../helpers";

/**
 * The dashboard's page and assets as served: public, typed, under a CSP that allows nothing from
 * elsewhere, with no external reference; and every API path the script calls still refuses a
 * request without credentials. test/browser/dashboard.test.ts runs the page in Chromium.
 */

const ASSETS = [
  { path: "/dashboard", type: "text/html; charset=utf-8" },
  { path: "/dashboard/app.js", type: "text/javascript; charset=utf-8" },
  { path: "/dashboard/app.css", type: "text/css; charset=utf-8" },
  { path: "/dashboard/icon.svg", type: "image/svg+xml; charset=utf-8" },
];

/** The only absolute URL allowed in an asset: the SVG namespace name (an identifier, never fetched). */
const SVG_NAMESPACE = "http://www.w3.org/2000/svg";

describe("dashboard assets", () => {
  it.each(ASSETS)("$path is served without credentials, as $type, under the CSP", async ({ path, type }) => {
    for (const res of [await anonymousRequest(path), await requestAs("evl_not_a_key", path)]) {
      const body = await res.text();
      expect(res.status, body).toBe(200);
      expect(res.headers.get("content-type")).toBe(type);
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("referrer-policy")).toBe("no-referrer");
      const csp = cspDirectives(res.headers.get("content-security-policy"));
      expect(csp.get("default-src")).toEqual(["'self'"]);
      for (const directive of ["script-src", "style-src", "img-src", "connect-src"]) expect(csp.get(directive)).toEqual(["'self'"]);
      for (const directive of ["object-src", "base-uri", "form-action", "frame-ancestors"]) expect(csp.get(directive)).toEqual(["'none'"]);
      expect(res.headers.get("content-security-policy")).not.toMatch(/unsafe-|data:|https?:|\*/);
      expect(body).toBe(DASHBOARD_ASSETS[path]?.body);
    }
  });

  it("no asset refers to anything outside this origin", async () => {
    for (const { path } of ASSETS) {
      const body = await (await anonymousRequest(path)).text();
      const urls = (body.match(/(https?:)?\/\/[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s"'<>)]*/g) ?? []).filter((u) => u !== SVG_NAMESPACE);
      expect(urls, path).toEqual([]);
      expect(body, path).not.toMatch(/@import|url\(\s*["']?(https?:|\/\/)|fonts\.|cdn/i);
    }
  });

  it("the page has no inline script or style (the CSP would block them) and loads only its own assets", async () => {
    const html = await (await anonymousRequest("/dashboard")).text();
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=|javascript:/i);
    const scripts = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts).toHaveLength(1);
    expect(scripts[0]?.[1]).toContain('src="/dashboard/app.js"');
    expect(scripts[0]?.[2]).toBe("");
    const references = [...html.matchAll(/(?:src|href)="([^"#]+)"/g)].map((m) => m[1]);
    expect(references.sort()).toEqual(["/dashboard/app.css", "/dashboard/app.js", "/dashboard/icon.svg", "/docs", "/docs"]);
    // The sign-in form, its label and the help line.
    expect(html).toMatch(/<label for="token">API key or token<\/label>/);
    expect(html).toContain("<code>EVENTLINE_ADMIN_KEY</code> in <code>.dev.vars</code>");
  });

  it("the script builds no markup from strings and keeps the key in sessionStorage only", async () => {
    const script = await (await anonymousRequest("/dashboard/app.js")).text();
    expect(script).not.toMatch(
      /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|localStorage|setAttribute\("style"/,
    );
    expect(script).toContain("sessionStorage");
    expect(script).toContain('"Bearer "');
  });

  it("/dashboard/ redirects to /dashboard; HEAD works; other methods get 405 with Allow", async () => {
    const slash = await anonymousRequest("/dashboard/", { redirect: "manual" });
    expect(slash.status).toBe(301);
    expect(slash.headers.get("location")).toBe("/dashboard");
    const head = await anonymousRequest("/dashboard", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(await head.text()).toBe("");
    const post = await anonymousRequest("/dashboard", { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    // Only the listed assets are public: anything else under /dashboard is an unauthenticated request.
    expect((await anonymousRequest("/dashboard/secrets.json")).status).toBe(401);
  });

  it("the dashboard is not part of the OpenAPI document", async () => {
    const doc = (await (await anonymousRequest("/openapi.json")).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).filter((p) => p.startsWith("/dashboard"))).toEqual([]);
  });
});

describe("the API the dashboard calls", () => {
  const SAMPLE: Record<string, string> = { topic: "events", partition: "0", sequence: "1", name: "activity" };

  async function apiPaths(): Promise<string[]> {
    const script = await (await anonymousRequest("/dashboard/app.js")).text();
    return [...new Set([...script.matchAll(/"(\/v1\/[^"]*)"/g)].map((m) => m[1] ?? ""))];
  }

  it("the script names the metrics, history, health, topic, subscription, DLQ, replay, read, trace and live stream endpoints", async () => {
    expect((await apiPaths()).sort()).toEqual(
      [
        "/v1/metrics",
        "/v1/metrics/history",
        "/v1/health",
        "/v1/topics",
        "/v1/subscriptions",
        "/v1/subscriptions/{name}",
        "/v1/subscriptions/{name}/dlq",
        "/v1/subscriptions/{name}/dlq/redrive",
        "/v1/replays",
        "/v1/topics/{topic}/partitions/{partition}/events",
        "/v1/topics/{topic}/partitions/{partition}/events/{sequence}/trace",
        "/v1/topics/{topic}/partitions/{partition}/stream",
      ].sort(),
    );
  });

  it("every one of them answers 401 without credentials or with a bad key", async () => {
    const heads = await (await request("/v1/topics/events")).text();
    for (const template of await apiPaths()) {
      const path = template.replace(/\{(\w+)\}/g, (_, name: string) => SAMPLE[name] ?? "x");
      const method = path.endsWith("/redrive") ? "POST" : "GET";
      const init = method === "POST" ? { method, headers: { "content-type": "application/json" }, body: "{}" } : { method };
      const anonymous = await anonymousRequest(path, init);
      expect(anonymous.status, `${method} ${path}`).toBe(401);
      expect(anonymous.headers.get("content-type")).toBe("application/problem+json");
      expect((await requestAs("evl_not_a_key", path, init)).status, `${method} ${path} with a bad key`).toBe(401);
    }
    // Nothing was read or changed on the way.
    expect(await (await request("/v1/topics/events")).text()).toBe(heads);
  });
});
