import { DurableObject } from "cloudflare:workers";
import { z } from "zod";
import config from "../eventline.config";
import { formatSequence } from "../shared/cloudevents";
import { DEFAULT_REDELIVERY_SECONDS, findTopic, WEBHOOK_BACKOFF } from "../shared/config";
import { compileFilter, type FilterPattern, patternKeys } from "../shared/filter";
import { joinMembers, type Member, utf8Length } from "../shared/json";
import { createLogger } from "../shared/logger";
import { emptyHistogram, type Histogram, metricsEnabled, observe, parseHistogram } from "../shared/metrics";
import { parsePartitionName, partitionName } from "../shared/partition-name";
import { findSubscription, queueBinding, type Route, routesFor } from "../shared/subscriptions";
import {
  chainOf,
  GENESIS_CHAIN,
  gunzip,
  gzip,
  type Manifest,
  manifestKey,
  type Segment,
  segmentKey,
  segmentLines,
  segmentText,
  sha256Bytes,
  verifyArchive,
} from "./archive";
import { d1Acks } from "./delivery/acks";
import { acknowledgeCheckpoints, type RedeliveryHost, runRedelivery } from "./delivery/redelivery";
import {
  deliveryDepths,
  heldSequences,
  migrateDeliveryTables,
  nextCheck,
  type PendingDelivery,
  pendingDeliveries,
  type Unacknowledged,
  unacknowledged,
} from "./delivery/tables";
import { createOutboxTable, drainOutbox, OutboxWrites, type SendBatch } from "./outbox";

/** A segment's stored text stops growing past this (a few MiB, gzipped to far less). */
const SEGMENT_MAX_CHARS = 8 * 1024 * 1024;

const hex = (buffer: ArrayBuffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");

/** When a relay attempt fails (or was never finished), the alarm tries again after this. */
const RELAY_RETRY_MS = 2_000;
const RELAY_RETRY_MAX_MS = 60_000;

/**
 * One partition of one topic: an ordered, durable, append-only event log in the object's
 * SQLite storage. Every append call is one SQLite transaction, so a call's events are stored
 * all together or not at all; the RPC result reaches the caller only after the runtime has
 * made that transaction durable (the output gate), which is what lets the Worker answer 202.
 */

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/**
 * An event's columns and its stored form. The Worker has validated the full envelope and
 * serialized it once, as canonical members (sorted `[key, canonical JSON of the value]`, trace
 * context resolved); the log merges in its own attributes and stores the joined text. This
 * re-checks what the log itself relies on, cheaply: shapes, and that the columns agree with the
 * members they are indexed by.
 */
const eventInput = z
  .object({
    source: z.string().min(1),
    id: z.string().min(1),
    type: z.string().min(1),
    subject: z.string().min(1).optional(),
    traceparent: z.string().regex(TRACEPARENT),
    /** SHA-256 (hex) of the event's canonical JSON without trace attributes: "same content". */
    hash: z.string().regex(/^[0-9a-f]{64}$/),
    /** `[key, text]` string pairs, at least one (a zod check that skips zod's per-element machinery). */
    members: z.custom<Member[]>(isMemberList, { message: "members must be a non-empty list of [key, JSON text] string pairs" }),
    /** The event joins its subject's stream and gets the next stream version (needs a subject). */
    stream: z.literal(true).optional(),
  })
  .refine(membersAgree, {
    message: "source/id must match the event's own, as must type, subject and traceparent; members sorted by key, specversion 1.0",
  })
  .refine((e) => e.stream === undefined || e.subject !== undefined, { message: "a stream event needs a subject" });

function isMemberList(value: unknown): boolean {
  if (!Array.isArray(value) || value.length === 0) return false;
  for (const member of value) {
    if (!Array.isArray(member) || member.length !== 2 || typeof member[0] !== "string" || typeof member[1] !== "string") return false;
  }
  return true;
}

/**
 * True when the members are sorted by key without repeats, hold specversion "1.0", and the
 * columns are exactly the event's own attributes (an absent subject included).
 */
function membersAgree(e: {
  source: string;
  id: string;
  type: string;
  subject?: string | undefined;
  traceparent: string;
  members: Member[];
}): boolean {
  let seen = 0;
  let previous: string | undefined;
  for (const [key, text] of e.members) {
    if (previous !== undefined && !(previous < key)) return false;
    previous = key;
    switch (key) {
      case "id":
        if (text !== JSON.stringify(e.id)) return false;
        seen |= 1;
        break;
      case "source":
        if (text !== JSON.stringify(e.source)) return false;
        seen |= 2;
        break;
      case "specversion":
        if (text !== '"1.0"') return false;
        seen |= 4;
        break;
      case "type":
        if (text !== JSON.stringify(e.type)) return false;
        seen |= 8;
        break;
      case "traceparent":
        if (text !== JSON.stringify(e.traceparent)) return false;
        seen |= 16;
        break;
      case "subject":
        if (e.subject === undefined || text !== JSON.stringify(e.subject)) return false;
        seen |= 32;
        break;
      // The log's own attributes; an event never brings them.
      case "partition":
      case "receivedtime":
      case "sequence":
      case "streamversion":
        return false;
    }
  }
  return seen === (e.subject === undefined ? 31 : 63);
}

/**
 * What a stream append expects of the stream before it: `any` (no check), `no-stream` (version
 * 0), `exists` (version ≥ 1) or that exact version. Stream versions are contiguous from 1.
 */
export const expectedVersionSchema = z.union([z.enum(["any", "no-stream", "exists"]), z.number().int().nonnegative()]);
export type ExpectedVersion = z.output<typeof expectedVersionSchema>;

export const appendInputSchema = z
  .object({
    topic: z.string().min(1),
    partition: z.number().int().nonnegative(),
    events: z.array(eventInput).min(1),
    /** Optimistic concurrency for a stream append: every event must be a stream event of `subject`. */
    expect: z.object({ subject: z.string().min(1), version: expectedVersionSchema }).optional(),
  })
  .refine((a) => a.expect === undefined || a.events.every((e) => e.stream === true && e.subject === a.expect?.subject), {
    message: "with expect, every event must be a stream event (stream: true) of the expected subject",
  });
export type AppendInput = z.input<typeof appendInputSchema>;

export interface AppendedEvent {
  id: string;
  source: string;
  sequence: number;
  duplicate: boolean;
  /** Position in its subject's stream, for stream events. */
  streamVersion?: number;
}

export type AppendResult =
  | { ok: true; events: AppendedEvent[]; head: number; queued: number }
  | { ok: false; code: "version_conflict"; detail: string; subject: string; expected: ExpectedVersion; currentVersion: number }
  | { ok: false; code: "duplicate_conflict"; detail: string; source: string; id: string; sequence: number }
  | { ok: false; code: "overloaded"; detail: string; retryAfter: number };

export interface ReadResult {
  /** Stored events, exactly as committed (canonical JSON text), from the archive or the log. */
  events: string[];
  head: number;
  /** Lowest sequence that can be read, archived or local (0 when empty). */
  first: number;
  /** Sequence of the last event returned, null when none was. */
  last: number | null;
}

export interface StreamInfo {
  subject: string;
  /** Current version: the number of events in the stream (0: no stream). */
  version: number;
  /** Partition sequence of the stream's last event (0: none). */
  lastSequence: number;
  /** When the last event was committed (ms since epoch), null when none. */
  updatedAt: number | null;
}

export interface StreamPage {
  /** Stored events, exactly as committed, in stream-version order. */
  events: string[];
  version: number;
  /** Stream version of the last event returned, null when none was. */
  last: number | null;
}

export interface Snapshot {
  /** The stream version the state was folded up to (inclusive). */
  version: number;
  /** The snapshot format, so code that changes the state's shape can ignore older snapshots. */
  schema: number;
  /** The folded state, serialized by its aggregate. */
  state: string;
}

/** A stream as a command handler loads it: the latest snapshot, and the events after it. */
export interface LoadedStream {
  snapshot: Snapshot | null;
  /** Stored events after the snapshot (or from version 1), at most `limit`. */
  events: string[];
  version: number;
  lastSequence: number;
  /** False when more events follow than were returned: page on with readStream(). */
  complete: boolean;
}

export interface ArchiveRange {
  first: number;
  last: number;
  segments: number;
  /** Compressed bytes in R2. */
  bytes: number;
}

export interface ArchiveResult {
  sealed: Segment[];
  /** Highest sequence archived and verified (0: none). */
  archivedThrough: number;
  /** Events removed from the partition log by this call (archived and past retention). */
  trimmed: number;
}

export interface PartitionStats {
  head: number;
  /** Events held in the partition log itself (not counting archived-only ones). */
  count: number;
  /** Lowest sequence held in the partition log (0 when none). */
  first: number;
  /** What is in R2, null when nothing is archived yet. */
  archived: ArchiveRange | null;
  /** Committed events not yet handed to each subscription's queue. */
  outbox: Record<string, number>;
  /** Events sent to each subscription and not yet acknowledged by it (as of the last redelivery check). */
  inTransit: Record<string, number>;
  /** Events this partition sent again to each subscription because they went unacknowledged. */
  redelivered: Record<string, number>;
  /** For each subscription whose checkpoint the caller gave: what is routed to it above the checkpoint, not acknowledged. */
  unacknowledged: Record<string, Unacknowledged>;
  /** Last sequence routed to each subscription (what it will have seen once caught up). */
  routed: Record<string, number>;
}

/** What GET /v1/metrics reads from a partition (PartitionLog.metrics). */
export interface PartitionMetrics {
  head: number;
  /** UTF-8 bytes of the events appended, as stored (duplicates excluded). */
  bytes: number;
  /** Events sent again with the same content (answered `duplicate: true`, nothing stored). */
  duplicates: number;
  /** Time inside append(), from parsing the input to the commit being durable, per successful call. */
  appendLatency: Histogram;
  archived: ArchiveRange | null;
  /** Last sequence routed to each subscription. */
  routed: Record<string, number>;
  /** Commit time (ms since epoch) of each sequence asked for; null when there is no such event. */
  committedAt: Record<number, number | null>;
  /** As in PartitionStats, for the checkpoints given. */
  unacknowledged: Record<string, Unacknowledged>;
}

/** Subscriptions' checkpoints in a partition, as callers pass them to stats() and metrics(). */
const checkpointsSchema = z.record(z.string().min(1), z.number().int().nonnegative());

/** Runtime (webhook) subscriptions of this partition's topic, pushed by the Worker. */
const runtimeRoutesSchema = z.array(z.object({ name: z.string().min(1), filter: z.record(z.string(), z.unknown()).nullable() })).max(1000);
export type RuntimeRoutes = z.input<typeof runtimeRoutesSchema>;
/** Every runtime subscription is delivered through the shared webhook queue. */
const RUNTIME_ROUTE_QUEUE = "WEBHOOK_DELIVERY";

/**
 * Routes of subscriptions without a filter: every event matches them (compileFilter(undefined)),
 * so the commit path needn't parse the stored event for them. Configured ones are found here,
 * runtime ones are added as they are compiled.
 */
const UNFILTERED = new WeakSet<Route>(
  config.topics.flatMap((t) => routesFor(t.name).filter((r) => findSubscription(r.name)?.filter === undefined)),
);
const isUnfiltered = (route: Route) => UNFILTERED.has(route);

const readInputSchema = z.object({
  from: z.number().int().min(1),
  limit: z.number().int().min(1).max(config.read.maxLimit),
});
const subjectSchema = z.string().min(1).max(1024);
const readStreamSchema = z.object({ subject: subjectSchema, from: z.number().int().min(1), limit: readInputSchema.shape.limit });
const snapshotInputSchema = z.object({
  subject: subjectSchema,
  version: z.number().int().min(1),
  schema: z.number().int().nonnegative(),
  state: z.string().max(512 * 1024),
});

/** True when `expected` holds for a stream at `version`. */
export function versionMatches(expected: ExpectedVersion, version: number): boolean {
  if (expected === "any") return true;
  if (expected === "no-stream") return version === 0;
  if (expected === "exists") return version > 0;
  return version === expected;
}

/** RPC arguments are parsed, not trusted; the error names what was wrong across the RPC boundary. */
const heldInputSchema = z
  .object({ subscription: z.string().min(1), from: z.number().int().min(1), to: z.number().int().min(0) })
  .refine((r) => r.to - r.from < 1000, { message: "at most 1,000 sequences" });

function parseArgs<T extends z.ZodType>(schema: T, value: unknown, what: string): z.output<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new TypeError(`invalid ${what}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

class ConflictAbort extends Error {
  constructor(
    readonly source: string,
    readonly id: string,
    readonly sequence: number,
  ) {
    super("duplicate id with different content");
  }
}

/**
 * The test seams of a partition object, in one place: tests reach them through
 * `runInDurableObject(stub, (log) => { log.testing.send = ... })`. Defaults are production's.
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
  /** Runs between a segment's R2 put and its commit here (a test crashes there). */
  afterSegmentPut: (key: string) => Promise<void>;
  /** Every subscription's redelivery timeout, instead of its own. */
  redeliveryMs: number | undefined;
  /** How the relay and redelivery hand messages to a queue (tests record or fail them). */
  send: SendBatch;
}

export class PartitionLog extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  /**
   * Highest sequence ever assigned. Not written on every commit: rows are only ever appended,
   * so at startup it is max(meta 'head', MAX(sequence)). Anything that deletes events (e.g.
   * retention trimming) MUST first persist the head to meta 'head', in the same transaction as
   * the delete, or trimming the newest rows would let their numbers be assigned again.
   */
  private head = 0;
  /** Last sequence routed to each subscription, as committed (see OutboxWrites); filled lazily. */
  private routed = new Map<string, number>();
  /** "<topic>/<partition>" this object serves, recorded by its first append. */
  private name: string | undefined;
  /** Appends whose transaction ran but whose durability the caller is still waiting for. */
  private inFlight = 0;
  /** Append latency, persisted (in `append_metrics`) by the next append's transaction. */
  private appendLatency: Histogram = emptyHistogram();
  /** The running relay, if any; a second request while it runs makes it loop once more. */
  private relaying: Promise<void> | undefined;
  private relayAgain = false;
  private relayFailures = 0;
  private alarmAt: number | null = null;
  private readonly log = createLogger({ component: "partition-log" });
  /** Webhook subscriptions created at runtime, compiled; persisted in `runtime_routes`. */
  private runtimeRoutes: Route[] = [];
  /** Highest sequence archived and verified in R2 (0: none). */
  private archivedThrough = 0;
  /** Failed archive passes in a row, and when the next may run (backoff, respected by every scheduler). */
  private archiveFailures = 0;
  private archiveRetryAt = 0;
  /** The running archive pass, if any (one at a time). */
  private archiving: Promise<ArchiveResult> | undefined;
  /** Decompressed segments recently read, by key (reads of archived ranges page through them). */
  private readonly segmentCache = new Map<string, string[]>();
  /** The running redelivery pass, if any (one at a time). */
  private redelivering: Promise<void> | undefined;

  /** What tests change on one object (see PartitionLogSeams); production never touches it. */
  readonly testing: PartitionLogSeams;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.testing = {
      maxInFlight: config.partitionLog.maxInFlightAppends,
      metricsOn: metricsEnabled(env),
      retentionMs: undefined,
      segmentEvents: undefined,
      afterSegmentPut: async () => {},
      redeliveryMs: undefined,
      send: async (binding, bodies) => {
        await queueBinding(env, binding).sendBatch(bodies.map((body) => ({ body, contentType: "json" })));
      },
    };
    void ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
      this.sql.exec(`CREATE TABLE IF NOT EXISTS events (
        sequence    INTEGER PRIMARY KEY,
        source      TEXT NOT NULL,
        id          TEXT NOT NULL,
        hash        TEXT NOT NULL,
        type        TEXT NOT NULL,
        subject     TEXT,
        traceparent TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        body        TEXT NOT NULL
      )`);
      // The idempotency record lives in the event row itself, so it is kept exactly as long
      // as the event is.
      this.sql.exec(`CREATE UNIQUE INDEX IF NOT EXISTS events_source_id ON events (source, id)`);
      this.createStreamTables();
      createOutboxTable(this.sql);
      migrateDeliveryTables(this.sql);
      // The archive's manifest, as committed here; R2's manifest.json is a copy written after it.
      this.sql.exec(`CREATE TABLE IF NOT EXISTS segments (
        first INTEGER PRIMARY KEY, last INTEGER NOT NULL, count INTEGER NOT NULL,
        first_received_at INTEGER NOT NULL, last_received_at INTEGER NOT NULL,
        bytes INTEGER NOT NULL, sha256 TEXT NOT NULL, chain TEXT NOT NULL, key TEXT NOT NULL
      )`);
      this.sql.exec(`CREATE TABLE IF NOT EXISTS runtime_routes (name TEXT PRIMARY KEY, filter TEXT)`);
      // Metrics counters: one row, updated by each append call's own transaction.
      this.sql.exec(`CREATE TABLE IF NOT EXISTS append_metrics (
        id INTEGER PRIMARY KEY CHECK (id = 1), bytes INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0, latency TEXT
      )`);
      this.sql.exec(`INSERT OR IGNORE INTO append_metrics (id) VALUES (1)`);
      this.appendLatency = parseHistogram(this.sql.exec<{ latency: string | null }>(`SELECT latency FROM append_metrics`).one().latency);
      this.runtimeRoutes = this.compileRuntimeRoutes(
        this.sql.exec<{ name: string; filter: string | null }>(`SELECT name, filter FROM runtime_routes ORDER BY name`).toArray(),
      );
      this.alarmAt = await ctx.storage.getAlarm();
      const row = this.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = 'head'`).toArray()[0];
      const last = this.sql.exec<{ s: number | null }>(`SELECT MAX(sequence) AS s FROM events`).one().s ?? 0;
      this.head = Math.max(row ? Number(row.value) : 0, last);
      this.name = this.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = 'name'`).toArray()[0]?.value;
      this.archivedThrough = this.sql.exec<{ s: number | null }>(`SELECT MAX(last) AS s FROM segments`).one().s ?? 0;
    });
  }

  /**
   * Streams (event sourcing): each stream event's version is in its row (and stored body), and
   * each stream's current version in `streams` — kept apart from the rows so a version survives
   * the trimming of old events. Added to objects created before streams existed, in place.
   */
  private createStreamTables(): void {
    const columns = this.sql.exec<{ name: string }>(`PRAGMA table_info(events)`).toArray();
    if (!columns.some((c) => c.name === "stream_version")) this.sql.exec(`ALTER TABLE events ADD COLUMN stream_version INTEGER`);
    this.sql.exec(`CREATE UNIQUE INDEX IF NOT EXISTS events_stream ON events (subject, stream_version) WHERE stream_version IS NOT NULL`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS streams (
      subject       TEXT PRIMARY KEY,
      version       INTEGER NOT NULL,
      last_sequence INTEGER NOT NULL,
      updated_at    INTEGER NOT NULL
    )`);
    // Where trimmed stream events are (their rows are gone; the events are in R2 segments).
    this.sql.exec(`CREATE TABLE IF NOT EXISTS stream_archive (
      subject        TEXT NOT NULL,
      stream_version INTEGER NOT NULL,
      sequence       INTEGER NOT NULL,
      PRIMARY KEY (subject, stream_version)
    ) WITHOUT ROWID`);
    // The latest snapshot per stream, beside it (a newer one replaces it).
    this.sql.exec(`CREATE TABLE IF NOT EXISTS snapshots (
      subject    TEXT PRIMARY KEY,
      version    INTEGER NOT NULL,
      schema     INTEGER NOT NULL,
      state      TEXT NOT NULL,
      created_at INTEGER NOT NULL
    )`);
  }

  async append(input: AppendInput): Promise<AppendResult> {
    const started = Date.now();
    const { topic, partition, events, expect } = parseArgs(appendInputSchema, input, "append input");
    if (this.inFlight >= this.testing.maxInFlight) {
      return {
        ok: false,
        code: "overloaded",
        detail: `partition ${topic}/${partition} has ${this.inFlight} appends in flight`,
        retryAfter: config.partitionLog.retryAfterSeconds,
      };
    }
    this.inFlight++;
    try {
      let result: AppendResult;
      try {
        // Configured subscriptions of the topic, then runtime (webhook) ones.
        const routes = this.runtimeRoutes.length === 0 ? routesFor(topic) : [...routesFor(topic), ...this.runtimeRoutes];
        const outbox = routes.length > 0 ? new OutboxWrites(this.sql, routes, this.routed, isUnfiltered) : undefined;
        result = this.ctx.storage.transactionSync(() => this.commit(topic, partition, events, outbox, expect));
        // Only once the transaction committed; a rollback leaves the in-memory state untouched.
        this.name = partitionName(topic, partition);
        if (outbox !== undefined && result.ok) this.routed = outbox.routed;
      } catch (err) {
        if (!(err instanceof ConflictAbort)) throw err;
        return {
          ok: false,
          code: "duplicate_conflict",
          detail: `event ${JSON.stringify(err.id)} from source ${JSON.stringify(err.source)} was already stored at sequence ${err.sequence} with different content`,
          source: err.source,
          id: err.id,
          sequence: err.sequence,
        };
      }
      // The alarm is the relay's safety net: set before the commit is acknowledged, so an
      // eviction right after the 202 still delivers.
      if (result.ok && result.queued > 0) await this.ensureAlarm(RELAY_RETRY_MS);
      if (result.ok) await this.scheduleArchive();
      // Resolves once the transaction is on disk; meanwhile later appends may run, which is
      // what the in-flight bound counts.
      await this.ctx.storage.sync();
      if (result.ok && this.testing.metricsOn) observe(this.appendLatency, (Date.now() - started) / 1000);
      // Relay right after the commit, without holding the caller's response. While the relay is
      // failing, the alarm (due within RELAY_RETRY_MS, see above) retries it with backoff instead:
      // each attempt reads the outbox backlog, so retrying on every commit during a queue outage
      // would make every append pay for the whole backlog.
      if (result.ok && result.queued > 0 && this.relayFailures === 0) void this.relay();
      return result;
    } finally {
      this.inFlight--;
    }
  }

  private commit(
    topic: string,
    partition: number,
    events: z.output<typeof eventInput>[],
    outbox: OutboxWrites | undefined,
    expect: { subject: string; version: ExpectedVersion } | undefined,
  ): AppendResult {
    this.assertIdentity(topic, partition);
    if (expect !== undefined) {
      const verdict = this.checkExpectation(expect, events);
      if (verdict !== undefined) return verdict;
    }
    /** Stream versions as this transaction moves them (subject → version, last sequence). */
    const streams = new Map<string, { version: number; lastSequence: number }>();
    let head = this.head;
    const out: AppendedEvent[] = [];
    const receivedAt = Date.now();
    // The server attributes, as canonical members in key order: partition < receivedtime < sequence.
    const partitionMember: Member = ["partition", JSON.stringify(partition)];
    const receivedMember: Member = ["receivedtime", JSON.stringify(new Date(receivedAt).toISOString())];
    let queued = 0;
    // Metrics counters (EVENTLINE_METRICS): bytes stored and duplicates answered by this call.
    let bytes = 0;
    let duplicates = 0;
    for (const { source, id, type, subject, traceparent, hash, members, stream } of events) {
      const sequence = head + 1;
      const sequenceMember: Member = ["sequence", JSON.stringify(formatSequence(sequence))];
      let streamVersion: number | null = null;
      if (stream === true && subject !== undefined) {
        const current = streams.get(subject) ?? this.streamState(subject);
        streamVersion = current.version + 1;
      }
      // canonicalJson({ ...event, partition, sequence, receivedtime[, streamversion] }), from the event's members.
      const body = joinMembers(
        members,
        streamVersion === null
          ? [partitionMember, receivedMember, sequenceMember]
          : [partitionMember, receivedMember, sequenceMember, ["streamversion", JSON.stringify(streamVersion)]],
      );
      // The idempotency check is the unique index: a (source, id) already stored inserts nothing.
      const inserted =
        this.sql.exec(
          `INSERT INTO events (sequence, source, id, hash, type, subject, traceparent, received_at, body, stream_version)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, id) DO NOTHING`,
          sequence,
          source,
          id,
          hash,
          type,
          subject ?? null,
          traceparent,
          receivedAt,
          body,
          streamVersion,
        ).rowsWritten > 0;
      if (!inserted) {
        const existing = this.existing(source, id);
        if (existing.hash !== hash) throw new ConflictAbort(source, id, existing.sequence);
        duplicates++;
        out.push({
          id,
          source,
          sequence: existing.sequence,
          duplicate: true,
          ...(existing.stream_version !== null && { streamVersion: existing.stream_version }),
        });
        continue;
      }
      head = sequence;
      if (this.testing.metricsOn) bytes += utf8Length(body);
      if (streamVersion !== null && subject !== undefined) streams.set(subject, { version: streamVersion, lastSequence: sequence });
      // Filters see the event exactly as stored.
      if (outbox !== undefined) {
        queued += outbox.add(
          sequence,
          () => JSON.parse(body) as Record<string, unknown>,
          // The same values as in `body` (membersAgree checked them), without parsing it.
          () => ({
            id,
            source,
            type,
            ...(subject !== undefined && { subject }),
            ...(streamVersion !== null && { streamversion: streamVersion }),
          }),
        );
      }
      out.push({ id, source, sequence, duplicate: false, ...(streamVersion !== null && { streamVersion }) });
    }
    outbox?.finish();
    for (const [subject, { version, lastSequence }] of streams) {
      this.sql.exec(
        `INSERT INTO streams (subject, version, last_sequence, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (subject) DO UPDATE SET version = excluded.version, last_sequence = excluded.last_sequence, updated_at = excluded.updated_at`,
        subject,
        version,
        lastSequence,
        receivedAt,
      );
    }
    // The call's metrics counters, in its transaction: one UPDATE per call. The latency histogram
    // written is the one in memory, so a call's own latency is persisted by the next call.
    if (this.testing.metricsOn) {
      this.sql.exec(
        `UPDATE append_metrics SET bytes = bytes + ?, duplicates = duplicates + ?, latency = ? WHERE id = 1`,
        bytes,
        duplicates,
        JSON.stringify(this.appendLatency),
      );
    }
    // Only after every statement succeeded; a throw above rolls the transaction back and
    // leaves the in-memory head untouched.
    this.head = head;
    return { ok: true, events: out, head, queued };
  }

  private existing(source: string, id: string) {
    return this.sql
      .exec<{ sequence: number; hash: string; stream_version: number | null }>(
        `SELECT sequence, hash, stream_version FROM events WHERE source = ? AND id = ?`,
        source,
        id,
      )
      .one();
  }

  private streamState(subject: string): { version: number; lastSequence: number } {
    const row = this.sql
      .exec<{ version: number; last_sequence: number }>(`SELECT version, last_sequence FROM streams WHERE subject = ?`, subject)
      .toArray()[0];
    return { version: row?.version ?? 0, lastSequence: row?.last_sequence ?? 0 };
  }

  /**
   * Inside the append transaction, before anything is written: undefined when the append may go
   * ahead, else its answer. Re-sending an append that already committed (every event stored, the
   * first where the expectation put it) is answered as duplicates, not as a conflict.
   */
  private checkExpectation(
    expect: { subject: string; version: ExpectedVersion },
    events: z.output<typeof eventInput>[],
  ): AppendResult | undefined {
    const current = this.streamState(expect.subject).version;
    const stored = events.map((e) => {
      const row = this.sql
        .exec<{ sequence: number; hash: string; stream_version: number | null; subject: string | null }>(
          `SELECT sequence, hash, stream_version, subject FROM events WHERE source = ? AND id = ?`,
          e.source,
          e.id,
        )
        .toArray()[0];
      if (row !== undefined && row.hash !== e.hash) throw new ConflictAbort(e.source, e.id, row.sequence);
      return row;
    });
    const first = stored[0];
    const replayed =
      first?.stream_version != null &&
      first.subject === expect.subject &&
      stored.every(
        (row, i) => row !== undefined && row.subject === expect.subject && row.stream_version === (first.stream_version ?? 0) + i,
      ) &&
      versionMatches(expect.version, first.stream_version - 1);
    if (replayed) return undefined; // the insert loop reports each event as a duplicate at its original position
    if (versionMatches(expect.version, current)) return undefined;
    const wanted = typeof expect.version === "number" ? `version ${expect.version}` : JSON.stringify(expect.version);
    return {
      ok: false,
      code: "version_conflict",
      detail: `stream ${JSON.stringify(expect.subject)} is at version ${current}; the append expected ${wanted}`,
      subject: expect.subject,
      expected: expect.version,
      currentVersion: current,
    };
  }

  /** A partition object serves exactly one (topic, partition) for its whole life. */
  private assertIdentity(topic: string, partition: number): void {
    const name = partitionName(topic, partition);
    if (this.name === undefined) {
      // Part of the append transaction; `this.name` is set by append() once it committed.
      this.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('name', ?)`, name);
    } else if (this.name !== name) {
      throw new Error(`partition object for ${this.name} was called as ${name}`);
    }
  }

  /**
   * Events from `from` in sequence order, exactly as stored: archived ranges come from their R2
   * segments, the rest from the log, so a reader cannot tell where an event lives.
   */
  async read(from: number, limit: number): Promise<ReadResult> {
    const args = parseArgs(readInputSchema, { from, limit }, "read input");
    const localFirst = this.firstSequence();
    const events: string[] = [];
    let next = args.from;
    if (localFirst === 0 || next < localFirst) {
      // Archived (trimmed) part first, segment by segment.
      const segments = this.sql
        .exec<{ first: number; last: number; key: string }>(
          `SELECT first, last, key FROM segments WHERE last >= ? ORDER BY first LIMIT ?`,
          next,
          args.limit,
        )
        .toArray();
      for (const segment of segments) {
        if (events.length >= args.limit || (localFirst !== 0 && next >= localFirst)) break;
        if (segment.first > next) break; // a hole: cannot happen while segments are contiguous
        const lines = await this.segmentLinesOf(segment.key);
        const start = next - segment.first;
        const take = lines.slice(start, start + (args.limit - events.length));
        events.push(...take);
        next += take.length;
      }
    }
    if (events.length < args.limit && localFirst !== 0) {
      const rows = this.sql
        .exec<{ sequence: number; body: string }>(
          `SELECT sequence, body FROM events WHERE sequence >= ? ORDER BY sequence LIMIT ?`,
          Math.max(next, localFirst),
          args.limit - events.length,
        )
        .toArray();
      if (rows.length > 0 && rows[0]?.sequence === next) {
        events.push(...rows.map((r) => r.body));
        next = (rows.at(-1)?.sequence ?? next - 1) + 1;
      } else if (rows.length > 0 && events.length === 0) {
        // `from` lies before anything readable: start at the first event there is.
        events.push(...rows.map((r) => r.body));
        next = (rows.at(-1)?.sequence ?? 0) + 1;
      }
    }
    const archivedFirst = this.sql.exec<{ s: number | null }>(`SELECT MIN(first) AS s FROM segments`).one().s;
    return {
      events,
      head: this.head,
      first: archivedFirst ?? localFirst,
      last: events.length === 0 ? null : next - 1,
    };
  }

  private async segmentLinesOf(key: string): Promise<string[]> {
    const cached = this.segmentCache.get(key);
    if (cached !== undefined) return cached;
    const object = await this.env.ARCHIVE.get(key);
    if (object === null) throw new Error(`archived segment ${key} is missing from R2`);
    const lines = segmentLines(await gunzip(await object.arrayBuffer()));
    this.segmentCache.set(key, lines);
    // A small LRU: reads of an archived range page through a few segments at a time.
    if (this.segmentCache.size > 8) this.segmentCache.delete(this.segmentCache.keys().next().value as string);
    return lines;
  }

  /** A stream's current version (0 when it has no events). */
  streamInfo(subject: string): StreamInfo {
    const name = parseArgs(subjectSchema, subject, "subject");
    const row = this.sql
      .exec<{ version: number; last_sequence: number; updated_at: number }>(
        `SELECT version, last_sequence, updated_at FROM streams WHERE subject = ?`,
        name,
      )
      .toArray()[0];
    return { subject: name, version: row?.version ?? 0, lastSequence: row?.last_sequence ?? 0, updatedAt: row?.updated_at ?? null };
  }

  /** A stream's events from version `from`, in order, exactly as stored. */
  /** A stream's events from version `from`, in order, exactly as stored: trimmed ones from the archive. */
  async readStream(subject: string, from: number, limit: number): Promise<StreamPage> {
    const args = parseArgs(readStreamSchema, { subject, from, limit }, "stream read");
    // Both lookups before any await: a trim while segments are fetched must not open a gap.
    const archived = this.sql
      .exec<{ stream_version: number; sequence: number }>(
        `SELECT stream_version, sequence FROM stream_archive WHERE subject = ? AND stream_version >= ? ORDER BY stream_version LIMIT ?`,
        args.subject,
        args.from,
        args.limit,
      )
      .toArray();
    const local = this.sql
      .exec<{ stream_version: number; body: string }>(
        `SELECT stream_version, body FROM events WHERE subject = ? AND stream_version >= ? ORDER BY stream_version LIMIT ?`,
        args.subject,
        (archived.at(-1)?.stream_version ?? args.from - 1) + 1,
        args.limit - archived.length,
      )
      .toArray();
    const located = archived.map(({ stream_version, sequence }) => {
      const segment = this.segmentHolding(sequence);
      if (segment === undefined)
        throw new Error(`stream ${args.subject} version ${stream_version}: sequence ${sequence} is in no archived segment`);
      return { stream_version, sequence, segment };
    });
    const version = this.streamState(args.subject).version;
    const events: string[] = [];
    for (const { sequence, segment } of located) {
      const line = (await this.segmentLinesOf(segment.key))[sequence - segment.first];
      if (line === undefined) throw new Error(`archived segment ${segment.key} lacks sequence ${sequence}`);
      events.push(line);
    }
    events.push(...local.map((r) => r.body));
    const last = local.at(-1)?.stream_version ?? archived.at(-1)?.stream_version ?? null;
    return { events, version, last };
  }

  /**
   * What a command handler needs to rebuild a stream's state in one call: its latest snapshot
   * whose `schema` is `schema` (others are ignored), and the events after it.
   */
  async loadStream(subject: string, schema: number, limit: number = config.read.maxLimit): Promise<LoadedStream> {
    const name = parseArgs(subjectSchema, subject, "subject");
    const max = parseArgs(readInputSchema.shape.limit, limit, "limit");
    const snapshot =
      this.sql
        .exec<{ version: number; schema: number; state: string }>(
          `SELECT version, schema, state FROM snapshots WHERE subject = ? AND schema = ?`,
          name,
          schema,
        )
        .toArray()[0] ?? null;
    const { version, lastSequence } = this.streamState(name);
    const start = (snapshot?.version ?? 0) + 1;
    // Capped at the version read above: appends while segments are fetched are not in this load.
    const page = await this.readStream(name, start, Math.max(1, Math.min(max, version - start + 1)));
    const firstVersion = page.events[0] === undefined ? null : (JSON.parse(page.events[0]) as { streamversion?: number }).streamversion;
    if (version >= start && firstVersion !== start) {
      // Folding from anywhere else would give a wrong state: refuse instead.
      throw new Error(`stream ${name}: version ${start} cannot be read (first found: ${firstVersion ?? "none"})`);
    }
    const events = page.last !== null && page.last > version ? page.events.slice(0, version - start + 1) : page.events;
    return { snapshot, events, version, lastSequence, complete: Math.min(page.last ?? 0, version) >= version || version < start };
  }

  /**
   * Keeps `state` as the stream's snapshot at `version` unless a newer one is kept already.
   * The caller folded the stream up to `version`; the version must exist.
   */
  saveSnapshot(input: { subject: string; version: number; schema: number; state: string }): boolean {
    const { subject, version, schema, state } = parseArgs(snapshotInputSchema, input, "snapshot");
    const current = this.streamState(subject).version;
    if (version > current) throw new TypeError(`invalid snapshot: stream ${subject} is at version ${current}, not ${version}`);
    return (
      this.sql.exec(
        `INSERT INTO snapshots (subject, version, schema, state, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (subject) DO UPDATE SET version = excluded.version, schema = excluded.schema, state = excluded.state,
           created_at = excluded.created_at
         WHERE excluded.version > snapshots.version OR excluded.schema <> snapshots.schema`,
        subject,
        version,
        schema,
        state,
        Date.now(),
      ).rowsWritten > 0
    );
  }

  /** Where an event (source, id) is stored, if it is. */
  findEvent(source: string, id: string): { sequence: number; streamVersion: number | null; body: string } | null {
    const row = this.sql
      .exec<{ sequence: number; stream_version: number | null; body: string }>(
        `SELECT sequence, stream_version, body FROM events WHERE source = ? AND id = ?`,
        parseArgs(z.string().min(1), source, "source"),
        parseArgs(z.string().min(1), id, "id"),
      )
      .toArray()[0];
    return row === undefined ? null : { sequence: row.sequence, streamVersion: row.stream_version, body: row.body };
  }

  /**
   * Counters for GET /v1/metrics, and the commit time of each of `sequences` (a subscription's
   * checkpoint + 1: how old its oldest unhandled event is). An event already trimmed from the log
   * answers its segment's last commit time (so the age is a lower bound).
   */
  metrics(sequences: number[] = [], checkpoints: Record<string, number> = {}): PartitionMetrics {
    const asked = parseArgs(z.array(z.number().int()).max(10_000), sequences, "sequences");
    const given = parseArgs(checkpointsSchema, checkpoints, "checkpoints");
    const row = this.sql.exec<{ bytes: number; duplicates: number }>(`SELECT bytes, duplicates FROM append_metrics`).one();
    const committedAt: Record<number, number | null> = {};
    for (const sequence of asked) committedAt[sequence] = this.commitTime(sequence);
    return {
      head: this.head,
      bytes: row.bytes,
      duplicates: row.duplicates,
      appendLatency: { buckets: [...this.appendLatency.buckets], sum: this.appendLatency.sum, count: this.appendLatency.count },
      archived: this.archiveRange(),
      routed: this.routedThrough(),
      committedAt,
      unacknowledged: unacknowledged(this.sql, given),
    };
  }

  private commitTime(sequence: number): number | null {
    if (sequence < 1 || sequence > this.head) return null;
    const local = this.sql.exec<{ received_at: number }>(`SELECT received_at FROM events WHERE sequence = ?`, sequence).toArray()[0];
    if (local !== undefined) return local.received_at;
    const segment = this.segmentHolding(sequence);
    return segment !== undefined && segment.last >= sequence ? segment.last_received_at : null;
  }

  /** `checkpoints`: subscriptions' checkpoints here, for their `unacknowledged` counts. */
  stats(checkpoints: Record<string, number> = {}): PartitionStats {
    const given = parseArgs(checkpointsSchema, checkpoints, "checkpoints");
    // Sequences are contiguous and only a prefix is ever removed, so the count is derived
    // rather than counted (COUNT(*) would scan the whole log).
    const first = this.firstSequence();
    return {
      head: this.head,
      count: first === 0 ? 0 : this.head - first + 1,
      first,
      archived: this.archiveRange(),
      ...this.deliveryStats(),
      routed: this.routedThrough(),
      unacknowledged: unacknowledged(this.sql, given),
    };
  }

  private deliveryStats(): Pick<PartitionStats, "outbox" | "inTransit" | "redelivered"> {
    const depths = deliveryDepths(this.sql);
    return { outbox: depths.unsent, inTransit: depths.inTransit, redelivered: depths.redelivered };
  }

  /** Where the event at `sequence` stands with each subscription that has not acknowledged it yet. */
  deliveryOf(sequence: number): PendingDelivery[] {
    return pendingDeliveries(this.sql, parseArgs(z.number().int().min(1), sequence, "sequence"));
  }

  /**
   * The sequences in `from`..`to` (at most 1,000 apart) this log still holds for `subscription`:
   * routed to it and not yet acknowledged, so live delivery (and redelivery) brings them. A replay
   * job leaves these to the log and sends the rest as history (ADR 0035).
   */
  heldFor(subscription: string, from: number, to: number): number[] {
    const args = parseArgs(heldInputSchema, { subscription, from, to }, "held range");
    return heldSequences(this.sql, args.subscription, args.from, args.to);
  }

  /** Last sequence routed to each subscription, as committed. */
  private routedThrough(): Record<string, number> {
    const rows = this.sql
      .exec<{ subscription: string; last_sequence: number }>(`SELECT subscription, last_sequence FROM routing`)
      .toArray();
    return Object.fromEntries(rows.map((r) => [r.subscription, r.last_sequence]));
  }

  /** The archived segment holding `sequence` if it is archived: the last one starting at or before it. */
  private segmentHolding(sequence: number): { first: number; last: number; key: string; last_received_at: number } | undefined {
    return this.sql
      .exec<{ first: number; last: number; key: string; last_received_at: number }>(
        `SELECT first, last, key, last_received_at FROM segments WHERE first <= ? ORDER BY first DESC LIMIT 1`,
        sequence,
      )
      .toArray()[0];
  }

  /**
   * Replaces the runtime subscriptions this partition routes to; they apply to events committed
   * from now on, like configured ones (filters evaluated at commit time).
   */
  setRuntimeRoutes(routes: RuntimeRoutes): number {
    const parsed = parseArgs(runtimeRoutesSchema, routes, "runtime routes");
    const compiled = this.compileRuntimeRoutes(
      parsed.map((r) => ({ name: r.name, filter: r.filter === null ? null : JSON.stringify(r.filter) })),
    );
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(`DELETE FROM runtime_routes`);
      for (const r of parsed)
        this.sql.exec(
          `INSERT INTO runtime_routes (name, filter) VALUES (?, ?)`,
          r.name,
          r.filter === null ? null : JSON.stringify(r.filter),
        );
    });
    this.runtimeRoutes = compiled;
    return compiled.length;
  }

  private compileRuntimeRoutes(rows: { name: string; filter: string | null }[]): Route[] {
    return rows.map((r) => {
      const pattern = r.filter === null ? undefined : (JSON.parse(r.filter) as FilterPattern);
      const route: Route = {
        name: r.name,
        queue: RUNTIME_ROUTE_QUEUE,
        matches: compileFilter(pattern),
        redeliveryMs: DEFAULT_REDELIVERY_SECONDS * 1000,
        retryCapMs: WEBHOOK_BACKOFF.capSeconds * 1000,
        ...(pattern === undefined ? {} : { keys: patternKeys(pattern) }),
      };
      if (r.filter === null) UNFILTERED.add(route);
      return route;
    });
  }

  /**
   * The relay's retry (sends whatever the outbox has not sent), the redelivery of what was sent
   * and not acknowledged in time, and archiving.
   */
  override async alarm(): Promise<void> {
    this.alarmAt = null;
    await this.relay();
    await this.redeliver();
    if (Date.now() >= this.archiveRetryAt) {
      try {
        await this.archive(false);
        this.archiveFailures = 0;
        this.archiveRetryAt = 0;
      } catch (err) {
        this.archiveFailures++;
        const retryMs = Math.min(10 * 60_000, 30_000 * 2 ** (this.archiveFailures - 1));
        this.archiveRetryAt = Date.now() + retryMs;
        this.log.warn("archiving failed; retrying later", { ...this.identity(), failures: this.archiveFailures, retryMs, error: err });
      }
    }
    await this.scheduleArchive();
  }

  // ---------------------------------------------------------------------------------------------
  // Archive (R2)

  /** The (topic, partition) this object serves, from its recorded name; undefined before its first append. */
  private identity(): { topic: string; partition: number } | undefined {
    return this.name === undefined ? undefined : parsePartitionName(this.name);
  }

  private topicConfig() {
    const id = this.identity();
    return id === undefined ? undefined : findTopic(config, id.topic);
  }

  private archiveRange(): ArchiveRange | null {
    const row = this.sql
      .exec<{ first: number | null; last: number | null; n: number; bytes: number | null }>(
        `SELECT MIN(first) AS first, MAX(last) AS last, COUNT(*) AS n, SUM(bytes) AS bytes FROM segments`,
      )
      .one();
    if (row.first === null || row.last === null) return null;
    return { first: row.first, last: row.last, segments: row.n, bytes: row.bytes ?? 0 };
  }

  /** Sets the alarm for when the next segment is due (full, or its oldest event old enough) and for trimming. */
  private async scheduleArchive(): Promise<void> {
    const topic = this.topicConfig();
    if (topic === undefined) return;
    const { segmentSeconds } = topic.archive;
    const segmentEvents = this.testing.segmentEvents ?? topic.archive.segmentEvents;
    const now = Date.now();
    // After failures, nothing brings the next pass forward of its backoff.
    const at = (due: number) => this.ensureAlarm(Math.max(0, Math.max(due, this.archiveRetryAt) - now));
    if (this.head > this.archivedThrough) {
      if (this.head - this.archivedThrough >= segmentEvents) return at(now);
      const oldest = this.sql
        .exec<{ received_at: number }>(`SELECT received_at FROM events WHERE sequence = ?`, this.archivedThrough + 1)
        .toArray()[0];
      if (oldest !== undefined) return at(oldest.received_at + segmentSeconds * 1000);
    }
    // Archived events still in the log leave it once past retention, unless a subscription has not
    // acknowledged them yet (they may have to be sent again; the relay's own alarm comes first then).
    const outboxFirst = this.sql.exec<{ s: number | null }>(`SELECT MIN(sequence) AS s FROM outbox`).one().s;
    const trimmable = Math.min(this.archivedThrough, outboxFirst === null ? this.archivedThrough : outboxFirst - 1);
    // trim() takes whole segments once their newest event is past retention: the first local
    // event's segment says when the next trim is due.
    const first = this.firstSequence();
    if (first === 0 || first > trimmable) return;
    const segment = this.segmentHolding(first);
    if (segment !== undefined) await at(segment.last_received_at + this.retention(topic));
  }

  private retention(topic: { retentionHours: number }): number {
    return this.testing.retentionMs ?? topic.retentionHours * 3_600_000;
  }

  /**
   * Seals and archives what is unarchived now (operators, tests), then trims what retention
   * allows. Returns the segments written.
   */
  async archiveNow(): Promise<ArchiveResult> {
    const result = await this.archive(true);
    await this.scheduleArchive();
    return result;
  }

  /** One archive pass at a time; a second call waits for the running one and then runs its own. */
  private async archive(force: boolean): Promise<ArchiveResult> {
    while (this.archiving !== undefined) await this.archiving.catch(() => undefined);
    this.archiving = this.archivePass(force);
    try {
      return await this.archiving;
    } finally {
      this.archiving = undefined;
    }
  }

  private async archivePass(force: boolean): Promise<ArchiveResult> {
    const started = Date.now();
    const topic = this.topicConfig();
    const id = this.identity();
    if (topic === undefined || id === undefined) return { sealed: [], archivedThrough: this.archivedThrough, trimmed: 0 };
    const { partition } = id;
    const { segmentSeconds } = topic.archive;
    const segmentEvents = this.testing.segmentEvents ?? topic.archive.segmentEvents;
    const sealed: Segment[] = [];
    for (;;) {
      // A range chosen earlier but not committed (a crash after the R2 put) is sealed again as
      // the same range, so its key, and so its object, is the same: no duplicate segments.
      const pending = this.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = 'pending_segment'`).toArray()[0];
      let range: { first: number; last: number };
      if (pending !== undefined) {
        range = JSON.parse(pending.value) as { first: number; last: number };
      } else {
        const unarchived = this.head - this.archivedThrough;
        if (unarchived <= 0) break;
        const oldest = this.sql
          .exec<{ received_at: number }>(`SELECT received_at FROM events WHERE sequence = ?`, this.archivedThrough + 1)
          .one().received_at;
        if (!force && unarchived < segmentEvents && Date.now() - oldest < segmentSeconds * 1000) break;
        range = { first: this.archivedThrough + 1, last: this.segmentEnd(segmentEvents) };
        this.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('pending_segment', ?)`, JSON.stringify(range));
      }
      sealed.push(await this.sealSegment(topic.name, partition, range));
    }
    // Also when an earlier pass stopped between committing a segment and writing the manifest.
    if (sealed.length > 0 || this.manifestBehind()) await this.writeManifest(topic.name, partition);
    // Only events every subscription acknowledged may go: learn the latest checkpoints first.
    if (this.trimBlockedByOutbox(topic)) await acknowledgeCheckpoints(this.sql, d1Acks(this.env.DB, topic.name, partition));
    const trimmed = this.trim(topic);
    if (sealed.length > 0 || trimmed > 0) {
      this.log.info("archived", {
        topic: topic.name,
        partition,
        segments: sealed.length,
        first: sealed[0]?.first ?? null,
        last: sealed.at(-1)?.last ?? null,
        archivedThrough: this.archivedThrough,
        trimmed,
        durationMs: Date.now() - started,
      });
    }
    return { sealed, archivedThrough: this.archivedThrough, trimmed };
  }

  /** Writes one segment to R2 (or adopts the identical one already there), verifies it, commits it. */
  private async sealSegment(topic: string, partition: number, range: { first: number; last: number }): Promise<Segment> {
    const rows = this.sql
      .exec<{ sequence: number; received_at: number; body: string }>(
        `SELECT sequence, received_at, body FROM events WHERE sequence BETWEEN ? AND ? ORDER BY sequence`,
        range.first,
        range.last,
      )
      .toArray();
    if (rows.length !== range.last - range.first + 1 || rows[0]?.sequence !== range.first) {
      throw new Error(`partition ${topic}/${partition} cannot seal ${range.first}-${range.last}: events missing from the log`);
    }
    const text = segmentText(rows.map((r) => r.body));
    const key = segmentKey(topic, partition, range.first, range.last);
    // A head (no body) first: the object exists only after a crash, rarely.
    const existing = (await this.env.ARCHIVE.head(key)) === null ? null : await this.env.ARCHIVE.get(key);
    let size: number;
    let sha256: string;
    if (existing !== null) {
      // Put before a crash: adopt it only if it holds exactly these events (read back in full).
      const bytes = new Uint8Array(await existing.arrayBuffer());
      if ((await gunzip(bytes)) !== text) throw new Error(`archive object ${key} exists with other content; refusing to overwrite it`);
      size = bytes.byteLength;
      sha256 = await sha256Bytes(bytes);
    } else {
      const gz = await gzip(text);
      sha256 = await sha256Bytes(gz);
      // Verified by checksum: R2 refuses the put unless the bytes it stored hash to `sha256`;
      // then the object's metadata must say so too.
      const put = await this.env.ARCHIVE.put(key, gz, {
        sha256,
        httpMetadata: { contentType: "application/x-ndjson", contentEncoding: "gzip" },
        customMetadata: { first: String(range.first), last: String(range.last), count: String(rows.length) },
      });
      await this.testing.afterSegmentPut(key);
      const storedSha = put?.checksums.sha256;
      if (put === null || put.size !== gz.byteLength || (storedSha !== undefined && hex(storedSha) !== sha256)) {
        throw new Error(`archive object ${key} does not match what was written (size ${put?.size ?? "missing"} of ${gz.byteLength})`);
      }
      size = gz.byteLength;
    }
    const previous =
      this.sql.exec<{ chain: string }>(`SELECT chain FROM segments ORDER BY first DESC LIMIT 1`).toArray()[0]?.chain ?? GENESIS_CHAIN;
    const segment: Segment = {
      first: range.first,
      last: range.last,
      count: rows.length,
      firstReceivedAt: rows[0]?.received_at ?? 0,
      // The newest, not the last: trimming judges a segment's age by it (see trim()).
      lastReceivedAt: rows.reduce((newest, r) => Math.max(newest, r.received_at), 0),
      bytes: size,
      sha256,
      chain: await chainOf(previous, sha256),
      key,
    };
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        `INSERT INTO segments (first, last, count, first_received_at, last_received_at, bytes, sha256, chain, key)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        segment.first,
        segment.last,
        segment.count,
        segment.firstReceivedAt,
        segment.lastReceivedAt,
        segment.bytes,
        segment.sha256,
        segment.chain,
        segment.key,
      );
      this.sql.exec(`DELETE FROM meta WHERE key = 'pending_segment'`);
    });
    this.archivedThrough = segment.last;
    return segment;
  }

  /** The manifest as this object holds it. */
  manifest(): Manifest | null {
    const id = this.identity();
    if (id === undefined) return null;
    const segments = this.sql
      .exec<{
        first: number;
        last: number;
        count: number;
        first_received_at: number;
        last_received_at: number;
        bytes: number;
        sha256: string;
        chain: string;
        key: string;
      }>(`SELECT * FROM segments ORDER BY first`)
      .toArray()
      .map((r) => ({
        first: r.first,
        last: r.last,
        count: r.count,
        firstReceivedAt: r.first_received_at,
        lastReceivedAt: r.last_received_at,
        bytes: r.bytes,
        sha256: r.sha256,
        chain: r.chain,
        key: r.key,
      }));
    return { v: 1, topic: id.topic, partition: id.partition, segments, updatedAt: new Date().toISOString() };
  }

  private async writeManifest(topic: string, partition: number): Promise<void> {
    const manifest = this.manifest();
    if (manifest === null) return;
    await this.env.ARCHIVE.put(manifestKey(topic, partition), JSON.stringify(manifest, null, 1), {
      httpMetadata: { contentType: "application/json" },
    });
    const chain = manifest.segments.at(-1)?.chain;
    if (chain !== undefined) this.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('manifest_chain', ?)`, chain);
  }

  /** True when R2's manifest.json was last written before the newest segment was committed. */
  private manifestBehind(): boolean {
    const newest = this.sql.exec<{ chain: string }>(`SELECT chain FROM segments ORDER BY first DESC LIMIT 1`).toArray()[0]?.chain;
    const written = this.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = 'manifest_chain'`).toArray()[0]?.value;
    return newest !== undefined && newest !== written;
  }

  /**
   * Where the next segment ends: at most `segmentEvents` events and about SEGMENT_MAX_CHARS of
   * stored text, so a segment of large events stays well within the object's memory.
   */
  private segmentEnd(segmentEvents: number): number {
    const rows = this.sql
      .exec<{ sequence: number; n: number }>(
        `SELECT sequence, length(body) AS n FROM events WHERE sequence > ? ORDER BY sequence LIMIT ?`,
        this.archivedThrough,
        segmentEvents,
      )
      .toArray();
    let total = 0;
    let last = this.archivedThrough + 1;
    for (const row of rows) {
      total += row.n;
      if (total > SEGMENT_MAX_CHARS && row.sequence > this.archivedThrough + 1) break;
      last = row.sequence;
    }
    return last;
  }

  /**
   * Checks R2 against the manifest there (and that one against this object's): every segment
   * present, unaltered, contiguous, its chain intact.
   */
  async verify(): Promise<{ ok: boolean; segments: number; problems: { key: string; problem: string }[] }> {
    const id = this.identity();
    if (id === undefined) return { ok: true, segments: 0, problems: [] };
    const key = manifestKey(id.topic, id.partition);
    const own = this.manifest();
    const stored = await this.env.ARCHIVE.get(key);
    if (stored === null) {
      return own === null || own.segments.length === 0
        ? { ok: true, segments: 0, problems: [] }
        : {
            ok: false,
            segments: own.segments.length,
            problems: [{ key, problem: "manifest missing from R2" }],
          };
    }
    const manifest = JSON.parse(await stored.text()) as Manifest;
    const result = await verifyArchive(this.env.ARCHIVE, manifest);
    const lastChain = own?.segments.at(-1)?.chain;
    if (lastChain !== undefined && manifest.segments.at(-1)?.chain !== lastChain) {
      result.problems.push({ key, problem: "manifest in R2 differs from the partition's record" });
      result.ok = false;
    }
    return result;
  }

  /**
   * Removes events from the log that are archived and verified, older than retention, and
   * acknowledged by every subscription they were routed to (no outbox row: neither unsent nor in
   * transit, so a redelivery can always read them). The head is persisted in the same transaction, so sequences
   * are never reused however many rows go.
   *
   * Age is judged per segment, by its newest event: a segment's events leave together once all
   * of them are past retention (like a Kafka log segment), so finding them reads the segments
   * table from the oldest local segment on, never the events table (which would be a scan of
   * every archived row on every pass).
   */
  /**
   * True when events are past retention and archived, so trimmable but for an outbox row at or below
   * them: only then is it worth a D1 read to learn what was acknowledged since the last check.
   */
  private trimBlockedByOutbox(topic: { retentionHours: number }): boolean {
    const old = this.retainedThrough(topic);
    if (old === null) return false;
    const outboxFirst = this.sql.exec<{ s: number | null }>(`SELECT MIN(sequence) AS s FROM outbox`).one().s;
    return outboxFirst !== null && outboxFirst <= Math.min(old, this.archivedThrough);
  }

  /** The last archived sequence past retention, judged by whole segments (null: none local). */
  private retainedThrough(topic: { retentionHours: number }): number | null {
    const first = this.firstSequence();
    if (first === 0 || first > this.archivedThrough) return null;
    const cutoff = Date.now() - this.retention(topic);
    return this.sql
      .exec<{ s: number | null }>(
        `SELECT MAX(last) AS s FROM segments WHERE first >= ? AND last_received_at < ?`,
        this.segmentHolding(first)?.first ?? 0,
        cutoff,
      )
      .one().s;
  }

  private trim(topic: { retentionHours: number }): number {
    const first = this.firstSequence();
    const old = this.retainedThrough(topic);
    if (old === null) return 0;
    const outboxFirst = this.sql.exec<{ s: number | null }>(`SELECT MIN(sequence) AS s FROM outbox`).one().s;
    const through = Math.min(old, this.archivedThrough, outboxFirst === null ? old : outboxFirst - 1);
    if (through < first) return 0;
    let removed = 0;
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('head', ?)`, String(this.head));
      // Streams keep finding their trimmed events, in the archive.
      this.sql.exec(
        `INSERT OR IGNORE INTO stream_archive (subject, stream_version, sequence)
         SELECT subject, stream_version, sequence FROM events WHERE sequence <= ? AND stream_version IS NOT NULL`,
        through,
      );
      removed = this.sql.exec(`DELETE FROM events WHERE sequence <= ?`, through).rowsWritten;
    });
    return removed;
  }

  /** The first sequence committed at or after `timeMs` (ms since epoch); head + 1 when none. */
  async locate(timeMs: number): Promise<number> {
    parseArgs(z.number().int().nonnegative(), timeMs, "time");
    const segment = this.sql
      .exec<{ first: number; key: string }>(`SELECT first, key FROM segments WHERE last_received_at >= ? ORDER BY first LIMIT 1`, timeMs)
      .toArray()[0];
    if (segment !== undefined) {
      const lines = await this.segmentLinesOf(segment.key);
      const i = lines.findIndex((line) => Date.parse((JSON.parse(line) as { receivedtime: string }).receivedtime) >= timeMs);
      if (i >= 0) return segment.first + i;
    }
    const row = this.sql
      .exec<{ s: number | null }>(
        `SELECT MIN(sequence) AS s FROM events WHERE received_at >= ? AND sequence > ?`,
        timeMs,
        this.archivedThrough,
      )
      .one();
    return row.s ?? this.head + 1;
  }

  /** Drains the outbox; at most one drain runs at a time, and a failure re-arms the alarm with backoff. */
  relay(): Promise<void> {
    if (this.relaying !== undefined) {
      this.relayAgain = true;
      return this.relaying;
    }
    const id = this.identity();
    if (id === undefined) return Promise.resolve();
    const { topic, partition } = id;
    const routeOf = (subscription: string) => {
      const route = this.routeOf(topic, subscription);
      return route === undefined ? undefined : { queue: route.queue, timeoutMs: this.redeliveryTimeout(route) };
    };
    this.relaying = (async () => {
      try {
        do {
          this.relayAgain = false;
          const sent = await drainOutbox(this.sql, topic, partition, routeOf, this.testing.send, (subscription, rows) =>
            this.log.warn("outbox rows dropped: subscription no longer configured", { topic, partition, subscription, rows }),
          );
          if (sent > 0) this.log.debug("relayed", { topic, partition, sent });
          // What was just sent is checked for acknowledgement when its timeout is up.
          const due = nextCheck(this.sql, Date.now());
          if (due !== null) await this.ensureAlarm(due - Date.now());
        } while (this.relayAgain);
        this.relayFailures = 0;
      } catch (err) {
        this.relayFailures++;
        const retryMs = Math.min(RELAY_RETRY_MAX_MS, RELAY_RETRY_MS * 2 ** (this.relayFailures - 1));
        this.log.warn("relay failed; the alarm retries", { topic, partition, failures: this.relayFailures, retryMs, error: err });
        await this.ensureAlarm(retryMs);
      } finally {
        this.relaying = undefined;
      }
    })();
    return this.relaying;
  }

  /**
   * A subscription's route as configured now. Looked up on every use, not snapshotted: a
   * subscription created while a relay runs must not have its fresh rows taken for a removed one's.
   */
  private routeOf(topic: string, subscription: string): Route | undefined {
    return [...routesFor(topic), ...this.runtimeRoutes].find((r) => r.name === subscription);
  }

  private redeliveryTimeout(route: Route): number {
    return this.testing.redeliveryMs ?? route.redeliveryMs;
  }

  /** What the delivery module works with (undefined before the first append names the partition). */
  private deliveryHost(): RedeliveryHost | undefined {
    const id = this.identity();
    if (id === undefined) return undefined;
    const { topic, partition } = id;
    return {
      sql: this.sql,
      topic,
      partition,
      routeOf: (subscription) => this.routeOf(topic, subscription),
      timeoutOf: (route) => this.redeliveryTimeout(route),
      readAcks: d1Acks(this.env.DB, topic, partition),
      send: this.testing.send,
      now: Date.now,
      log: this.log,
    };
  }

  /**
   * Sends again what subscriptions have not acknowledged within their timeout (ADR 0030), one pass
   * at a time, and sets the alarm for the next check; a failed pass is tried again later.
   */
  private redeliver(): Promise<void> {
    if (this.redelivering !== undefined) return this.redelivering;
    const host = this.deliveryHost();
    if (host === undefined) return Promise.resolve();
    this.redelivering = (async () => {
      try {
        const next = await runRedelivery(host);
        if (next !== null) await this.ensureAlarm(next - Date.now());
      } catch (err) {
        this.log.warn("redelivery pass failed; the alarm retries", { ...this.identity(), error: err, retryMs: RELAY_RETRY_MAX_MS });
        await this.ensureAlarm(RELAY_RETRY_MAX_MS);
      } finally {
        this.redelivering = undefined;
      }
    })();
    return this.redelivering;
  }

  private async ensureAlarm(inMs: number): Promise<void> {
    const at = Date.now() + inMs;
    if (this.alarmAt !== null && this.alarmAt <= at) return;
    this.alarmAt = at;
    await this.ctx.storage.setAlarm(at);
  }

  private firstSequence(): number {
    const row = this.sql.exec<{ s: number | null }>(`SELECT MIN(sequence) AS s FROM events`).one();
    return row.s ?? 0;
  }
}
