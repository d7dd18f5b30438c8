import pkg from "../../../package.json";
import { selfOnlyCsp } from "../security-headers";

/**
 * The API reference at /docs: Scalar's renderer (@scalar/api-reference, the standalone browser
 * bundle, pinned in package.json) reading /openapi.json. The bundle is a static asset of the Worker
 * (wrangler.toml [assets], copied there by scripts/build-reference.mjs), too large for the Worker's
 * own script (ADR 0043); the Worker serves it, with its headers, at REFERENCE_SCRIPT_PATH.
 */

/** Eventline's version (package.json), the OpenAPI document's info.version. */
export const EVENTLINE_VERSION: string = pkg.version;

/** The renderer's version: package.json pins it exactly, and the asset's name carries it. */
export const SCALAR_VERSION: string = pkg.devDependencies["@scalar/api-reference"];

/** Where the renderer is served (and found in the assets directory): versioned, so cached for a year. */
export const REFERENCE_SCRIPT_PATH = `/docs/scalar-${SCALAR_VERSION}.js`;

/**
 * The page's policy: the dashboard's self-only CSP, with inline styles allowed (the renderer
 * injects its stylesheets as <style> elements and sets style attributes); scripts stay 'self'.
 */
export const REFERENCE_CSP = selfOnlyCsp({ inlineStyles: true });

/**
 * Scalar's configuration (its HTML API: `data-configuration` on the `#api-reference` element). Nothing
 * leaves the origin: no web fonts, no telemetry, no AI agent or MCP panel, no developer toolbar. "Try
 * it" offers the document's `bearer` scheme, so a request carries `Authorization: Bearer <token>`.
 */
export const REFERENCE_CONFIGURATION = {
  url: "/openapi.json",
  withDefaultFonts: false,
  telemetry: false,
  showDeveloperTools: "never",
  agent: { disabled: true },
  mcp: { disabled: true },
  hideClientButton: false,
  documentDownloadType: "json",
  authentication: { preferredSecurityScheme: "bearer", securitySchemes: { bearer: { token: "" } } },
} as const;

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/**
 * The page: no inline script (the empty `#api-reference` element only carries the configuration; the
 * standalone bundle reads it and mounts the reference before it), the renderer from the same origin.
 */
export const REFERENCE_PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Eventline API reference</title>
  <link rel="icon" href="/dashboard/icon.svg" type="image/svg+xml">
</head>
<body>
  <noscript><p>The API reference needs JavaScript. The machine-readable description is <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p></noscript>
  <script id="api-reference" data-url="/openapi.json" data-configuration="${escapeHtml(JSON.stringify(REFERENCE_CONFIGURATION))}"></script>
  <script src="${REFERENCE_SCRIPT_PATH}"></script>
</body>
</html>
`;
