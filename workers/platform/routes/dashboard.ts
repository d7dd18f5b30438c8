import { Hono } from "hono";
import type { AppEnv } from "../context";
import { DASHBOARD_ASSETS } from "../dashboard/assets";
import { browserHeaders, selfOnlyCsp } from "../security-headers";

/**
 * The live dashboard: a page shell, its script, stylesheet and icon. They are public (the auth
 * middleware's PUBLIC paths) and hold no data; every data call the page makes goes to the
 * authenticated API with the user's bearer credential. Not part of the OpenAPI document.
 */

/** Only same-origin script, style, images and fetches; no inline code, no framing, no form posts. */
export const DASHBOARD_CSP = selfOnlyCsp();

// Small and versioned with the Worker: revalidate so a deploy shows at once.
const serve = (asset: { body: string; type: string }): Response =>
  new Response(asset.body, { headers: browserHeaders(asset.type, DASHBOARD_CSP, "no-cache") });

export function dashboardRoutes() {
  const app = new Hono<AppEnv>();
  for (const [path, asset] of Object.entries(DASHBOARD_ASSETS)) app.get(path, () => serve(asset));
  app.get("/dashboard/", (c) => c.redirect("/dashboard", 301));
  return app;
}
