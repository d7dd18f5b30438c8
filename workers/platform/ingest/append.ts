import type { AppendedEvent, AppendInput, AppendResult, ExpectedVersion } from "../../../durable-objects/partition-log";
import type { Logger } from "../../../sdk/logger";
import { partitionName } from "../../../sdk/partition-name";
import type { TopicConfig } from "../../../shared/config";
import { EventlineError } from "../../../shared/errors";
import { type PreparedEvent, toAppendEvent } from "./parse";

export function partitionStub(env: Env, topic: string, partition: number) {
  return env.PARTITION_LOG.getByName(partitionName(topic, partition));
}

/**
 * What happened to one event of the request. `not_stored`: its partition refused the append
 * (nothing of that call was stored). `unknown`: the call failed in transit, so it may or may not
 * have committed — re-sending is safe either way, as appends are idempotent.
 */
type EventOutcome =
  | { status: "stored" | "duplicate"; id: string; partition: number; sequence: number; streamVersion?: number }
  | { status: "not_stored" | "unknown"; id: string; partition: number; code: string; detail: string };

type PartitionCall =
  | { partition: number; events: PreparedEvent[]; kind: "answered"; result: AppendResult }
  | { partition: number; events: PreparedEvent[]; kind: "threw"; overloaded: boolean; retryable: boolean; detail: string };

/**
 * A partition call that failed before anything changed (a read, a load): the caller may simply
 * retry, so it is a 503 with Retry-After. The cause is logged by the caller.
 */
export function partitionUnavailable(err: unknown, what: string, retryAfter: number): EventlineError {
  const overloaded = flag(err, "overloaded");
  const reason = err instanceof Error ? err.message : String(err);
  return new EventlineError(overloaded ? "overloaded" : "unavailable", `${what} failed: ${reason}; retrying is safe`, {
    retryAfter,
    cause: err,
  });
}

export interface IngestAck {
  id: string;
  partition: number;
  sequence: number;
  duplicate: boolean;
  /** The event's version in its subject's stream, when it joined one. */
  streamVersion?: number;
}

/** Durable Object errors carry `overloaded` / `retryable` flags set by the runtime. */
export function flag(err: unknown, name: "overloaded" | "retryable"): boolean {
  return typeof err === "object" && err !== null && (err as Record<string, unknown>)[name] === true;
}

function groupByPartition(prepared: PreparedEvent[]): Map<number, PreparedEvent[]> {
  const byPartition = new Map<number, PreparedEvent[]>();
  for (const p of prepared) {
    const list = byPartition.get(p.partition) ?? [];
    list.push(p);
    byPartition.set(p.partition, list);
  }
  return byPartition;
}

async function appendOne(
  env: Env,
  topic: TopicConfig,
  partition: number,
  events: PreparedEvent[],
  log: Logger,
  expect?: AppendInput["expect"],
): Promise<PartitionCall> {
  const started = Date.now();
  try {
    const result = await partitionStub(env, topic.name, partition).append({
      topic: topic.name,
      partition,
      events: events.map(toAppendEvent),
      ...(expect !== undefined && { expect }),
    });
    const durationMs = Date.now() - started;
    if (result.ok) {
      const fresh = result.events.filter((e) => !e.duplicate);
      log.info("append", {
        topic: topic.name,
        partition,
        count: events.length,
        appended: fresh.length,
        duplicates: events.length - fresh.length,
        firstSequence: fresh[0]?.sequence ?? null,
        lastSequence: fresh.at(-1)?.sequence ?? null,
        head: result.head,
        durationMs,
        traceparent: events[0]?.traceparent,
      });
    } else {
      // A lost version race is the expected outcome of optimistic concurrency, not a fault.
      log[result.code === "version_conflict" ? "info" : "warn"]("append rejected", {
        topic: topic.name,
        partition,
        count: events.length,
        code: result.code,
        detail: result.detail,
        durationMs,
      });
    }
    return { partition, events, kind: "answered", result };
  } catch (err) {
    const overloaded = flag(err, "overloaded");
    const retryable = flag(err, "retryable");
    log.error("append failed", { topic: topic.name, partition, count: events.length, overloaded, retryable, error: err });
    const detail = overloaded
      ? `partition ${partition} is overloaded`
      : `partition ${partition} did not answer: ${err instanceof Error ? err.message : String(err)}`;
    return { partition, events, kind: "threw", overloaded, retryable, detail };
  }
}

function outcomesOf(call: PartitionCall): EventOutcome[] {
  return call.events.map((e, i) => {
    const base = { id: e.id, partition: call.partition };
    if (call.kind === "threw")
      return { ...base, status: "unknown", code: call.overloaded ? "overloaded" : "unavailable", detail: call.detail };
    if (!call.result.ok) return { ...base, status: "not_stored", code: call.result.code, detail: call.result.detail };
    const stored = call.result.events[i];
    if (stored === undefined)
      throw new Error(`partition ${call.partition} returned ${call.result.events.length} results for ${call.events.length} events`);
    return {
      ...base,
      status: stored.duplicate ? "duplicate" : "stored",
      sequence: stored.sequence,
      ...(stored.streamVersion !== undefined && { streamVersion: stored.streamVersion }),
    };
  });
}

/**
 * Appends prepared events: one RPC per partition touched, in parallel; each RPC is one
 * transaction. Resolves only when every partition has committed (the 202 path); otherwise throws
 * an error whose `events` member says, per event, what happened, so the producer knows what is
 * stored and can re-send the whole request safely.
 */
export async function appendToPartitions(
  env: Env,
  topic: TopicConfig,
  prepared: PreparedEvent[],
  log: Logger,
  retryAfterSeconds: number,
): Promise<IngestAck[]> {
  const calls = await Promise.all([...groupByPartition(prepared).entries()].map(([p, events]) => appendOne(env, topic, p, events, log)));
  return settleCalls(prepared, calls, retryAfterSeconds);
}

/**
 * The acks, in request order, when every call committed all its events (the common case, built
 * without the per-event outcomes); undefined otherwise, for settleCalls to describe.
 */
function committedAcks(prepared: PreparedEvent[], calls: PartitionCall[]): IngestAck[] | undefined {
  const acks = new Array<IngestAck>(prepared.length);
  let settled = 0;
  for (const call of calls) {
    if (call.kind !== "answered" || !call.result.ok || call.result.events.length !== call.events.length) return undefined;
    for (const [i, e] of call.events.entries()) {
      const stored = call.result.events[i] as AppendedEvent;
      if (prepared[e.index] !== e || acks[e.index] !== undefined) return undefined;
      const ack: IngestAck = { id: e.id, partition: call.partition, sequence: stored.sequence, duplicate: stored.duplicate };
      if (stored.streamVersion !== undefined) ack.streamVersion = stored.streamVersion;
      acks[e.index] = ack;
      settled++;
    }
  }
  return settled === prepared.length ? acks : undefined;
}

/** The acks of partition calls that all succeeded, else the error describing each event's outcome. */
function settleCalls(prepared: PreparedEvent[], calls: PartitionCall[], retryAfterSeconds: number): IngestAck[] {
  const committed = committedAcks(prepared, calls);
  if (committed !== undefined) return committed;
  const byIndex = new Map<number, EventOutcome>();
  for (const call of calls) {
    for (const [i, o] of outcomesOf(call).entries()) byIndex.set(call.events[i]?.index ?? -1, o);
  }
  const outcomes = prepared.map((p) => byIndex.get(p.index)).filter((o): o is EventOutcome => o !== undefined);

  const acks: IngestAck[] = [];
  for (const o of outcomes) {
    if (o.status === "stored" || o.status === "duplicate")
      acks.push({
        id: o.id,
        partition: o.partition,
        sequence: o.sequence,
        duplicate: o.status === "duplicate",
        ...(o.streamVersion !== undefined && { streamVersion: o.streamVersion }),
      });
  }
  if (acks.length === prepared.length) return acks;

  const extensions = { events: outcomes };
  const summary = `${acks.length} of ${prepared.length} event(s) are stored`;
  const conflict = calls.find((c) => c.kind === "answered" && !c.result.ok && c.result.code === "duplicate_conflict");
  if (conflict?.kind === "answered" && !conflict.result.ok) {
    throw new EventlineError("duplicate_conflict", `${conflict.result.detail}; ${summary}`, { extensions });
  }
  if (calls.some((c) => c.kind === "threw" && !c.overloaded && !c.retryable)) {
    throw new EventlineError(
      "internal",
      `a partition append failed unexpectedly; ${summary} — the failure is logged, and re-sending is safe`,
      { extensions },
    );
  }
  const overloaded = calls.some(
    (c) => (c.kind === "threw" && c.overloaded) || (c.kind === "answered" && !c.result.ok && c.result.code === "overloaded"),
  );
  throw new EventlineError(
    overloaded ? "overloaded" : "unavailable",
    `${summary}; retry the whole request after the Retry-After delay, it is safe`,
    {
      extensions,
      retryAfter: retryAfterSeconds,
    },
  );
}

export interface StreamAppended {
  subject: string;
  partition: number;
  /** The stream's version after the append (that of its last event). */
  version: number;
  events: (IngestAck & { streamVersion: number })[];
}

/**
 * Appends events to one stream, atomically, if the stream is where `expected` says: one RPC to
 * the subject's partition. Throws `version_conflict` (409, with `currentVersion`) when it is not,
 * and the same errors as ingest otherwise. Re-sending an append that committed is answered with
 * its original positions (`duplicate: true`).
 */
export async function appendToStream(
  env: Env,
  topic: TopicConfig,
  subject: string,
  prepared: PreparedEvent[],
  expected: ExpectedVersion,
  log: Logger,
  retryAfterSeconds: number,
): Promise<StreamAppended> {
  const partition = prepared[0]?.partition;
  if (partition === undefined || prepared.some((e) => e.partition !== partition || e.subject !== subject || e.stream !== true)) {
    throw new Error("a stream append takes stream events of one subject, all in its partition");
  }
  const call = await appendOne(env, topic, partition, prepared, log, { subject, version: expected });
  if (call.kind === "answered" && !call.result.ok && call.result.code === "version_conflict") {
    const { currentVersion, detail } = call.result;
    throw new EventlineError("version_conflict", detail, {
      extensions: { subject, partition, currentVersion, expectedVersion: expected },
    });
  }
  if (call.kind === "answered" && call.result.ok) {
    const events = outcomesOf(call).map((o) => {
      if ((o.status !== "stored" && o.status !== "duplicate") || o.streamVersion === undefined) {
        throw new Error(`partition ${partition} did not give event ${o.id} a stream version`);
      }
      return { id: o.id, partition, sequence: o.sequence, duplicate: o.status === "duplicate", streamVersion: o.streamVersion };
    });
    return { subject, partition, version: Math.max(...events.map((e) => e.streamVersion)), events };
  }
  // Refused or failed: the same answers as ingest (409 duplicate conflict, 503, 500).
  settleCalls(prepared, [call], retryAfterSeconds);
  throw new Error(`partition ${partition} answered a stream append without its events`);
}
