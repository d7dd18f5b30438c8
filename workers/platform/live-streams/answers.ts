import type { Refusal, StreamStatus } from "../../../durable-objects/live-stream/types";
import { EventlineError } from "../../../shared/errors";
import { formatOffset, HEADER, isJsonType } from "../../../shared/live-stream/protocol";

/**
 * How the LiveStream object's results become HTTP answers: the protocol's headers, and its
 * refusals as problem+json errors (the app's onError renders them, with these headers kept).
 */

/** On every /v1/stream/* response, errors included: the protocol's browser-safety headers and CORS. */
export const SECURITY_HEADERS: Record<string, string> = {
  "X-Content-Type-Options": "nosniff",
  "Cross-Origin-Resource-Policy": "cross-origin",
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Expose-Headers":
    "Stream-Next-Offset, Stream-Up-To-Date, Stream-Cursor, Stream-Closed, Stream-TTL, Stream-Expires-At, Stream-SSE-Data-Encoding, Producer-Epoch, Producer-Seq, Producer-Expected-Seq, Producer-Received-Seq, ETag, Location",
};

/** A CORS preflight's answer: credentials travel as a bearer token, never as cookies. */
export const PREFLIGHT_HEADERS: Record<string, string> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
  "Access-Control-Allow-Headers":
    "Authorization, Content-Type, If-None-Match, Stream-Seq, Stream-TTL, Stream-Expires-At, Stream-Closed, Stream-Forked-From, Stream-Fork-Offset, Stream-Fork-Sub-Offset, Producer-Id, Producer-Epoch, Producer-Seq",
  "Access-Control-Max-Age": "86400",
};

/** Headers every answer about an existing stream carries. */
export function statusHeaders(status: StreamStatus, headers: Headers = new Headers()): Headers {
  headers.set(HEADER.nextOffset, formatOffset(status.next));
  if (status.closed) headers.set(HEADER.closed, "true");
  return headers;
}

export function refusalError(refusal: Refusal): EventlineError {
  switch (refusal.kind) {
    case "not_found":
      return new EventlineError("not_found", "no such stream");
    case "gone":
      return new EventlineError("gone", "the stream was deleted (forks of it still read its data)");
    case "bad_request":
      return new EventlineError("invalid_parameter", refusal.detail, { issues: [{ path: "/header", message: refusal.detail }] });
    case "conflict":
      return new EventlineError("conflict", refusal.detail, {
        ...(refusal.status === undefined ? {} : { headers: Object.fromEntries(statusHeaders(refusal.status)) }),
      });
  }
}

const encoder = new TextEncoder();

/** A catch-up body: JSON streams as one array of their values, other streams as their bytes. */
export function catchUpBody(contentType: string, data: Uint8Array): Uint8Array {
  if (!isJsonType(contentType)) return data;
  const body = new Uint8Array(data.byteLength + 2);
  body.set(encoder.encode("["), 0);
  body.set(data, 1);
  body.set(encoder.encode("]"), data.byteLength + 1);
  return body;
}

/** Milliseconds since this date, in 20 s intervals, name a long-poll cursor (CDN request collapsing). */
const CURSOR_EPOCH = Date.UTC(2024, 9, 9);
const CURSOR_INTERVAL_MS = 20_000;

/**
 * The `Stream-Cursor` of a live answer: the current interval, or, when the client already sent
 * that one or a later one (a cached answer would come back), a later one with a little jitter.
 */
export function nextCursor(given: string | undefined, now = Date.now()): string {
  const current = Math.floor((now - CURSOR_EPOCH) / CURSOR_INTERVAL_MS);
  const previous = given !== undefined && /^\d{1,15}$/.test(given) ? Number(given) : -1;
  return String(previous >= current ? previous + 1 + Math.floor(Math.random() * 10) : current);
}
