import { OpenAPIHono } from "@hono/zod-openapi";
import { EventlineError } from "../../../shared/errors";
import type { AppEnv } from "../context";
import { isPublicPath } from "../public-paths";
import { EVENTLINE_VERSION, REFERENCE_CSP, REFERENCE_PAGE, REFERENCE_SCRIPT_PATH } from "../reference/page";
import { browserHeaders } from "../security-headers";

type OpenAPIDocument = ReturnType<OpenAPIHono["getOpenAPI31Document"]>;

const DESCRIPTION = `CloudEvents ingest into partitioned, ordered, durable logs on Cloudflare's edge.

## Authentication

Every operation except \`/health\`, \`/openapi.json\` and \`/docs\` needs a bearer credential:
\`Authorization: Bearer <credential>\`. The credential is either

- an **Eventline API key** (\`evl_…\`), minted with \`POST /v1/keys\` by an admin. A local stack's bootstrap admin key is \`EVENTLINE_ADMIN_KEY\` in \`.dev.vars\`; or
- a **JWT** from an OIDC issuer configured in \`eventline.config.ts\` (asymmetric algorithms only; \`iss\`, \`aud\`, \`exp\` and \`sub\` required).

The credential's **grants** (an action — \`produce\`, \`consume\`, \`replay\`, \`admin\`, \`decrypt\` — on a topic pattern) decide what it may do.
A missing or invalid credential is \`401\` with \`WWW-Authenticate: Bearer\`; a valid one without the grant is \`403\`; a spent request budget is \`429\` with \`Retry-After\`.
In this reference, set the token under *Authentication* (scheme \`bearer\`) and "Test Request" sends it.

## Errors and timestamps

Errors are RFC 9457 problem documents (\`application/problem+json\`) carrying a \`requestId\` and, for validation failures, \`issues\` with JSON Pointer paths.
Timestamps in responses are RFC 3339 strings in UTC.`;

const DOCUMENT_CONFIG = {
  openapi: "3.1.0",
  info: { title: "Eventline API", version: EVENTLINE_VERSION, description: DESCRIPTION },
} as const;

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

/** The renderer's headers: JavaScript, named by its version, so browsers keep it for a year. */
const SCRIPT_HEADERS = browserHeaders("text/javascript; charset=utf-8", REFERENCE_CSP, "public, max-age=31536000, immutable");

export function docsRoutes(root: OpenAPIHono<AppEnv>) {
  let cached: OpenAPIDocument | undefined;
  const document = () => {
    cached ??= openApiDocument(root);
    return cached;
  };
  const app = new OpenAPIHono<AppEnv>();
  app.get("/openapi.json", (c) => c.json(document()));
  app.get("/docs", () => new Response(REFERENCE_PAGE, { headers: browserHeaders("text/html; charset=utf-8", REFERENCE_CSP, "no-cache") }));
  app.get("/docs/", (c) => c.redirect("/docs", 301));
  app.get(REFERENCE_SCRIPT_PATH, async (c) => {
    const asset = await c.env.ASSETS.fetch(new URL(REFERENCE_SCRIPT_PATH, c.req.url));
    if (!asset.ok) {
      await asset.body?.cancel();
      // The asset is copied by scripts/build-reference.mjs before every wrangler dev/deploy (ADR 0043).
      throw new EventlineError("unavailable", `the API reference's renderer is missing from the Worker's assets (${asset.status})`);
    }
    return new Response(asset.body, { headers: SCRIPT_HEADERS });
  });
  return app;
}
