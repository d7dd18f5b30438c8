/** W3C Trace Context (https://www.w3.org/TR/trace-context/) helpers. */

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const TRACESTATE_MAX = 512;

/** What a child span keeps of a valid traceparent. */
interface ParsedTraceparent {
  traceId: string;
  flags: string;
}

/** One match and check of a traceparent, so a caller that needs its parts does not validate twice. */
function parseTraceparent(value: string): ParsedTraceparent | undefined {
  const m = TRACEPARENT.exec(value);
  if (!m) return undefined;
  const [, version, traceId = "", spanId = "", flags = ""] = m;
  if (version === "ff" || /^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, flags };
}

/** Version 00 layout; an all-zero trace or span id, or version ff, is invalid. */
export function isValidTraceparent(value: string): boolean {
  return parseTraceparent(value) !== undefined;
}

/** A tracestate we are willing to carry: printable ASCII list members, bounded length. */
export function isValidTracestate(value: string): boolean {
  return value.length > 0 && value.length <= TRACESTATE_MAX && /^[\x20-\x7e]+$/.test(value);
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

function randomHex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  let hex = "";
  for (let i = 0; i < buf.length; i++) hex += HEX[buf[i] as number];
  return hex;
}

export function newTraceparent(): string {
  return `00-${randomHex(16)}-${randomHex(8)}-01`;
}

/** The header's traceparent when valid (a malformed one restarts the trace, as the spec says). */
export function traceparentFromHeader(value: string | null | undefined): string | undefined {
  return value && isValidTraceparent(value.trim()) ? value.trim() : undefined;
}

/**
 * A child of `parent` (W3C Trace Context): the same trace id and trace flags, a new parent id —
 * the span of whoever acts on the parent's behalf. An invalid `parent` starts a new trace.
 */
export function childTraceparent(parent: string): string {
  const parsed = parseTraceparent(parent);
  return parsed === undefined ? newTraceparent() : childOf(parsed);
}

/** A child of an already parsed (so valid) traceparent. */
const childOf = ({ traceId, flags }: ParsedTraceparent) => `00-${traceId}-${randomHex(8)}-${flags}`;

/**
 * The attributes an event emitted in reaction to `trigger` carries (docs/observability.md "Correlation
 * and causation"): `causationid` — the trigger's id; `correlationid` — the trigger's correlationid, or
 * its id when it has none (the trigger started the conversation); `traceparent` — a child span of
 * the trigger's trace (a new trace if it has no valid one) and the trigger's `tracestate` with it.
 */
export interface ReactionAttributes {
  causationid: string;
  correlationid: string;
  traceparent: string;
  tracestate?: string;
}

export function reactionAttributes(trigger: {
  id: string;
  correlationid?: unknown;
  traceparent?: unknown;
  tracestate?: unknown;
}): ReactionAttributes {
  const parent = typeof trigger.traceparent === "string" ? parseTraceparent(trigger.traceparent) : undefined;
  const correlationid = typeof trigger.correlationid === "string" && trigger.correlationid !== "" ? trigger.correlationid : trigger.id;
  const state =
    parent !== undefined && typeof trigger.tracestate === "string" && isValidTracestate(trigger.tracestate)
      ? trigger.tracestate
      : undefined;
  return {
    causationid: trigger.id,
    correlationid,
    traceparent: parent === undefined ? newTraceparent() : childOf(parent),
    ...(state === undefined ? {} : { tracestate: state }),
  };
}
