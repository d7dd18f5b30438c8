import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./context";

/**
 * For routes whose JSON body is optional (`body: { required: false }`): an empty body counts as no
 * body, whatever its content type. The OpenAPI validator parses any body sent as JSON, so
 * `curl -X POST -H 'content-type: application/json'` (or a client that always sets the header)
 * would otherwise get "Malformed JSON" for leaving out what the route documents as optional.
 * Goes after the route's access check (which reads the request's `cf`) and before its validator
 * (route middleware runs first); the app's body middleware has already read the body into Hono's
 * cache, so the request is rebuilt without a body and without its content type.
 */
export const optionalJsonBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.header("content-type") !== undefined && (await c.req.text()).trim() === "") {
    const headers = new Headers(c.req.raw.headers);
    headers.delete("content-type");
    headers.delete("content-length");
    c.req.raw = new Request(c.req.url, { method: c.req.method, headers });
  }
  await next();
};
