import type { Logger } from "../../sdk/logger";
import { queueBinding } from "../../shared/subscriptions";
import { feedDirect } from "../processor/feed";
import type { FeedRuns, SendBatch } from "./delivery/runs";

/**
 * How long the relay into a processor's instances waits after a commit for more commits to send
 * in the same call (ADR 0056): each call commits the instance's state once, so under load a few
 * milliseconds of latency buy fewer, larger calls.
 */
export const PROCESS_LINGER_MS = 10;

/**
 * The capabilities of a partition log (commit, streams, routes, metrics, delivery, archive) each
 * own their tables and logic and see the object only through a narrow host: its SQLite storage,
 * its identity, a logger and a clock. A test can build one over any object's storage
 * (runInDurableObject) and drive it on its own; the PartitionLog class only wires them together
 * and owns the one alarm (ADR 0037).
 */
export interface LogHost {
  sql: SqlStorage;
  storage: Pick<DurableObjectStorage, "transactionSync">;
  /** The (topic, partition) served; undefined until the first append recorded it. */
  identity(): PartitionId | undefined;
  log: Logger;
  /** Milliseconds since the epoch. */
  now(): number;
}

export interface PartitionId {
  topic: string;
  partition: number;
}

/**
 * A capability that needs the object's alarm. The object asks each, after anything that may
 * change its answer, when it next wants to run, and sets the one alarm to the earliest; when the
 * alarm fires, it runs every client (each decides what is due).
 */
export interface AlarmClient {
  /** When this capability next wants the alarm (ms since the epoch), null: not at all. */
  nextRunAt(now: number): number | null;
  run(now: number): Promise<void>;
}

/**
 * The test seams of a partition object, in one place: tests reach them through
 * `runInDurableObject(stub, (log) => { log.testing.send = ... })`. The defaults are production's.
 */
export interface PartitionLogSeams {
  /** Bound on appends whose durability callers are waiting for (`partitionLog.maxInFlightAppends`). */
  maxInFlight: number;
  /** EVENTLINE_METRICS: bytes, duplicates and append latency are kept only when on (the head is kept either way). */
  metricsOn: boolean;
  /** How long archived events stay in the log, instead of the topic's `retentionHours`. */
  retentionMs: number | undefined;
  /** Events per segment, instead of the topic's `archive.segmentEvents`. */
  segmentEvents: number | undefined;
  /** Stored text per segment (UTF-16 units), instead of about 8 MiB. */
  segmentMaxChars: number | undefined;
  /** Runs between a segment's R2 put and its commit here (a test crashes there). */
  afterSegmentPut: (key: string) => Promise<void>;
  /** Every subscription's redelivery timeout, instead of its own. */
  redeliveryMs: number | undefined;
  /** How the relay and redelivery hand messages to a queue (tests record or fail them). */
  send: SendBatch;
  /** How the relay hands runs to a direct route (a processor's feed, ADR 0053; tests fail it). */
  feed: FeedRuns;
  /** How long the relay into a processor's instances lingers after a commit (ADR 0056). */
  processLingerMs: number;
  /** Runs after a command is decided and prepared, just before its append (a test lets an outside writer in there). */
  beforeCommandAppend: (subject: string) => Promise<void>;
}

export function productionSeams(env: Env, maxInFlight: number, metricsOn: boolean): PartitionLogSeams {
  return {
    maxInFlight,
    metricsOn,
    retentionMs: undefined,
    segmentEvents: undefined,
    segmentMaxChars: undefined,
    afterSegmentPut: async () => {},
    redeliveryMs: undefined,
    send: async (binding, bodies) => {
      await queueBinding(env, binding).sendBatch(bodies.map((body) => ({ body, contentType: "json" })));
    },
    feed: (target, runs) => feedDirect(env, target, runs),
    processLingerMs: PROCESS_LINGER_MS,
    beforeCommandAppend: async () => {},
  };
}
