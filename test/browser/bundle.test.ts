import { readFileSync } from "node:fs";
import { describe, expect, inject, it } from "vitest";
import { bundleDashboard, DASHBOARD_BUNDLE } from "../../scripts/build-dashboard.mjs";

/**
 * The dashboard's browser code is TypeScript under workers/platform/dashboard/browser/, bundled
 * into a generated, git-ignored module (ADR 0038). What a running stack serves must be the bundle
 * of those sources as they are now, not an older generated file: wrangler's [build] command and
 * the vitest configs rebuild it, and this test fails if one of them stops doing so.
 */
describe("dashboard bundle", () => {
  it("the stack serves the bundle of the current browser sources, as a classic script", async () => {
    const expected = bundleDashboard();
    const res = await fetch(`${inject("eventlineUrl")}/dashboard/app.js`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(expected);
    // A classic <script defer>: no module syntax, strict, everything inside one function scope.
    expect(expected.startsWith('"use strict";\n(() => {')).toBe(true);
    expect(expected).not.toMatch(/^\s*(import|export)\s/m);
    expect(readFileSync(DASHBOARD_BUNDLE, "utf8")).toContain(JSON.stringify(expected));
  });
});
