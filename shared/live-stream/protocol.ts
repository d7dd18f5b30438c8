/**
 * The Durable Streams protocol's vocabulary (github.com/durable-streams/durable-streams,
 * PROTOCOL.md), shared by the Worker that speaks HTTP and the LiveStream object that stores a
 * stream: offsets, header names, content-type rules. Offsets are opaque to clients but sortable as
 * strings: `<16 digits>_<16 digits>`, the first part reserved (always zero), the second the byte
 * position in the stream (for JSON streams, the position in the stored serialization).
 */

export const HEADER = {
  nextOffset: "Stream-Next-Offset",
  upToDate: "Stream-Up-To-Date",
  cursor: "Stream-Cursor",
  closed: "Stream-Closed",
  seq: "Stream-Seq",
  ttl: "Stream-TTL",
  expiresAt: "Stream-Expires-At",
  forkedFrom: "Stream-Forked-From",
  forkOffset: "Stream-Fork-Offset",
  forkSubOffset: "Stream-Fork-Sub-Offset",
  sseEncoding: "Stream-SSE-Data-Encoding",
  producerId: "Producer-Id",
  producerEpoch: "Producer-Epoch",
  producerSeq: "Producer-Seq",
  producerExpectedSeq: "Producer-Expected-Seq",
  producerReceivedSeq: "Producer-Received-Seq",
} as const;

/** Largest append (or initial PUT body) accepted: one SQLite row holds it whole (a row's limit is 2 MB). */
export const MAX_APPEND_BYTES = 1024 * 1024;

/** What one catch-up response carries at most (at least one whole append). */
export const MAX_READ_BYTES = 1024 * 1024;

const OFFSET = /^(\d{16})_(\d{16})$/;

export function formatOffset(position: number): string {
  return `${"0".repeat(16)}_${String(position).padStart(16, "0")}`;
}

/** The byte position of a well-formed offset, undefined when malformed (any other shape). */
export function parseOffset(text: string): number | undefined {
  const match = OFFSET.exec(text);
  if (match === null || match[1] !== "0".repeat(16)) return undefined;
  const position = Number(match[2]);
  return Number.isSafeInteger(position) ? position : Number.MAX_SAFE_INTEGER;
}

/** `-1` (the beginning), `now` (the tail) or a position. */
export type ReadFrom = number | "now";

/** Media type without parameters, lower-cased: what two content types are compared by. */
export function mediaType(contentType: string): string {
  return (contentType.split(";")[0] ?? "").trim().toLowerCase();
}

export const isJsonType = (contentType: string): boolean => {
  const type = mediaType(contentType);
  return type === "application/json" || type.endsWith("+json");
};

/** Types whose SSE data events carry text as is; every other type's carry base64. */
export function isTextType(contentType: string): boolean {
  const type = mediaType(contentType);
  return (
    type.startsWith("text/") ||
    isJsonType(type) ||
    type === "application/x-ndjson" ||
    type === "application/xml" ||
    type.endsWith("+xml") ||
    type === "application/javascript"
  );
}

export const DEFAULT_CONTENT_TYPE = "application/octet-stream";

/**
 * Stream names: the path after `/v1/stream/`, the characters grants can name (a-z 0-9 . _ - : /),
 * segments non-empty and never `.` or `..`, at most 256 characters. The grant resource is
 * `stream/<name>` (e.g. `produce:stream/chat/`).
 */
const NAME = /^[a-z0-9._:-]+(\/[a-z0-9._:-]+)*$/;

export function isStreamName(name: string): boolean {
  return name.length <= 256 && NAME.test(name) && !name.split("/").some((s) => s === "." || s === "..");
}

export const streamResource = (name: string) => `stream/${name}`;
