/** W3C Trace Context (https://www.w3.org/TR/trace-context/) helpers. */

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const TRACESTATE_MAX = 512;

/** Version 00 layout; an all-zero trace or span id, or version ff, is invalid. */
export function isValidTraceparent(value: string): boolean {
  const m = TRACEPARENT.exec(value);
  if (!m) return false;
  const [, version, traceId, spanId] = m;
  if (version === "ff") return false;
  return !/^0+$/.test(traceId ?? "") && !/^0+$/.test(spanId ?? "");
}

/** A tracestate we are willing to carry: printable ASCII list members, bounded length. */
export function isValidTracestate(value: string): boolean {
  return value.length > 0 && value.length <= TRACESTATE_MAX && /^[\x20-\x7e]+$/.test(value);
}

function randomHex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return [...buf].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export function newTraceparent(): string {
  return `00-${randomHex(16)}-${randomHex(8)}-01`;
}

/** The header's traceparent when valid (a malformed one restarts the trace, as the spec says). */
export function traceparentFromHeader(value: string | null | undefined): string | undefined {
  return value && isValidTraceparent(value.trim()) ? value.trim() : undefined;
}
