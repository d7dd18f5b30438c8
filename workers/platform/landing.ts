import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./context";

/**
 * What the printed URL opens (`npm start` and wrangler print the bare origin): a browser asking
 * for `/` is sent to the dashboard, whose sign-in links the API reference and the README; an API
 * client keeps the answer it always had (401 problem document without a credential, 404 with
 * one). Decided by content negotiation (RFC 9110 §12.5.1) on `Accept`: only a request that names
 * HTML explicitly, and does not prefer JSON to it, is a browser's. `*` / `*` (curl's default)
 * names no type, so it stays an API request. ADR 0042.
 */

export const LANDING_PATH = "/dashboard";

const HTML = new Set(["text/html", "application/xhtml+xml"]);
const JSON_TYPES = new Set(["application/json", "application/problem+json"]);

/** The highest q the `Accept` header gives any of `types` by name (0: none named, or all refused). */
function qualityOf(accept: string, types: Set<string>): number {
  let best = 0;
  for (const range of accept.split(",")) {
    const [type = "", ...params] = range.split(";").map((part) => part.trim().toLowerCase());
    if (!types.has(type)) continue;
    const q = params.find((p) => p.startsWith("q="));
    const value = q === undefined ? 1 : Number(q.slice(2));
    if (Number.isFinite(value) && value > best) best = Math.min(value, 1);
  }
  return best;
}

/** True when `accept` asks for HTML at least as much as for JSON (a browser's navigation). */
export function prefersHtml(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  const html = qualityOf(accept, HTML);
  return html > 0 && html >= qualityOf(accept, JSON_TYPES);
}

/** Sends a browser's GET/HEAD of `/` to the dashboard; everything else goes on unchanged. */
export const landing: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.path === "/" && (c.req.method === "GET" || c.req.method === "HEAD") && prefersHtml(c.req.header("accept"))) {
    c.header("vary", "Accept");
    return c.redirect(LANDING_PATH, 302);
  }
  await next();
  if (c.req.path === "/") c.res.headers.append("vary", "Accept");
};
