import { Hono } from "hono";
import type { AppEnv } from "../context";
import { DASHBOARD_ASSETS } from "../dashboard/assets";

/**
 * The live dashboard: a page shell, its script, stylesheet and icon. They are public (the auth
 * middleware's PUBLIC paths) and hold no data; every data call the page makes goes to the
 * authenticated API with the user's bearer credential. Not part of the OpenAPI document.
 */

/** Only same-origin script, style, images and fetches; no inline code, no framing, no form posts. */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "font-src 'none'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

function serve(asset: { body: string; type: string }): Response {
  return new Response(asset.body, {
    headers: {
      "content-type": asset.type,
      "content-security-policy": DASHBOARD_CSP,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "x-frame-options": "DENY",
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-resource-policy": "same-origin",
      // Small and versioned with the Worker: revalidate so a deploy shows at once.
      "cache-control": "no-cache",
    },
  });
}

export function dashboardRoutes() {
  const app = new Hono<AppEnv>();
  for (const [path, asset] of Object.entries(DASHBOARD_ASSETS)) app.get(path, () => serve(asset));
  app.get("/dashboard/", (c) => c.redirect("/dashboard", 301));
  return app;
}
