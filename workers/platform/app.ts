import { OpenAPIHono } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import defaultConfig from "../../eventline.config";
import { createLogger } from "../../sdk/logger";
import { newTraceparent, traceparentFromHeader } from "../../sdk/trace";
import type { EventlineConfig } from "../../shared/config";
import { EventlineError, problemResponse } from "../../shared/errors";
import { assertJsonDepth, exceedsJsonMembers, illFormedStringAt, JsonDepthError } from "../../shared/json";
import { authentication } from "./auth/access";
import type { AppEnv } from "./context";
import { hostedExamples } from "./hosting";
import { readBodyWithLimit } from "./ingest/body";
import { landing } from "./landing";
import { partitionStreamRoutes } from "./live-streams/partition";
import { liveStreamPreflight, liveStreamRoutes } from "./live-streams/routes";
import { recordIngestReject } from "./metrics-model";
import { allowedMethods, type RouteEntry, routeTable } from "./route-table";
import { asyncApiRoutes } from "./routes/asyncapi";
import { auditRoutes } from "./routes/audit";
import { dashboardRoutes } from "./routes/dashboard";
import { docsRoutes } from "./routes/docs";
import { encryptionRoutes } from "./routes/encryption";
import { ingestRoutes } from "./routes/ingest";
import { keyRoutes } from "./routes/keys";
import { metricsRoutes } from "./routes/metrics";
import { processorRoutes } from "./routes/processors";
import { replayRoutes } from "./routes/replays";
import { schemaRegistrationRoutes } from "./routes/schema-registration";
import { schemaReadRoutes } from "./routes/schemas";
import { streamRoutes } from "./routes/streams";
import { subscriptionAdminRoutes } from "./routes/subscription-admin";
import { subscriptionSecretRoutes } from "./routes/subscription-secrets";
import { subscriptionRoutes } from "./routes/subscriptions";
import { topicRoutes } from "./routes/topics";
import { traceRoutes } from "./routes/trace";
import { invalidParameter } from "./validation";

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** JSON bodies of the admin and command routes (ingest has its own, larger limits). */
const MAX_ADMIN_BODY_BYTES = 64 * 1024;
const EVENT_BODY = /\/events$/;
/** Durable Streams bodies are bytes of any type, with their own limit (live-streams/request.ts). */
const LIVE_STREAM_BODY = /^\/v1\/stream\//;
const MAX_ADMIN_JSON_DEPTH = 16;
/**
 * JSON Schemas nest deeper than admin bodies and are limited by their own size check
 * (workers/platform/schemas/submitted.ts): a schema of 64 KiB canonical JSON fits pretty-printed.
 */
const SCHEMA_BODY = /^\/v1\/topics\/[^/]+\/types\/[^/]+\/(?:schemas|compatibility)$/;
const MAX_SCHEMA_BODY_BYTES = 256 * 1024;
const MAX_SCHEMA_JSON_DEPTH = 64;

const PERCENT_RUNS = /(?:%[0-9A-Fa-f]{2})+/g;

function decodesAsUtf8(run: string): boolean {
  try {
    decodeURIComponent(run);
    return true;
  } catch {
    return false;
  }
}

export interface AppOptions {
  /** Outbound fetch for JWKS (tests count it). */
  fetch?: typeof fetch;
  /** Seconds a client stays locked out after its failed-authentication budget is spent (default 10, the RATE_LIMIT period). */
  lockoutSeconds?: number;
}

/**
 * Builds the platform app: request id + logging, authentication and rate limits, error rendering,
 * routes (each declaring its access), OpenAPI document. Tests pass their own config to try
 * security settings (OIDC issuers, mTLS) the shipped config does not use.
 */
export function createApp(config: EventlineConfig = defaultConfig, options: AppOptions = {}) {
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw invalidParameter(result.error.issues, result.target);
    },
  });

  app.use(async (c, next) => {
    const started = Date.now();
    const given = c.req.header("x-request-id");
    const requestId = given !== undefined && REQUEST_ID.test(given) ? given : crypto.randomUUID();
    const incoming = traceparentFromHeader(c.req.header("traceparent"));
    c.set("requestId", requestId);
    c.set("config", config);
    c.set("incomingTraceparent", incoming);
    c.set("traceparent", incoming ?? newTraceparent());
    c.set("log", createLogger({ requestId }));
    await next();
    c.res.headers.set("x-request-id", requestId);
    c.get("log").info("request", {
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      durationMs: Date.now() - started,
      traceparent: c.get("traceparent"),
    });
  });

  app.onError((err, c) => {
    const requestId = c.get("requestId") ?? crypto.randomUUID();
    // Rejected ingest requests are counted by topic and status (docs/observability.md "Metrics and health").
    const status = err instanceof EventlineError ? err.status : err instanceof HTTPException && err.status < 500 ? 400 : 500;
    recordIngestReject(c, status, err instanceof EventlineError ? err.code : status === 400 ? "malformed_request" : "internal");
    if (err instanceof EventlineError) {
      if (err.status >= 500) c.get("log")?.warn("request failed", { code: err.code, detail: err.detail });
      return problemResponse(err, requestId, c.req.path);
    }
    // Hono's body validators throw these for a body that is not JSON (or not the declared type).
    if (err instanceof HTTPException && err.status < 500) {
      return problemResponse(new EventlineError("malformed_request", err.message || "malformed request body"), requestId, c.req.path);
    }
    c.get("log")?.error("unhandled error", { error: err, path: c.req.path });
    return problemResponse(
      new EventlineError("internal", "an unexpected error occurred; it has been logged with this request id"),
      requestId,
      c.req.path,
    );
  });

  let table: RouteEntry[] | undefined;
  app.notFound((c) => {
    const requestId = c.get("requestId") ?? crypto.randomUUID();
    // Every route is mounted by the time a request arrives: the table is built once, from them.
    table ??= routeTable(app.routes);
    const methods = allowedMethods(table, c.req.path);
    if (methods !== undefined) {
      const allow = methods.join(", ");
      return problemResponse(
        new EventlineError("method_not_allowed", `${c.req.method} is not allowed on ${c.req.path}; allowed: ${allow}`, {
          headers: { allow },
        }),
        requestId,
        c.req.path,
      );
    }
    return problemResponse(new EventlineError("not_found", `no route for ${c.req.method} ${c.req.path}`), requestId, c.req.path);
  });

  // Before authentication: a browser opening the bare origin has no credential yet.
  app.use(landing);
  app.use(liveStreamPreflight);
  app.use(authentication(config, options));
  // Hono keeps a percent-encoded run that is not UTF-8 (e.g. %ED%BF%BF, a lone surrogate) as raw
  // text in the path parameter: a route would act on another subject, stream or id than the one
  // meant. Refused here, for every route (names in paths become keys; docs/security.md).
  app.use(async (c, next) => {
    const undecodable = new URL(c.req.url).pathname.match(PERCENT_RUNS)?.find((run) => !decodesAsUtf8(run));
    if (undecodable !== undefined) {
      throw new EventlineError("invalid_parameter", "the path holds percent-encoded bytes that are not UTF-8", {
        issues: [{ path: "/param", message: `${undecodable} does not decode to well-formed Unicode` }],
      });
    }
    await next();
  });
  // Admin and command bodies: bounded size, counted on the stream (a lying or absent
  // Content-Length does not help), and JSON bounded in depth and members before any validator
  // walks it. The body read here is what the route's validators parse (Hono's body cache).
  app.use(async (c, next) => {
    if (c.req.method === "GET" || c.req.method === "HEAD" || EVENT_BODY.test(c.req.path) || LIVE_STREAM_BODY.test(c.req.path))
      return next();
    const schemaBody = SCHEMA_BODY.test(c.req.path);
    const maxDepth = schemaBody ? MAX_SCHEMA_JSON_DEPTH : MAX_ADMIN_JSON_DEPTH;
    const text = new TextDecoder().decode(await readBodyWithLimit(c.req.raw, schemaBody ? MAX_SCHEMA_BODY_BYTES : MAX_ADMIN_BODY_BYTES));
    // Hono keeps the pending read per body type; `text` is where json() and the validators look first.
    (c.req.bodyCache as Record<string, unknown>).text = Promise.resolve(text);
    if ((c.req.header("content-type") ?? "").includes("json") && text.trim() !== "") {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return next(); // the route's validator reports the malformed JSON
      }
      try {
        assertJsonDepth(body, maxDepth);
      } catch (err) {
        if (err instanceof JsonDepthError) throw new EventlineError("malformed_request", `JSON nested deeper than ${maxDepth} levels`);
        throw err;
      }
      if (exceedsJsonMembers(body)) throw new EventlineError("malformed_request", "too many JSON members in the body");
      // Names, ids and grants in these bodies become keys (D1 rows, read models, audit subjects).
      const illFormed = illFormedStringAt(body);
      if (illFormed !== undefined) {
        throw new EventlineError("malformed_request", "the body holds a string that is not well-formed Unicode", {
          issues: [{ path: illFormed, message: "a lone UTF-16 surrogate (\\uD800-\\uDFFF) has no UTF-8 form" }],
        });
      }
    }
    await next();
  });

  app.get("/health", (c) => c.json({ status: "ok" }));
  app.route("/", ingestRoutes(config));
  app.route("/", topicRoutes(config));
  app.route("/", schemaReadRoutes(config));
  app.route("/", schemaRegistrationRoutes(config));
  app.route("/", traceRoutes(config));
  app.route("/", streamRoutes(config));
  app.route("/", replayRoutes(config));
  app.route("/", subscriptionRoutes(config));
  app.route("/", subscriptionAdminRoutes(config));
  app.route("/", subscriptionSecretRoutes());
  app.route("/", processorRoutes(config));
  app.route("/", keyRoutes(config));
  app.route("/", auditRoutes(config));
  app.route("/", encryptionRoutes());
  app.route("/", metricsRoutes(config));
  app.route("/", asyncApiRoutes(config));
  app.route("/", docsRoutes(app));
  app.route("/", dashboardRoutes());
  // Applications the platform hosts (workers/platform/hosting.ts): their routes beside the platform's.
  for (const example of hostedExamples) if (example.routes !== undefined) app.route("/", example.routes(config));
  // Durable Streams (/v1/stream/*) and live partition reads last: the OpenAPI document keeps its order.
  app.route("/", partitionStreamRoutes(config));
  app.route("/", liveStreamRoutes());
  return app;
}
