import type { ReadResult } from "../../../durable-objects/live-stream/types";
import { formatOffset, HEADER, isJsonType, isTextType, MAX_READ_BYTES, type ReadFrom } from "../../../shared/live-stream/protocol";
import { catchUpBody, nextCursor, refusalError, SECURITY_HEADERS } from "./answers";
import type { ReadQuery } from "./request";
import { openWait, type Wait } from "./wait";

/**
 * Catch-up, long-poll and SSE reads of a stream. The Worker holds the client's response; when it
 * has read to the tail it waits on the stream's object through a hibernatable WebSocket
 * (wait.ts) and reads again when the object says the tail moved.
 */

export type ReadOk = Extract<ReadResult, { kind: "read" }>;

export interface StreamReader {
  read(from: ReadFrom, maxBytes: number, touch: boolean): Promise<ReadResult>;
  fetch(input: string, init?: RequestInit): Promise<Response>;
}

async function readOrThrow(stub: StreamReader, from: ReadFrom): Promise<ReadOk> {
  const r = await stub.read(from, MAX_READ_BYTES, true);
  if (r.kind !== "read") throw refusalError(r);
  return r;
}

/** The headers of an answer carrying (or ending at) a read. */
function readHeaders(r: ReadOk): Headers {
  const headers = new Headers(SECURITY_HEADERS);
  headers.set("content-type", r.contentType);
  headers.set(HEADER.nextOffset, formatOffset(r.next));
  if (r.upToDate) headers.set(HEADER.upToDate, "true");
  if (r.closed && r.upToDate) headers.set(HEADER.closed, "true");
  return headers;
}

const etagOf = (r: ReadOk) => `"${r.incarnation}:${r.from}:${r.next}${r.closed && r.upToDate ? ":c" : ""}"`;

/**
 * A read's answer in the mode the request asked for: long-poll, SSE (which lives three waits), or
 * catch-up — the range with its ETag, 304 when `If-None-Match` names it.
 */
export async function answerRead(stub: StreamReader, query: ReadQuery, waitMs: number, ifNoneMatch: string | undefined): Promise<Response> {
  if (query.live === "long-poll") return longPoll(stub, query.from, query.cursor, waitMs);
  if (query.live === "sse") return sse(stub, query.from, query.cursor, 3 * waitMs);
  const r = await readOrThrow(stub, query.from);
  const headers = readHeaders(r);
  const etag = etagOf(r);
  headers.set("etag", etag);
  // The tail moves; a range that ends before it never changes (until the stream is deleted).
  headers.set("cache-control", r.upToDate ? "no-store" : "private, max-age=60");
  if (ifNoneMatch?.split(",").some((tag) => tag.trim() === etag)) return new Response(null, { status: 304, headers });
  return new Response(catchUpBody(r.contentType, r.data), { status: 200, headers });
}

/** `live=long-poll`: data at once if there is some, else wait until there is (200), the stream closes or time is up (204). */
async function longPoll(stub: StreamReader, from: ReadFrom, cursor: string | undefined, waitMs: number): Promise<Response> {
  let r = await readOrThrow(stub, from);
  const answer = (read: ReadOk) => {
    const headers = readHeaders(read);
    headers.set(HEADER.cursor, nextCursor(cursor));
    headers.set("cache-control", "no-store");
    if (read.messages > 0) return new Response(catchUpBody(read.contentType, read.data), { status: 200, headers });
    headers.set(HEADER.upToDate, "true");
    return new Response(null, { status: 204, headers });
  };
  // A filtered partition read can pass whole pages without a match: keep reading to the tail first.
  while (r.messages === 0 && !r.closed && !r.upToDate) r = await readOrThrow(stub, r.next);
  if (r.messages > 0 || r.closed) return answer(r);
  const wait = await openWait(stub, r.next);
  if (!("next" in wait)) return answer(await readOrThrow(stub, r.next));
  const deadline = Date.now() + waitMs;
  try {
    for (;;) {
      const event = await wait.next(deadline - Date.now());
      if (event === "timeout") return answer(r);
      r = await readOrThrow(stub, r.next);
      while (r.messages === 0 && !r.closed && !r.upToDate) r = await readOrThrow(stub, r.next);
      if (r.messages > 0 || r.closed || event === "lost") return answer(r);
    }
  } finally {
    wait.close();
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An idle SSE response writes a comment this often. */
const HEARTBEAT_MS = 5_000;

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.byteLength; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/**
 * A `data` event: JSON streams' values as one array, text as is, anything else base64. Every line
 * of the payload gets its own `data:` field, so a payload's line breaks (CR, LF or CRLF) can never
 * end the event or start another (SSE injection).
 */
export function sseDataEvent(contentType: string, data: Uint8Array): string {
  const text = isJsonType(contentType) ? `[${decoder.decode(data)}]` : isTextType(contentType) ? decoder.decode(data) : base64(data);
  return `event: data\n${text
    .split(/\r\n|\r|\n/)
    .map((line) => `data:${line}`)
    .join("\n")}\n\n`;
}

export function sseControlEvent(r: ReadOk, cursor: string): string {
  const closed = r.closed && r.upToDate;
  const control = {
    streamNextOffset: formatOffset(r.next),
    ...(closed ? { streamClosed: true } : { streamCursor: cursor }),
    ...(r.upToDate ? { upToDate: true } : {}),
  };
  return `event: control\ndata:${JSON.stringify(control)}\n\n`;
}

/**
 * `live=sse`: catch-up as data + control pairs, then each commit as it happens, until the stream
 * closes (a final control with `streamClosed`), is deleted, or `lifetimeMs` passes (the client
 * reconnects from its last `streamNextOffset`).
 */
async function sse(stub: StreamReader, from: ReadFrom, cursor: string | undefined, lifetimeMs: number): Promise<Response> {
  const first = await readOrThrow(stub, from);
  const headers = new Headers(SECURITY_HEADERS);
  headers.set("content-type", "text/event-stream");
  headers.set("cache-control", "no-cache, no-store");
  if (!isTextType(first.contentType)) headers.set(HEADER.sseEncoding, "base64");
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  const streamCursor = nextCursor(cursor);
  const deadline = Date.now() + lifetimeMs;
  let wait: Wait | undefined;
  let gone = false;
  // The client went away (its end of the response cancelled): let the object go at once.
  writer.closed.catch(() => {
    gone = true;
    wait?.close();
  });
  const run = async () => {
    let r = first;
    let emit = true;
    let announced = -1;
    try {
      for (;;) {
        // A data event and its control event in one write: a reader sees them together.
        if (emit) {
          const data = r.messages > 0 ? sseDataEvent(r.contentType, r.data) : "";
          await writer.write(encoder.encode(data + sseControlEvent(r, streamCursor)));
          announced = r.next;
        }
        if (r.closed && r.upToDate) return;
        const position = r.next;
        if (r.upToDate) {
          if (wait === undefined) {
            const opened = await openWait(stub, position);
            if (!("next" in opened)) return;
            wait = opened;
            if (gone) return;
          }
          for (;;) {
            const left = deadline - Date.now();
            const event = await wait.next(Math.min(left, HEARTBEAT_MS));
            if (event === "timeout") {
              if (left <= HEARTBEAT_MS) return;
              // A comment line: keeps proxies from closing an idle response, and a client that has
              // gone is noticed here (the write fails) instead of at the next commit.
              await writer.write(encoder.encode(":\n\n"));
              continue;
            }
            if (event === "lost" || event.ended === true) return;
            if ((event.next ?? 0) > position || event.closed === true) break;
          }
        }
        const next = await stub.read(position, MAX_READ_BYTES, true);
        if (next.kind !== "read") return;
        r = next;
        // A filtered partition read may match nothing: its new offset is still announced at the tail.
        emit = r.messages > 0 || (r.closed && r.upToDate) || (r.upToDate && r.next !== announced);
      }
    } catch {
      // the client went away (a write failed) or the object is unreachable: end the response
    } finally {
      wait?.close();
      await writer.close().catch(() => {});
    }
  };
  void run();
  return new Response(readable, { status: 200, headers });
}
