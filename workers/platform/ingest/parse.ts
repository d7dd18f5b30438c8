import type { AppendInput } from "../../../durable-objects/partition-log/input";
import { isValidTracestate, newTraceparent } from "../../../sdk/trace";
import {
  BATCH_CONTENT_TYPE,
  type CloudEvent,
  decodeBinary,
  hasBinaryHeaders,
  STRUCTURED_CONTENT_TYPE,
  validateEnvelope,
} from "../../../shared/cloudevents";
import type { EventlineConfig, TopicConfig } from "../../../shared/config";
import { EventlineError, type ProblemIssue } from "../../../shared/errors";
import {
  canonicalMembers,
  joinMembers,
  type Member,
  membersUtf8Length,
  mergeMembers,
  sha256HexOfBytes,
  strictUtf8,
} from "../../../shared/json";
import { partitionFor } from "../../../shared/partitioner";
import { type FieldProtector, withoutCiphertext } from "../../../shared/security/fields";
import { readBodyWithLimit } from "./body";
import { checkDataSchemas, type DataSchemaSource } from "./data-schema";

export type IngestMode = "structured" | "binary" | "batch";

/** An event that passed every check and is ready for its partition log. */
export interface PreparedEvent {
  /** Position in the request (0 for structured and binary mode). */
  index: number;
  partition: number;
  /** SHA-256 (hex) of the event's canonical JSON without trace attributes: "same content". */
  hash: string;
  id: string;
  source: string;
  type: string;
  subject?: string;
  /** The trace the event is stored with: its own, else the request's. */
  traceparent: string;
  /** Joins its subject's stream (the event is partitioned by its subject). */
  stream?: true;
  /**
   * The event as it will be stored, trace context resolved, as canonical members (sorted
   * `[key, canonical JSON of the value]`): serialized once here, so the partition log only merges
   * in its own attributes (`joinMembers`) to get the stored bytes.
   */
  members: Member[];
}

const encoder = new TextEncoder();

/** Trace attributes: not part of an event's content, and resolved per request. */
const TRACE_KEYS: ReadonlySet<string> = new Set(["traceparent", "tracestate"]);

export interface ParsedIngest {
  mode: IngestMode;
  events: PreparedEvent[];
  traceparent: string;
}

function mediaEssence(contentType: string | null): string {
  return (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

function charsetOf(contentType: string | null): string | undefined {
  const m = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType ?? "");
  return m?.[1]?.toLowerCase();
}

export function detectMode(headers: Headers): IngestMode {
  const contentType = headers.get("content-type");
  const essence = mediaEssence(contentType);
  if (essence === STRUCTURED_CONTENT_TYPE || essence === BATCH_CONTENT_TYPE) {
    const charset = charsetOf(contentType);
    if (charset !== undefined && charset !== "utf-8" && charset !== "utf8") {
      throw new EventlineError("unsupported_media_type", `charset ${charset} is not supported; send UTF-8`);
    }
    return essence === STRUCTURED_CONTENT_TYPE ? "structured" : "batch";
  }
  if (essence.startsWith("application/cloudevents")) {
    throw new EventlineError(
      "unsupported_media_type",
      `${essence} is not supported: Eventline accepts the JSON event format (${STRUCTURED_CONTENT_TYPE}, ${BATCH_CONTENT_TYPE})`,
    );
  }
  if (hasBinaryHeaders(headers)) return "binary";
  throw new EventlineError(
    "unsupported_media_type",
    `Content-Type ${contentType === null ? "(none)" : JSON.stringify(contentType)} without ce-specversion: send ${STRUCTURED_CONTENT_TYPE}, ${BATCH_CONTENT_TYPE}, or binary mode with ce-* headers`,
    { headers: { "accept-post": `${STRUCTURED_CONTENT_TYPE}, ${BATCH_CONTENT_TYPE}` } },
  );
}

function parseJsonBody(body: Uint8Array): unknown {
  let text: string;
  try {
    text = strictUtf8(body);
  } catch {
    throw new EventlineError("malformed_request", "request body is not valid UTF-8");
  }
  if (text.trim() === "") throw new EventlineError("malformed_request", "request body is empty");
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new EventlineError("malformed_request", `request body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function envelopeError(issues: ProblemIssue[]): EventlineError {
  const n = issues.length;
  return new EventlineError("invalid_envelope", `${n} problem${n === 1 ? "" : "s"} with the CloudEvents envelope`, { issues });
}

/**
 * Turns an ingest request into validated, partitioned, hashed events, or throws the one
 * EventlineError that describes everything wrong with it. Nothing here touches storage, so
 * every rejection leaves the logs untouched.
 */
export async function parseIngest(
  request: Request,
  topic: TopicConfig,
  config: EventlineConfig,
  schemas: DataSchemaSource,
  headerTraceparent: string | undefined,
  protector?: FieldProtector,
  requestTraceparent?: string,
): Promise<ParsedIngest> {
  const { mode, events } = await decodeIngest(request, config);
  return prepareRequestEvents(request, mode, events, topic, config, schemas, headerTraceparent, protector, requestTraceparent);
}

/**
 * Prepares a request's decoded events, with the request's trace context as their default: the
 * header's traceparent, else `requestTraceparent` (the one the request was given when it had none),
 * else a new one.
 */
export async function prepareRequestEvents(
  request: Request,
  mode: IngestMode,
  events: CloudEvent[],
  topic: TopicConfig,
  config: EventlineConfig,
  schemas: DataSchemaSource,
  headerTraceparent: string | undefined,
  protector?: FieldProtector,
  requestTraceparent?: string,
): Promise<ParsedIngest> {
  // Every event of the request shares the request's trace unless it carries its own.
  const traceparent = headerTraceparent ?? requestTraceparent ?? newTraceparent();
  const tracestate = request.headers.get("tracestate") ?? undefined;
  const requestState = tracestate !== undefined && isValidTracestate(tracestate) && headerTraceparent ? tracestate : undefined;
  const prepared = await prepareEvents(events, topic, config, {
    traceparent,
    tracestate: requestState,
    batch: mode === "batch",
    protector,
    schemas,
  });
  return { mode, events: prepared, traceparent };
}

/** Reads a request body in any of the three CloudEvents HTTP modes into valid CloudEvents. */
export async function decodeIngest(request: Request, config: EventlineConfig): Promise<{ mode: IngestMode; events: CloudEvent[] }> {
  const mode = detectMode(request.headers);
  const body = await readBodyWithLimit(request, config.limits.maxBodyBytes);

  let raw: { value: unknown; base: string }[];
  let binary: CloudEvent | undefined;
  if (mode === "binary") {
    const decoded = decodeBinary(request.headers, body);
    if (!decoded.ok) throw envelopeError(decoded.issues);
    binary = decoded.event;
    raw = [];
  } else if (mode === "structured") {
    raw = [{ value: parseJsonBody(body), base: "" }];
  } else {
    const parsed = parseJsonBody(body);
    if (!Array.isArray(parsed)) throw new EventlineError("malformed_request", "a batch must be a JSON array of CloudEvents");
    if (parsed.length === 0) throw new EventlineError("malformed_request", "a batch must contain at least one event");
    if (parsed.length > config.limits.maxBatchEvents) {
      throw new EventlineError("payload_too_large", `a batch holds at most ${config.limits.maxBatchEvents} events, got ${parsed.length}`, {
        extensions: { limitEvents: config.limits.maxBatchEvents },
      });
    }
    raw = parsed.map((value, i) => ({ value, base: `/${i}` }));
  }

  const events: CloudEvent[] = [];
  const issues: ProblemIssue[] = [];
  if (binary !== undefined) events.push(binary);
  for (const { value, base } of raw) {
    const result = validateEnvelope(value, base);
    if (result.ok) events.push(result.event);
    else issues.push(...result.issues);
  }
  if (issues.length > 0) throw envelopeError(issues);
  return { mode, events };
}

/**
 * Checks valid CloudEvents against the topic (data schemas, size limits, repeated ids) and turns
 * them into partitioned, hashed, serialized events — what both ingest and the command handlers
 * append. Throws the one EventlineError describing everything wrong; touches no storage.
 */
export async function prepareEvents(
  validated: CloudEvent[],
  topic: TopicConfig,
  config: EventlineConfig,
  trace: {
    traceparent: string;
    tracestate?: string | undefined;
    batch: boolean;
    protector?: FieldProtector | undefined;
    /** Where each type's data schema versions come from (ingest: config + registry; commands: config). */
    schemas: DataSchemaSource;
  },
): Promise<PreparedEvent[]> {
  const { traceparent, tracestate: requestState } = trace;
  const base = (i: number) => (trace.batch ? `/${i}` : "");
  const { issues: dataIssues, stamps } = await checkDataSchemas(validated, topic, trace.schemas, base);
  if (dataIssues.length > 0) {
    // A dataschema problem is named in the detail too: the URI, the type's versions and where they are listed.
    const named = dataIssues.find((issue) => issue.path.endsWith("/dataschema"));
    const more = dataIssues.length - 1;
    throw new EventlineError(
      "schema_violation",
      named === undefined
        ? "data does not match the schema registered for its type"
        : `${named.path}: ${named.message}${more > 0 ? ` (and ${more} more problem${more === 1 ? "" : "s"}: see issues)` : ""}`,
      { issues: dataIssues },
    );
  }
  // Sensitive fields are encrypted before anything is hashed or serialized, so neither the stored
  // event nor its content hash ever holds the plaintext (docs/security.md).
  let events = validated;
  if (Object.keys(topic.sensitive).length > 0) {
    if (trace.protector === undefined) throw new Error(`topic ${topic.name} has sensitive fields but no field protector was given`);
    events = await trace.protector.protect(topic, validated, base);
  }

  // Each event is serialized once, member by member; its size, content hash and stored form
  // all come from those members. The hashes are computed concurrently.
  const serialized = events.map((event, i) => {
    // A `dataschema` naming one of the type's versions (given, or stamped) is stored and counted but
    // not hashed: "same content" is the producer's content without the version it was checked
    // against, so a retry sent after a new version was registered, or a stored event sent again
    // with its stamp, is still a duplicate (ADR 0051).
    const stamp = stamps[i];
    const own = stamp !== undefined && event.dataschema !== undefined ? { ...event, dataschema: undefined } : event;
    const members = canonicalMembers(own);
    // "Same content" ignores trace context: a producer's retry may carry a new trace.
    const trace = members.filter(([key]) => TRACE_KEYS.has(key));
    const content = trace.length === 0 ? members : members.filter(([key]) => !TRACE_KEYS.has(key));
    // For an event whose sensitive fields were encrypted, "same content" ignores the ciphertexts
    // (each field counts by its key id only): otherwise duplicate-vs-409 would tell a producer
    // without `decrypt` whether a guessed value equals the stored one. The first write wins.
    const sealed = event !== validated[i];
    const compared = sealed
      ? canonicalMembers({ ...own, data: withoutCiphertext(event.data) }).filter(([key]) => !TRACE_KEYS.has(key))
      : content;
    const hashed = encoder.encode(joinMembers(compared));
    // The event's size as serialized: the content's bytes (encoded for the hash anyway) plus its
    // own trace members, each after a comma (content always holds specversion, id, source, type).
    const stamped: Member[] = stamp === undefined ? [] : [["dataschema", JSON.stringify(stamp)]];
    const size =
      (sealed ? membersUtf8Length(members) : hashed.byteLength + (trace.length === 0 ? 0 : membersUtf8Length(trace) - 1)) +
      (stamp === undefined ? 0 : membersUtf8Length(stamped) - 1);
    return { content, hashed, size, stamped };
  });
  const hashes = await Promise.all(serialized.map(({ hashed }) => sha256HexOfBytes(hashed)));

  const prepared: PreparedEvent[] = [];
  const seen = new Map<string, { hash: string; index: number }>();
  for (const [index, event] of events.entries()) {
    const { content, size, stamped } = serialized[index] as (typeof serialized)[number];
    const hash = hashes[index] as string;
    if (size > config.limits.maxEventBytes) {
      throw new EventlineError(
        "payload_too_large",
        `event ${base(index) || "/"} is ${size} bytes serialized; the limit is ${config.limits.maxEventBytes}`,
        {
          extensions: { limitBytes: config.limits.maxEventBytes },
          issues: [{ path: base(index) || "/", message: `${size} bytes > ${config.limits.maxEventBytes}` }],
        },
      );
    }
    const key = `${event.source}\u0000${event.id}`;
    const earlier = seen.get(key);
    if (earlier !== undefined && earlier.hash !== hash) {
      throw new EventlineError(
        "duplicate_conflict",
        `events ${base(earlier.index)} and ${base(index)} share source and id but differ in content`,
        {
          issues: [{ path: `${base(index)}/id`, message: `same source+id as ${base(earlier.index)} with different content` }],
        },
      );
    }
    seen.set(key, { hash, index });
    // Stored with its own trace context, else the request's (tracestate only with a valid header traceparent).
    const ownTrace = event.traceparent;
    const eventTrace = ownTrace ?? traceparent;
    const state = ownTrace !== undefined ? event.tracestate : requestState;
    // Sorted, as mergeMembers wants: "dataschema" < "traceparent" < "tracestate".
    const traceMembers: Member[] = [...stamped, ["traceparent", JSON.stringify(eventTrace)]];
    if (state !== undefined) traceMembers.push(["tracestate", JSON.stringify(state)]);
    prepared.push({
      index,
      partition: partitionFor(event, topic.partitions),
      hash,
      id: event.id,
      source: event.source,
      type: event.type,
      ...(event.subject !== undefined && { subject: event.subject }),
      traceparent: eventTrace,
      members: mergeMembers(content, traceMembers),
      // An event partitioned by its subject joins the subject's stream; one placed by another
      // partition key does not (its stream lives in the subject's partition).
      ...(event.subject !== undefined && (event.partitionkey === undefined || event.partitionkey === event.subject) && { stream: true }),
    });
  }
  return prepared;
}

/** The RPC form of a prepared event (no undefined members: RPC keeps them as keys). */
export function toAppendEvent({
  source,
  id,
  type,
  subject,
  traceparent,
  hash,
  members,
  stream,
}: PreparedEvent): AppendInput["events"][number] {
  const event: AppendInput["events"][number] = { source, id, type, traceparent, hash, members };
  if (subject !== undefined) event.subject = subject;
  if (stream === true) event.stream = true;
  return event;
}
