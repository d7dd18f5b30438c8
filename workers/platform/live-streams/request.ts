import type { Context } from "hono";
import { EventlineError } from "../../../shared/errors";
import { HEADER, isJsonType, isStreamName, MAX_APPEND_BYTES, parseOffset, type ReadFrom } from "../../../shared/live-stream/protocol";
import type { AppEnv } from "../context";
import { readBodyWithLimit } from "../ingest/body";

/**
 * Parsing of Durable Streams requests: the stream name in the path, the protocol's headers and
 * query parameters, and bodies. Anything malformed is a 400 before any object is asked.
 */

export const STREAM_PREFIX = "/v1/stream/";

const bad = (detail: string, path = "/header") => new EventlineError("invalid_parameter", detail, { issues: [{ path, message: detail }] });

/** The stream a request is about (undefined: not a valid name; the handler answers 400). */
export function streamNameOf(path: string): string | undefined {
  let name: string;
  try {
    name = decodeURIComponent(path.slice(STREAM_PREFIX.length));
  } catch {
    return undefined;
  }
  return isStreamName(name) ? name : undefined;
}

export function requireName(c: Context<AppEnv>): string {
  const name = streamNameOf(c.req.path);
  if (name === undefined) {
    throw bad("a stream name is 1-256 characters of a-z 0-9 . _ - : in segments separated by /", "/param/name");
  }
  return name;
}

const NON_NEGATIVE = /^(0|[1-9]\d*)$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;

function integerHeader(c: Context<AppEnv>, name: string): number | undefined {
  const text = c.req.header(name);
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!NON_NEGATIVE.test(text) || !Number.isSafeInteger(value))
    throw bad(`${name} must be a non-negative integer without sign or leading zeros`);
  return value;
}

export function closedHeader(c: Context<AppEnv>): boolean {
  return c.req.header(HEADER.closed)?.toLowerCase() === "true";
}

export interface Expiry {
  ttlSeconds?: number;
  expiresAt?: number;
}

export function expiry(c: Context<AppEnv>): Expiry {
  const ttlSeconds = integerHeader(c, HEADER.ttl);
  const expires = c.req.header(HEADER.expiresAt);
  if (ttlSeconds !== undefined && expires !== undefined) throw bad("give Stream-TTL or Stream-Expires-At, not both");
  if (expires === undefined) return ttlSeconds === undefined ? {} : { ttlSeconds };
  const at = Date.parse(expires);
  if (!RFC3339.test(expires) || Number.isNaN(at)) throw bad("Stream-Expires-At must be an RFC 3339 timestamp");
  return { expiresAt: at };
}

export interface ForkRequest {
  from: string;
  offset?: number;
  subOffset: number;
}

export function forkRequest(c: Context<AppEnv>): ForkRequest | undefined {
  const from = c.req.header(HEADER.forkedFrom);
  const offsetText = c.req.header(HEADER.forkOffset);
  const subOffset = integerHeader(c, HEADER.forkSubOffset);
  if (from === undefined) {
    if (offsetText !== undefined || subOffset !== undefined)
      throw bad("Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From");
    return undefined;
  }
  let path = from;
  if (/^https?:\/\//i.test(from)) {
    try {
      path = new URL(from).pathname;
    } catch {
      throw bad("Stream-Forked-From must name a stream (/v1/stream/<name>)");
    }
  }
  const source = path.startsWith(STREAM_PREFIX) ? streamNameOf(path) : undefined;
  if (source === undefined) throw bad("Stream-Forked-From must name a stream (/v1/stream/<name>)");
  let offset: number | undefined;
  if (offsetText !== undefined) {
    offset = parseOffset(offsetText);
    if (offset === undefined) throw bad("Stream-Fork-Offset is not an offset");
  }
  if ((subOffset ?? 0) > 0 && offset === undefined) throw bad("a Stream-Fork-Sub-Offset above 0 needs Stream-Fork-Offset");
  return { from: source, ...(offset === undefined ? {} : { offset }), subOffset: subOffset ?? 0 };
}

export interface ProducerHeaders {
  id: string;
  epoch: number;
  seq: number;
}

export function producerHeaders(c: Context<AppEnv>): ProducerHeaders | undefined {
  const id = c.req.header(HEADER.producerId);
  const epoch = integerHeader(c, HEADER.producerEpoch);
  const seq = integerHeader(c, HEADER.producerSeq);
  if (id === undefined && epoch === undefined && seq === undefined) return undefined;
  if (id === undefined || epoch === undefined || seq === undefined) throw bad("Producer-Id, Producer-Epoch and Producer-Seq go together");
  if (id.length === 0 || id.length > 256) throw bad("Producer-Id must be 1-256 characters");
  return { id, epoch, seq };
}

export function streamSeq(c: Context<AppEnv>): string | undefined {
  const seq = c.req.header(HEADER.seq);
  if (seq === undefined) return undefined;
  if (seq.length === 0 || seq.length > 256) throw bad("Stream-Seq must be 1-256 characters");
  return seq;
}

export interface Body {
  data: Uint8Array;
  /** JSON streams: values in `data` (their serializations joined by `,`). */
  items?: number;
}

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
const encoder = new TextEncoder();

/**
 * The request body, at most MAX_APPEND_BYTES (413 beyond: one append is one SQLite row). JSON
 * bodies are parsed: an array is flattened one level into its values (`[]` is refused unless
 * `emptyArray`), any other value is one value.
 */
export async function readBody(c: Context<AppEnv>, contentType: string | undefined, emptyArray: boolean): Promise<Body> {
  const raw = await readBodyWithLimit(c.req.raw, MAX_APPEND_BYTES);
  if (raw.byteLength === 0 || contentType === undefined || !isJsonType(contentType)) return { data: raw };
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(raw));
  } catch {
    throw new EventlineError("malformed_request", "the body is not valid JSON");
  }
  const values = Array.isArray(value) ? value : [value];
  if (values.length === 0 && !emptyArray) throw new EventlineError("malformed_request", "an empty JSON array appends nothing");
  return { data: encoder.encode(values.map((v) => JSON.stringify(v)).join(",")), items: values.length };
}

export type LiveMode = "long-poll" | "sse" | undefined;

export interface ReadQuery {
  from: ReadFrom;
  /** Was an offset given (live modes need one)? */
  explicit: boolean;
  live: LiveMode;
  cursor: string | undefined;
}

/** How long a live read waits for a commit (EVENTLINE_LIVE_WAIT_SECONDS, default 20 s), in ms. */
export function liveWaitMs(c: Context<AppEnv>): number {
  const n = Number(c.env.EVENTLINE_LIVE_WAIT_SECONDS);
  return (Number.isFinite(n) && n > 0 ? n : 20) * 1000;
}

export function readQuery(c: Context<AppEnv>): ReadQuery {
  const offsets = c.req.queries("offset") ?? [];
  if (offsets.length > 1) throw bad("give offset once", "/query/offset");
  const text = offsets[0];
  let from: ReadFrom = 0;
  if (text !== undefined && text !== "-1") {
    const position = text === "now" ? "now" : parseOffset(text);
    if (position === undefined) throw bad("offset must be -1, now, or an offset this stream returned", "/query/offset");
    from = position;
  }
  const live = c.req.query("live");
  if (live !== undefined && live !== "long-poll" && live !== "sse") throw bad("live must be long-poll or sse", "/query/live");
  if (live !== undefined && text === undefined) throw bad(`live=${live} needs an offset`, "/query/offset");
  return { from, explicit: text !== undefined, live, cursor: c.req.query("cursor") };
}
