import type { CloudEvent } from "../../shared/cloudevents";
import { declaredVersions, type EventlineConfig, type TopicConfig } from "../../shared/config";
import { EventlineError } from "../../shared/errors";
import { canonicalJson, joinMembers, type Member, mergeMembers, sha256HexOfBytes } from "../../shared/json";
import { partitionFor } from "../../shared/partitioner";
import { INTERNAL_BATCH_MAX_BYTES, INTERNAL_BATCH_MAX_INPUTS, type Repartitioned } from "../../shared/processors";
import { configSource } from "../../workers/platform/ingest/data-schema";
import { type PreparedEvent, prepareEvents } from "../../workers/platform/ingest/parse";

/** The type of the events a processor's first feed appends to its internal topic: batches of inputs (ADR 0056). */
export const INTERNAL_INPUTS_TYPE = "eventline.processor.inputs";
/** The type of the single-input events the internal topic held before ADR 0056; an instance still reads them. */
export const LEGACY_INTERNAL_INPUT_TYPE = "eventline.processor.input";

/**
 * One internal-topic event (ADR 0056): the re-partitioned inputs of one input run (one input
 * partition, in sequence order) that belong to one instance.
 */
export interface InternalBatch {
  /**
   * `<input topic>/<partition>/<first sequence>-<last sequence>` of its inputs: a run sent again
   * appends the same event (a no-op); a run cut differently appends inputs the instance already
   * applied, which its per-input-partition checkpoints skip.
   */
  id: string;
  /** `/eventline/processors/<name>/input`. */
  source: string;
  inputs: Repartitioned[];
}

const encoder = new TextEncoder();

/** The CloudEvent an internal batch is: what `prepareEvents` is given on the general path. */
export function internalCloudEvent(batch: InternalBatch): CloudEvent {
  return {
    specversion: "1.0",
    id: batch.id,
    source: batch.source,
    type: INTERNAL_INPUTS_TYPE,
    // Every input of a batch has a key of the same partition: the first one's places it there.
    partitionkey: batch.inputs[0]?.key,
    datacontenttype: "application/json",
    data: { inputs: batch.inputs },
  } as unknown as CloudEvent;
}

/**
 * `canonicalJson(input)` written out: the known keys in their sorted order (committedAt < eventTime
 * < id < key < partition < role < sequence < trace < value; correlationid < traceparent < tracestate).
 */
export function inputJson(d: Repartitioned): string {
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
  return `${data}}`;
}

/** `canonicalMembers(internalCloudEvent(batch))` written out, from its inputs' `inputJson` texts. */
export function internalMembers(batch: InternalBatch, texts: readonly string[] = batch.inputs.map(inputJson)): Member[] {
  return [
    ["data", `{"inputs":[${texts.join(",")}]}`],
    ["datacontenttype", '"application/json"'],
    ["id", JSON.stringify(batch.id)],
    ["partitionkey", JSON.stringify(batch.inputs[0]?.key)],
    ["source", JSON.stringify(batch.source)],
    ["specversion", '"1.0"'],
    ["type", `"${INTERNAL_INPUTS_TYPE}"`],
  ];
}

function num(n: number): string {
  if (!Number.isFinite(n)) throw new TypeError("non-finite number has no JSON form");
  return JSON.stringify(n);
}

/**
 * One input partition's re-partitioned inputs (in sequence order) as internal batches: grouped by
 * the instance their key belongs to (the internal topic's partition), each group cut into batches
 * of at most `maxInputs` inputs and `maxBytes` bytes of input text, in order. The texts are the
 * inputs' `inputJson`, kept for `prepareInternalBatches`.
 */
export function packBatches(
  inputs: readonly Repartitioned[],
  at: { topic: string; partition: number; source: string; partitions: number },
  limits: { maxInputs: number; maxBytes: number } = { maxInputs: INTERNAL_BATCH_MAX_INPUTS, maxBytes: INTERNAL_BATCH_MAX_BYTES },
): { batch: InternalBatch; texts: string[] }[] {
  const open = new Map<number, { inputs: Repartitioned[]; texts: string[]; bytes: number }>();
  const out: { batch: InternalBatch; texts: string[] }[] = [];
  const close = (group: { inputs: Repartitioned[]; texts: string[] }) => {
    const first = group.inputs[0]?.sequence ?? 0;
    const last = group.inputs.at(-1)?.sequence ?? 0;
    out.push({
      batch: { id: `${at.topic}/${at.partition}/${first}-${last}`, source: at.source, inputs: group.inputs },
      texts: group.texts,
    });
  };
  for (const input of inputs) {
    const instance = partitionFor({ id: input.id, partitionkey: input.key }, at.partitions);
    const text = inputJson(input);
    const bytes = text.length + 1;
    let group = open.get(instance);
    if (group !== undefined && (group.inputs.length >= limits.maxInputs || group.bytes + bytes > limits.maxBytes)) {
      close(group);
      group = undefined;
    }
    if (group === undefined) {
      group = { inputs: [], texts: [], bytes: 0 };
      open.set(instance, group);
    }
    group.inputs.push(input);
    group.texts.push(text);
    group.bytes += bytes;
  }
  for (const group of open.values()) close(group);
  return out;
}

/**
 * True when nothing of `prepareEvents` beyond serializing and hashing can apply to internal batches
 * on `topic`: no data schema declared for their type, no strict types, no sensitive fields. (The
 * internal topic the config adds has none of them; a topic that had would take the general path.)
 */
export function leanApplies(topic: TopicConfig): boolean {
  return !topic.strictTypes && declaredVersions(topic, INTERNAL_INPUTS_TYPE).length === 0 && Object.keys(topic.sensitive).length === 0;
}

/**
 * Prepares internal batches for their partitions exactly as `prepareEvents(batches.map(internalCloudEvent),
 * topic, config, { traceparent, batch: true, schemas: configSource(topic, undefined) })` does — the same
 * members, content hash (SHA-256 of the canonical content), partition, size limit and in-batch
 * duplicate check, so the stored bytes and the log's duplicate-vs-conflict answer are the same —
 * without the steps that cannot apply to events the platform builds itself (data-schema lookups
 * and stamps, sensitive fields, trace attributes of the event's own, subjects). A topic where one
 * of those could apply takes the general path.
 */
export async function prepareInternalBatches(
  packed: readonly { batch: InternalBatch; texts?: readonly string[] }[],
  topic: TopicConfig,
  config: EventlineConfig,
  traceparent: string,
): Promise<PreparedEvent[]> {
  const inputs = packed.map((p) => p.batch);
  if (!leanApplies(topic)) {
    return prepareEvents(inputs.map(internalCloudEvent), topic, config, {
      traceparent,
      batch: true,
      schemas: configSource(topic, undefined),
    });
  }
  const traceMembers: Member[] = [["traceparent", JSON.stringify(traceparent)]];
  const serialized = packed.map(({ batch, texts }) => {
    const members = internalMembers(batch, texts);
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
      partition: partitionFor({ id: input.id, partitionkey: input.inputs[0]?.key }, topic.partitions),
      hash,
      id: input.id,
      source: input.source,
      type: INTERNAL_INPUTS_TYPE,
      traceparent,
      members: mergeMembers(members, traceMembers),
    });
  }
  return prepared;
}
