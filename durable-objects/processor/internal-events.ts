import type { CloudEvent } from "../../shared/cloudevents";
import { declaredVersions, type EventlineConfig, type TopicConfig } from "../../shared/config";
import { EventlineError } from "../../shared/errors";
import { canonicalJson, joinMembers, type Member, mergeMembers, sha256HexOfBytes } from "../../shared/json";
import { partitionFor } from "../../shared/partitioner";
import type { Repartitioned } from "../../shared/processors";
import { configSource } from "../../workers/platform/ingest/data-schema";
import { type PreparedEvent, prepareEvents } from "../../workers/platform/ingest/parse";

/** The type of the events a processor's first feed appends to its internal topic. */
export const INTERNAL_INPUT_TYPE = "eventline.processor.input";

/** One re-partitioned input, as the first feed appends it to the internal topic (ADR 0053). */
export interface InternalInput {
  /** `<input topic>/<partition>/<sequence>`: the input's position, so a run sent again appends nothing twice. */
  id: string;
  /** `/eventline/processors/<name>/input`. */
  source: string;
  data: Repartitioned;
}

const encoder = new TextEncoder();

/** The CloudEvent an internal input is: what `prepareEvents` is given on the general path. */
export function internalCloudEvent(input: InternalInput): CloudEvent {
  return {
    specversion: "1.0",
    id: input.id,
    source: input.source,
    type: INTERNAL_INPUT_TYPE,
    partitionkey: input.data.key,
    datacontenttype: "application/json",
    data: input.data,
  } as unknown as CloudEvent;
}

/**
 * `canonicalMembers(internalCloudEvent(input))` written out: the envelope's keys in their sorted
 * order, and the data's canonical JSON with its known keys in sorted order (committedAt < eventTime
 * < id < key < partition < role < sequence < trace < value; correlationid < traceparent < tracestate).
 */
export function internalMembers(input: InternalInput): Member[] {
  const d = input.data;
  let data = `{"committedAt":${num(d.committedAt)},"eventTime":${num(d.eventTime)},"id":${JSON.stringify(d.id)},"key":${JSON.stringify(d.key)},"partition":${num(d.partition)}`;
  if (d.role !== undefined) data += `,"role":${JSON.stringify(d.role)}`;
  data += `,"sequence":${num(d.sequence)}`;
  if (d.trace !== undefined) {
    const t = d.trace;
    let trace = "";
    if (t.correlationid !== undefined) trace += `,"correlationid":${JSON.stringify(t.correlationid)}`;
    if (t.traceparent !== undefined) trace += `,"traceparent":${JSON.stringify(t.traceparent)}`;
    if (t.tracestate !== undefined) trace += `,"tracestate":${JSON.stringify(t.tracestate)}`;
    data += `,"trace":{${trace.slice(1)}}`;
  }
  if (d.value !== undefined) data += `,"value":${canonicalJson(d.value)}`;
  data += "}";
  return [
    ["data", data],
    ["datacontenttype", '"application/json"'],
    ["id", JSON.stringify(input.id)],
    ["partitionkey", JSON.stringify(d.key)],
    ["source", JSON.stringify(input.source)],
    ["specversion", '"1.0"'],
    ["type", `"${INTERNAL_INPUT_TYPE}"`],
  ];
}

function num(n: number): string {
  if (!Number.isFinite(n)) throw new TypeError("non-finite number has no JSON form");
  return JSON.stringify(n);
}

/**
 * True when nothing of `prepareEvents` beyond serializing and hashing can apply to internal inputs
 * on `topic`: no data schema declared for their type, no strict types, no sensitive fields. (The
 * internal topic the config adds has none of them; a topic that had would take the general path.)
 */
export function leanApplies(topic: TopicConfig): boolean {
  return !topic.strictTypes && declaredVersions(topic, INTERNAL_INPUT_TYPE).length === 0 && Object.keys(topic.sensitive).length === 0;
}

/**
 * Prepares internal inputs for their partitions exactly as `prepareEvents(inputs.map(internalCloudEvent),
 * topic, config, { traceparent, batch: true, schemas: configSource(topic, undefined) })` does — the same
 * members, content hash (SHA-256 of the canonical content), partition, size limit and in-batch
 * duplicate check, so the stored bytes and the log's duplicate-vs-conflict answer are the same —
 * without the steps that cannot apply to events the platform builds itself (data-schema lookups
 * and stamps, sensitive fields, trace attributes of the event's own, subjects). A topic where one
 * of those could apply takes the general path.
 */
export async function prepareInternalInputs(
  inputs: InternalInput[],
  topic: TopicConfig,
  config: EventlineConfig,
  traceparent: string,
): Promise<PreparedEvent[]> {
  if (!leanApplies(topic)) {
    return prepareEvents(inputs.map(internalCloudEvent), topic, config, {
      traceparent,
      batch: true,
      schemas: configSource(topic, undefined),
    });
  }
  const traceMembers: Member[] = [["traceparent", JSON.stringify(traceparent)]];
  const serialized = inputs.map((input) => {
    const members = internalMembers(input);
    return { members, hashed: encoder.encode(joinMembers(members)) };
  });
  const hashes = await Promise.all(serialized.map(({ hashed }) => sha256HexOfBytes(hashed)));
  const prepared: PreparedEvent[] = [];
  const seen = new Map<string, { hash: string; index: number }>();
  for (const [index, input] of inputs.entries()) {
    const { members, hashed } = serialized[index] as (typeof serialized)[number];
    const hash = hashes[index] as string;
    const size = hashed.byteLength;
    if (size > config.limits.maxEventBytes) {
      throw new EventlineError(
        "payload_too_large",
        `event /${index} is ${size} bytes serialized; the limit is ${config.limits.maxEventBytes}`,
        {
          extensions: { limitBytes: config.limits.maxEventBytes },
          issues: [{ path: `/${index}`, message: `${size} bytes > ${config.limits.maxEventBytes}` }],
        },
      );
    }
    const key = `${input.source}\u0000${input.id}`;
    const earlier = seen.get(key);
    if (earlier !== undefined && earlier.hash !== hash) {
      throw new EventlineError("duplicate_conflict", `events /${earlier.index} and /${index} share source and id but differ in content`, {
        issues: [{ path: `/${index}/id`, message: `same source+id as /${earlier.index} with different content` }],
      });
    }
    seen.set(key, { hash, index });
    prepared.push({
      index,
      partition: partitionFor({ id: input.id, partitionkey: input.data.key }, topic.partitions),
      hash,
      id: input.id,
      source: input.source,
      type: INTERNAL_INPUT_TYPE,
      traceparent,
      members: mergeMembers(members, traceMembers),
    });
  }
  return prepared;
}
