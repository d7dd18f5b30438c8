import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import type { AppendResult } from "../../../durable-objects/live-stream/types";
import { EventlineError } from "../../../shared/errors";
import { DEFAULT_CONTENT_TYPE, HEADER, streamResource } from "../../../shared/live-stream/protocol";
import { access, deny } from "../auth/access";
import type { AppEnv } from "../context";
import { PREFLIGHT_HEADERS, refusalError, SECURITY_HEADERS, statusHeaders } from "./answers";
import { answerRead } from "./live";
import { documentLiveStreamRoutes } from "./openapi";
import {
  closedHeader,
  expiry,
  forkRequest,
  liveWaitMs,
  producerHeaders,
  readBody,
  readQuery,
  requireName,
  STREAM_PREFIX,
  streamNameOf,
  streamSeq,
} from "./request";

/**
 * The Durable Streams protocol at `/v1/stream/*` (docs/live-streams.md): PUT creates (or forks),
 * POST appends or closes, GET reads (catch-up, long-poll, SSE), HEAD describes, DELETE deletes.
 * Every request is authenticated like any other; grants name `stream/<name>` patterns: `produce`
 * to create and append, `consume` to read (and, on the source, to fork), `admin` to delete.
 */

const PATH = `${STREAM_PREFIX}*`;

/** The grant resource of the request's stream (undefined for a malformed name: the handler answers 400). */
const streamTopic = (c: Context<AppEnv>) => {
  const name = streamNameOf(c.req.path);
  return name === undefined ? undefined : streamResource(name);
};

const stubOf = (c: Context<AppEnv>, name: string) => c.env.LIVE_STREAM.getByName(name);

/** CORS preflights of /v1/stream/* carry no credentials: answered before authentication, with nothing about any stream. */
export const liveStreamPreflight: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.method === "OPTIONS" && c.req.path.startsWith(STREAM_PREFIX)) {
    return new Response(null, { status: 204, headers: { ...PREFLIGHT_HEADERS, ...SECURITY_HEADERS } });
  }
  await next();
};

function appendAnswer(r: AppendResult, hasBody: boolean): Response {
  if (r.kind === "not_found" || r.kind === "gone" || r.kind === "bad_request" || r.kind === "conflict") throw refusalError(r);
  const headers = statusHeaders(r, new Headers(SECURITY_HEADERS));
  switch (r.kind) {
    case "appended":
    case "duplicate":
      if (r.producer !== undefined) {
        headers.set(HEADER.producerEpoch, String(r.producer.epoch));
        headers.set(HEADER.producerSeq, String(r.producer.seq));
      }
      return new Response(null, { status: r.kind === "appended" && r.producer !== undefined && hasBody ? 200 : 204, headers });
    case "closed":
      throw new EventlineError("conflict", "the stream is closed", { headers: Object.fromEntries(headers) });
    case "stale_epoch":
      headers.set(HEADER.producerEpoch, String(r.epoch));
      throw new EventlineError("forbidden", `a newer Producer-Epoch (${r.epoch}) fenced this producer`, {
        headers: Object.fromEntries(headers),
      });
    case "sequence_gap":
      headers.set(HEADER.producerExpectedSeq, String(r.expected));
      headers.set(HEADER.producerReceivedSeq, String(r.received));
      throw new EventlineError("conflict", `Producer-Seq ${r.received} skips ${r.expected}`, { headers: Object.fromEntries(headers) });
    case "seq_conflict":
      throw new EventlineError("conflict", r.detail, { headers: Object.fromEntries(headers) });
  }
}

export function liveStreamRoutes() {
  const app = new OpenAPIHono<AppEnv>();
  documentLiveStreamRoutes(app);

  app.use(PATH, async (c, next) => {
    await next();
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) c.res.headers.set(name, value);
  });

  app.put(PATH, access({ group: "ingest", action: "produce", topic: streamTopic }), async (c) => {
    const name = requireName(c);
    const fork = forkRequest(c);
    if (fork !== undefined) {
      const denied = deny(c.get("config"), c.get("principal"), "consume", streamResource(fork.from));
      if (denied !== undefined) throw new EventlineError("forbidden", `forking reads the source: ${denied}`);
    }
    const contentType = c.req.header("content-type");
    const body = await readBody(c, contentType ?? (fork === undefined ? DEFAULT_CONTENT_TYPE : undefined), true);
    const r = await stubOf(c, name).create({
      ...(contentType === undefined ? {} : { contentType }),
      ...expiry(c),
      closed: closedHeader(c),
      ...(fork === undefined ? {} : { fork }),
      ...(body.data.byteLength === 0 ? {} : { body: body.data }),
      ...(body.items === undefined ? {} : { items: body.items }),
    });
    if (r.kind !== "created" && r.kind !== "exists") throw refusalError(r);
    const headers = statusHeaders(r, new Headers(SECURITY_HEADERS));
    headers.set("content-type", r.contentType);
    if (r.kind === "exists") return new Response(null, { status: 200, headers });
    headers.set("location", new URL(c.req.url).href);
    return new Response(null, { status: 201, headers });
  });

  app.post(PATH, access({ group: "ingest", action: "produce", topic: streamTopic }), async (c) => {
    const name = requireName(c);
    const contentType = c.req.header("content-type");
    const close = closedHeader(c);
    const producer = producerHeaders(c);
    const seq = streamSeq(c);
    const body = await readBody(c, contentType, false);
    const hasBody = body.data.byteLength > 0;
    if (!hasBody && !close) throw new EventlineError("malformed_request", "an append needs a body (or Stream-Closed: true to close)");
    if (hasBody && contentType === undefined) throw new EventlineError("malformed_request", "an append needs a Content-Type");
    const r = await stubOf(c, name).append({
      ...(contentType === undefined ? {} : { contentType }),
      ...(hasBody ? { body: body.data } : {}),
      ...(body.items === undefined ? {} : { items: body.items }),
      close,
      ...(seq === undefined ? {} : { seq }),
      ...(producer === undefined ? {} : { producer }),
    });
    return appendAnswer(r, hasBody);
  });

  app.get(PATH, access({ group: "read", action: "consume", topic: streamTopic }), async (c) => {
    const name = requireName(c);
    const stub = stubOf(c, name);
    if (c.req.method === "HEAD") {
      const r = await stub.head();
      if (r.kind !== "head") throw refusalError(r);
      const headers = statusHeaders(r, new Headers(SECURITY_HEADERS));
      headers.set("content-type", r.contentType);
      headers.set("cache-control", "no-store");
      if (r.ttlSeconds !== null) headers.set(HEADER.ttl, String(r.ttlSeconds));
      if (r.expiresAt !== null) headers.set(HEADER.expiresAt, new Date(r.expiresAt).toISOString());
      return new Response(null, { status: 200, headers });
    }
    return answerRead(stub, readQuery(c), liveWaitMs(c), c.req.header("if-none-match"));
  });

  app.delete(PATH, access({ group: "admin", action: "admin", topic: streamTopic }), async (c) => {
    const name = requireName(c);
    const r = await stubOf(c, name).remove();
    if (r.kind !== "deleted") throw refusalError(r);
    return new Response(null, { status: 204, headers: SECURITY_HEADERS });
  });

  return app;
}
