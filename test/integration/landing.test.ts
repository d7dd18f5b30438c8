import { describe, expect, it } from "vitest";
import { prefersHtml } from "../../workers/platform/landing";
import { anonymousRequest, request } from "../helpers";

/**
 * `/` negotiates (ADR 0042): a browser (Accept names text/html) is redirected to the dashboard's
 * sign-in; an API client (Accept application/json, `*` / `*` or none) keeps the problem document.
 */

const BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

describe("GET / content negotiation", () => {
  it("sends a browser to the dashboard (302, Vary: Accept), with or without a credential, GET and HEAD", async () => {
    for (const res of [
      await anonymousRequest("/", { headers: { accept: BROWSER }, redirect: "manual" }),
      await request("/", { headers: { accept: BROWSER }, redirect: "manual" }),
      await anonymousRequest("/", { method: "HEAD", headers: { accept: "text/html" }, redirect: "manual" }),
    ]) {
      expect(res.status).toBe(302);
      expect(res.headers.get("location")).toBe("/dashboard");
      expect(res.headers.get("vary")).toContain("Accept");
    }
    const page = await anonymousRequest("/dashboard", { headers: { accept: BROWSER } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('<h2 id="signin-title">Sign in</h2>');
    expect(html).toContain('<a href="/docs">/docs</a>');
    expect(html).toContain("README");
  });

  it.each([
    ["application/json", "application/json"],
    ["*/* (curl's default)", "*/*"],
    ["application/problem+json", "application/problem+json"],
    ["JSON preferred to HTML", "application/json, text/html;q=0.5"],
    ["HTML refused", "text/html;q=0, */*"],
  ])("keeps the 401 problem document for an API client asking %s", async (_name, accept) => {
    const res = await anonymousRequest("/", { headers: { accept }, redirect: "manual" });
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    expect(((await res.json()) as { code: string }).code).toBe("unauthorized");
    expect(res.headers.get("vary")).toContain("Accept");
  });

  it("keeps the problem document without an Accept header, and 404 for an authenticated API client", async () => {
    expect((await anonymousRequest("/", { redirect: "manual" })).status).toBe(401);
    const res = await request("/", { headers: { accept: "application/json" } });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { code: string }).code).toBe("not_found");
  });

  it("redirects only GET and HEAD of / itself", async () => {
    const post = await anonymousRequest("/", { method: "POST", headers: { accept: BROWSER }, redirect: "manual" });
    expect(post.status).toBe(401);
    const other = await anonymousRequest("/v1/topics", { headers: { accept: BROWSER }, redirect: "manual" });
    expect(other.status).toBe(401);
  });

  it("prefersHtml reads media ranges and their q values", () => {
    expect(prefersHtml(BROWSER)).toBe(true);
    expect(prefersHtml("text/html")).toBe(true);
    expect(prefersHtml("TEXT/HTML; q=0.9, application/json; q=0.9")).toBe(true);
    expect(prefersHtml("application/xhtml+xml")).toBe(true);
    expect(prefersHtml(undefined)).toBe(false);
    expect(prefersHtml("")).toBe(false);
    expect(prefersHtml("*/*")).toBe(false);
    expect(prefersHtml("text/*")).toBe(false);
    expect(prefersHtml("text/html;q=0")).toBe(false);
    expect(prefersHtml("application/json;q=1, text/html;q=0.8")).toBe(false);
    expect(prefersHtml("text/html;q=bogus")).toBe(false);
  });
});
