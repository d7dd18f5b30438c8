import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import pkg from "../../package.json";
import { REFERENCE_CONFIGURATION, REFERENCE_SCRIPT_PATH, SCALAR_VERSION } from "../../workers/platform/reference/page";
import { anonymousRequest, cspDirectives, expectProblem, requestAs } from "../helpers";

/**
 * The API reference as served (ADR 0043): /docs is a page shell for Scalar's renderer under the
 * self-only CSP (inline styles its one relaxation), the renderer comes from the Worker's own assets
 * with a year's cache, and /openapi.json carries the package's version and an authentication section.
 * test/browser/reference.test.ts renders the page in Chromium.
 */

describe("/docs", () => {
  it("serves the renderer's page without credentials, under the self-only CSP", async () => {
    for (const res of [await anonymousRequest("/docs"), await requestAs("evl_not_a_key", "/docs")]) {
      const html = await res.text();
      expect(res.status, html).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("x-frame-options")).toBe("DENY");
      const csp = cspDirectives(res.headers.get("content-security-policy"));
      expect(csp.get("default-src")).toEqual(["'self'"]);
      for (const directive of ["script-src", "img-src", "connect-src"]) expect(csp.get(directive), directive).toEqual(["'self'"]);
      // The one relaxation, on this route only: the renderer injects <style> elements and style attributes.
      expect(csp.get("style-src")).toEqual(["'self'", "'unsafe-inline'"]);
      for (const directive of ["font-src", "object-src", "base-uri", "form-action", "frame-ancestors"])
        expect(csp.get(directive)).toEqual(["'none'"]);
      expect(res.headers.get("content-security-policy")).not.toMatch(/unsafe-eval|data:|https?:|\*/);

      // No inline code: one empty configuration element and the renderer from this origin.
      const scripts = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
      expect(scripts.map((s) => s[2])).toEqual(["", ""]);
      expect(scripts[0]?.[1]).toContain('id="api-reference"');
      expect(scripts[1]?.[1]).toBe(` src="${REFERENCE_SCRIPT_PATH}"`);
      expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=|javascript:|https?:\/\//i);
      const references = [...html.matchAll(/(?:src|href|data-url)="([^"#]+)"/g)].map((m) => m[1]);
      expect(references.sort()).toEqual(["/dashboard/icon.svg", "/openapi.json", "/openapi.json", REFERENCE_SCRIPT_PATH].sort());
    }
  });

  it("configures Scalar to send the bearer scheme and to reach nothing outside the origin", async () => {
    const html = await (await anonymousRequest("/docs")).text();
    const attribute = html.match(/data-configuration="([^"]*)"/)?.[1] ?? "";
    const decoded = attribute.replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)));
    const configuration = JSON.parse(decoded) as typeof REFERENCE_CONFIGURATION;
    expect(configuration).toEqual(REFERENCE_CONFIGURATION);
    expect(configuration.url).toBe("/openapi.json");
    expect(configuration.authentication.preferredSecurityScheme).toBe("bearer");
    expect(configuration).toMatchObject({ withDefaultFonts: false, telemetry: false, agent: { disabled: true }, mcp: { disabled: true } });
    const doc = (await (await anonymousRequest("/openapi.json")).json()) as {
      components: { securitySchemes: Record<string, { scheme?: string }> };
    };
    expect(doc.components.securitySchemes[configuration.authentication.preferredSecurityScheme]?.scheme).toBe("bearer");
  });

  it("/docs/ redirects to /docs", async () => {
    const res = await anonymousRequest("/docs/", { redirect: "manual" });
    expect(res.status).toBe(301);
    expect(res.headers.get("location")).toBe("/docs");
  });
});

describe("the renderer's script", () => {
  it("is the pinned @scalar/api-reference, named by its version", () => {
    expect(SCALAR_VERSION).toMatch(/^\d+\.\d+\.\d+$/);
    expect(pkg.devDependencies["@scalar/api-reference"]).toBe(SCALAR_VERSION);
    expect(REFERENCE_SCRIPT_PATH).toBe(`/docs/scalar-${SCALAR_VERSION}.js`);
  });

  it("is served from the Worker's assets as JavaScript with a year's immutable cache, without credentials", async () => {
    const res = await anonymousRequest(REFERENCE_SCRIPT_PATH);
    const body = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("cross-origin-resource-policy")).toBe("same-origin");
    // The standalone bundle: it defines window.Scalar and mounts from the #api-reference element.
    expect(body.length).toBeGreaterThan(1_000_000);
    expect(body).toContain("window.Scalar={createApiReference:");
    expect(body).toContain("#api-reference[data-configuration]");
    expect(body).not.toMatch(/sourceMappingURL/);
    expect(body).toBe(await (await env.ASSETS.fetch(new URL(REFERENCE_SCRIPT_PATH, "http://assets.test"))).text());
  });

  it("other paths under /docs/ are not public and not served", async () => {
    for (const path of ["/docs/scalar-0.0.1.js", "/docs/scalar.js", `${REFERENCE_SCRIPT_PATH}.map`]) {
      const problem = await expectProblem(await anonymousRequest(path), 401);
      expect(problem.code, path).toBe("unauthorized");
    }
  });
});

describe("/openapi.json", () => {
  it("carries the package's version and an authentication section", async () => {
    const doc = (await (await anonymousRequest("/openapi.json")).json()) as { info: { version: string; description: string } };
    expect(doc.info.version).toBe(pkg.version);
    expect(doc.info.description).toMatch(/^## Authentication$/m);
    expect(doc.info.description).toContain("Authorization: Bearer <credential>");
    expect(doc.info.description).toContain("POST /v1/keys");
    expect(doc.info.description).toContain("JWT");
  });
});
