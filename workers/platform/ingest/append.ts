import type { AppendResult } from "../../../durable-objects/partition-log";
import type { TopicConfig } from "../../../shared/config";
import { EventlineError } from "../../../shared/errors";
import type { Logger } from "../../../shared/logger";
import type { PreparedEvent } from "./parse";

export function partitionStub(env: Env, topic: string, partition: number) {
  return env.PARTITION_LOG.getByName(`${topic}/${partition}`);
}

type EventOutcome =
  | { status: "stored" | "duplicate"; id: string; partition: number; sequence: number }
  | { status: "failed"; id: string; partition: number; code: string; detail: string };

export interface IngestAck {
  id: string;
  partition: number;
  sequence: number;
  duplicate: boolean;
}

function isOverloadError(err: unknown): boolean {
  return typeof err === "object" && err !== null && "overloaded" in err && (err as { overloaded?: unknown }).overloaded === true;
}

/**
 * Appends prepared events: one RPC per partition touched, in parallel; each RPC is one
 * transaction. Resolves only when every partition has committed (the 202 path); otherwise
 * throws an error whose body says, per event, what was stored, so retrying the whole request
 * is safe (stored events come back as duplicates).
 */
export async function appendToPartitions(
  env: Env,
  topic: TopicConfig,
  prepared: PreparedEvent[],
  log: Logger,
  retryAfterSeconds: number,
): Promise<IngestAck[]> {
  const byPartition = new Map<number, PreparedEvent[]>();
  for (const p of prepared) {
    const list = byPartition.get(p.partition) ?? [];
    list.push(p);
    byPartition.set(p.partition, list);
  }

  const calls = [...byPartition.entries()].map(async ([partition, events]) => {
    const started = Date.now();
    let result: AppendResult;
    try {
      result = await partitionStub(env, topic.name, partition).append({
        topic: topic.name,
        partition,
        events: events.map((e) => ({ source: e.event.source, id: e.event.id, hash: e.hash, event: e.event })),
      });
    } catch (err) {
      const overloaded = isOverloadError(err);
      log.error("append failed", { topic: topic.name, partition, count: events.length, overloaded, error: err });
      result = {
        ok: false,
        code: "overloaded",
        detail: overloaded ? `partition ${partition} is overloaded` : `partition ${partition} is temporarily unavailable`,
        retryAfter: retryAfterSeconds,
      };
    }
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
        traceparent: events[0]?.event.traceparent,
      });
    } else if (result.code !== "overloaded") {
      log.warn("append rejected", {
        topic: topic.name,
        partition,
        count: events.length,
        code: result.code,
        detail: result.detail,
        durationMs,
      });
    }
    return { partition, events, result };
  });
  const settled = await Promise.all(calls);

  const outcomes = new Map<number, EventOutcome>();
  for (const { partition, events, result } of settled) {
    events.forEach((e, i) => {
      const id = e.event.id;
      if (result.ok) {
        const stored = result.events[i];
        if (stored === undefined)
          throw new Error(`partition ${partition} returned ${result.events.length} results for ${events.length} events`);
        outcomes.set(e.index, { status: stored.duplicate ? "duplicate" : "stored", id, partition, sequence: stored.sequence });
      } else {
        outcomes.set(e.index, { status: "failed", id, partition, code: result.code, detail: result.detail });
      }
    });
  }
  const ordered = prepared.map((p) => outcomes.get(p.index)).filter((o): o is EventOutcome => o !== undefined);
  const failures = settled.filter((s) => !s.result.ok).map((s) => s.result);
  if (failures.length === 0) {
    return ordered.map((o) => {
      if (o.status === "failed") throw new Error("unreachable: failed outcome without failure");
      return { id: o.id, partition: o.partition, sequence: o.sequence, duplicate: o.status === "duplicate" };
    });
  }

  const storedCount = ordered.filter((o) => o.status !== "failed").length;
  const extensions = { events: ordered };
  const conflict = failures.find((f) => !f.ok && f.code === "duplicate_conflict");
  if (conflict !== undefined && !conflict.ok) {
    throw new EventlineError(
      "duplicate_conflict",
      `${conflict.detail}${storedCount > 0 ? `; ${storedCount} event(s) in other partitions were stored` : ""}`,
      { extensions },
    );
  }
  throw new EventlineError(
    "overloaded",
    `${failures.length} of ${settled.length} partition append(s) did not complete; ${storedCount} event(s) stored — retrying the whole request is safe`,
    { extensions, retryAfter: retryAfterSeconds },
  );
}
