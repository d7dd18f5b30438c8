import { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../context";
import { isPublicPath } from "../public-paths";

type OpenAPIDocument = ReturnType<OpenAPIHono["getOpenAPI31Document"]>;

const DOCUMENT_CONFIG = {
  openapi: "3.1.0",
  info: {
    title: "Eventline API",
    version: "1.0.0",
    description:
      "CloudEvents ingest into partitioned, ordered, durable logs on Cloudflare's edge. Errors are RFC 9457 problem documents (`application/problem+json`) carrying a `requestId` and, for validation failures, `issues` with JSON Pointer paths.",
  },
} as const;

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/** A readable API reference rendered on the server from the OpenAPI document: no CDN, no JS. */
export function renderReference(doc: OpenAPIDocument): string {
  const sections: string[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of ["get", "post", "put", "delete", "patch"] as const) {
      const op = (item as Record<string, unknown>)[method] as
        | {
            summary?: string;
            description?: string;
            parameters?: { name: string; in: string; description?: string; required?: boolean }[];
            requestBody?: { content?: Record<string, unknown> };
            responses?: Record<string, { description?: string; content?: Record<string, unknown> }>;
          }
        | undefined;
      if (op === undefined) continue;
      const params = (op.parameters ?? [])
        .map(
          (p) =>
            `<li><code>${escapeHtml(p.name)}</code> (${escapeHtml(p.in)}${p.required ? ", required" : ""}) ${escapeHtml(p.description ?? "")}</li>`,
        )
        .join("");
      const body = op.requestBody?.content
        ? Object.keys(op.requestBody.content)
            .map((t) => `<code>${escapeHtml(t)}</code>`)
            .join(", ")
        : "";
      const responses = Object.entries(op.responses ?? {})
        .map(
          ([status, r]) =>
            `<tr><td>${escapeHtml(status)}</td><td>${escapeHtml(r.description ?? "")}</td><td>${Object.keys(r.content ?? {})
              .map(escapeHtml)
              .join(", ")}</td></tr>`,
        )
        .join("");
      sections.push(`<section id="${escapeHtml(`${method}-${path}`)}">
<h2><span class="m ${method}">${method.toUpperCase()}</span> <code>${escapeHtml(path)}</code></h2>
<p><strong>${escapeHtml(op.summary ?? "")}</strong></p>
${op.description ? `<p>${escapeHtml(op.description)}</p>` : ""}
${params ? `<h3>Parameters</h3><ul>${params}</ul>` : ""}
${body ? `<h3>Request body</h3><p>${body}</p>` : ""}
<h3>Responses</h3><table><tr><th>Status</th><th>Meaning</th><th>Content</th></tr>${responses}</table>
</section>`);
    }
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(doc.info.title)} reference</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1b1f}
code{font:13px ui-monospace,monospace;background:#f2f2f5;padding:0 .25rem;border-radius:3px}
section{border-top:1px solid #ddd;padding:.5rem 0}
.m{font:bold 12px ui-monospace,monospace;padding:.1rem .4rem;border-radius:3px;color:#fff}
.get{background:#2b7a4b}.post{background:#2b5b9a}.delete{background:#a33}.put,.patch{background:#8a6d1f}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}
</style></head><body>
<h1>${escapeHtml(doc.info.title)} <small>${escapeHtml(doc.info.version)}</small></h1>
<p>${escapeHtml(doc.info.description ?? "")}</p>
<p>Machine-readable: <a href="/openapi.json"><code>/openapi.json</code></a> (OpenAPI 3.1).</p>
${sections.join("\n")}
</body></html>`;
}

const SECURITY_RESPONSES = {
  401: "No credentials, or the API key / JWT is not valid (see `WWW-Authenticate`)",
  403: "The credential lacks the grant this route needs for the topic it touches, or the route's mTLS requirement is not met",
  429: "The caller's request budget is spent; retry after `Retry-After` seconds",
} as const;

/**
 * The OpenAPI 3.1 document of every route registered on `root`, with the bearer security scheme
 * (API key or OIDC JWT) and the 401/403/429 answers every protected operation can give.
 */
export function openApiDocument(root: OpenAPIHono<AppEnv>): OpenAPIDocument {
  const doc = root.getOpenAPI31Document(DOCUMENT_CONFIG);
  doc.components = {
    ...doc.components,
    securitySchemes: {
      bearer: {
        type: "http",
        scheme: "bearer",
        description:
          "An Eventline API key (`evl_…`, POST /v1/keys; locally EVENTLINE_ADMIN_KEY from .dev.vars) or a JWT from a configured OIDC issuer. Grants decide what it may do (docs/security.md).",
      },
    },
  };
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    // Paths anyone may call (workers/platform/public-paths.ts); everything else needs a bearer credential.
    if (isPublicPath(path)) continue;
    for (const op of Object.values(item as Record<string, { security?: unknown; responses?: Record<string, unknown> }>)) {
      if (typeof op !== "object" || op === null || op.responses === undefined) continue;
      op.security = [{ bearer: [] }];
      for (const [status, description] of Object.entries(SECURITY_RESPONSES)) {
        op.responses[status] ??= {
          description,
          content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } },
        };
      }
    }
  }
  return doc;
}

export function docsRoutes(root: OpenAPIHono<AppEnv>) {
  let cached: OpenAPIDocument | undefined;
  const document = () => {
    cached ??= openApiDocument(root);
    return cached;
  };
  const app = new OpenAPIHono<AppEnv>();
  app.get("/openapi.json", (c) => c.json(document()));
  app.get("/docs", (c) => c.html(renderReference(document())));
  app.get("/docs/", (c) => c.redirect("/docs", 301));
  return app;
}
