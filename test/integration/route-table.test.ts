import { describe, expect, it } from "vitest";
import { createApp } from "../../workers/platform/app";
import { isPublicPath } from "../../workers/platform/public-paths";
import { allowedMethods, pathPattern, routeTable } from "../../workers/platform/route-table";
import { anonymousRequest, expectProblem, request } from "../helpers";

/**
 * 405 + Allow come from the registered routes (workers/platform/route-table.ts), not from a table
 * kept by hand. The expectations below are the hand-kept table the derivation replaced (same
 * shapes, same methods), so the change is checked to be behaviour-preserving, and every registered
 * route is checked end to end with a method it does not allow.
 */

const BEFORE: [string, string[]][] = [
  ["/v1/topics", ["GET", "HEAD"]],
  ["/v1/topics/t", ["GET", "HEAD"]],
  ["/v1/topics/t/events", ["POST"]],
  ["/v1/topics/t/archive", ["GET", "HEAD", "POST"]],
  ["/v1/topics/t/partitions/0/events", ["GET", "HEAD"]],
  ["/v1/topics/t/partitions/0/events/1/trace", ["GET", "HEAD"]],
  ["/v1/topics/t/streams/s", ["GET", "HEAD"]],
  ["/v1/topics/t/streams/s/events", ["GET", "HEAD", "POST"]],
  ["/v1/orders", ["GET", "HEAD", "POST"]],
  ["/v1/orders/o", ["GET", "HEAD"]],
  ["/v1/orders/o/pay", ["POST"]],
  ["/v1/customers/c/summary", ["GET", "HEAD"]],
  ["/v1/replays", ["GET", "HEAD", "POST"]],
  ["/v1/replays/r", ["GET", "HEAD", "DELETE"]],
  ["/v1/projections/p/rebuild", ["POST"]],
  ["/v1/subscriptions", ["GET", "HEAD", "POST"]],
  ["/v1/subscriptions/s", ["GET", "HEAD", "DELETE"]],
  ["/v1/subscriptions/s/dlq", ["GET", "HEAD"]],
  ["/v1/subscriptions/s/dlq/redrive", ["POST"]],
  ["/v1/subscriptions/s/secret:rotate", ["POST"]],
  ["/v1/keys", ["GET", "HEAD", "POST"]],
  ["/v1/keys/k", ["GET", "HEAD", "DELETE"]],
  ["/v1/keys/k/rotate", ["POST"]],
  ["/v1/audit", ["GET", "HEAD"]],
  ["/v1/subjects/s/keys", ["DELETE"]],
  ["/v1/encryption", ["GET", "HEAD"]],
  ["/v1/encryption/rewrap", ["POST"]],
  ["/v1/metrics", ["GET", "HEAD"]],
  ["/v1/health", ["GET", "HEAD"]],
  ["/openapi.json", ["GET", "HEAD"]],
  ["/docs", ["GET", "HEAD"]],
  ["/docs/", ["GET", "HEAD"]],
  ["/dashboard", ["GET", "HEAD"]],
  ["/dashboard/", ["GET", "HEAD"]],
  ["/health", ["GET", "HEAD"]],
];

describe("405 table derived from the registered routes", () => {
  const app = createApp();
  const table = routeTable(app.routes);

  it.each(BEFORE)("%s allows what the hand-kept table said", (path, methods) => {
    expect(allowedMethods(table, path)).toEqual(methods);
  });

  it("knows nothing of paths no route has", () => {
    expect(allowedMethods(table, "/v1/nope")).toBeUndefined();
    expect(allowedMethods(table, "/v1/topics/t/events/extra/deep")).toBeUndefined();
    expect(pathPattern("/v1/topics/:topic/events").test("/v1/topics/a/b/events")).toBe(false);
  });

  it("every registered route answers a method it does not allow with 405, Allow and a problem document", async () => {
    const shapes = [...new Set(app.routes.filter((r) => r.method !== "ALL" && !r.path.includes("*")).map((r) => r.path))];
    expect(shapes.length).toBeGreaterThan(30);
    for (const shape of shapes) {
      const path = shape
        .split("/")
        .map((segment) => (segment.startsWith(":") ? "x" : segment))
        .join("/");
      const allowed = allowedMethods(table, path) ?? [];
      const method = ["PATCH", "PUT", "DELETE", "POST"].find((m) => !allowed.includes(m)) ?? "PATCH";
      const res = await request(path, { method });
      const problem = await expectProblem(res, 405);
      expect(problem.code, `${method} ${path}`).toBe("method_not_allowed");
      expect(res.headers.get("allow"), `${method} ${path}`).toBe(allowed.join(", "));
    }
  });
});

describe("public paths, checked against the registered routes", () => {
  const app = createApp();
  const shapes = [...new Set(app.routes.filter((r) => r.method === "GET" && !r.path.includes("*")).map((r) => r.path))];

  it("every public path is a registered route, and answers without a credential", async () => {
    const publicShapes = shapes.filter(isPublicPath);
    expect(publicShapes).toEqual(expect.arrayContaining(["/health", "/openapi.json", "/docs", "/dashboard"]));
    for (const path of publicShapes) {
      const res = await anonymousRequest(path, { redirect: "manual" });
      expect(res.status, path).toBeLessThan(400);
    }
  });

  it("every other route needs a credential (401 without one)", async () => {
    for (const shape of shapes.filter((path) => !isPublicPath(path))) {
      const path = shape
        .split("/")
        .map((segment) => (segment.startsWith(":") ? "x" : segment))
        .join("/");
      const res = await anonymousRequest(path, { redirect: "manual" });
      expect(res.status, path).toBe(401);
      await res.body?.cancel();
    }
  });
});
