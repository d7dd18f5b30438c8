import { DurableObject } from "cloudflare:workers";
import { z } from "zod";
import config from "../../eventline.config";
import { createLogger } from "../../sdk/logger";
import { metricsEnabled } from "../../shared/metrics";
import { Waiters } from "../waiters";
import { Archiver } from "./archive/archiver";
import type { Manifest } from "./archive/format";
import { SegmentStore } from "./archive/segments";
import { Commands } from "./commands/commands";
import type { CommandInput, CommandOutcome } from "./commands/input";
import { hostedAggregates } from "./commands/registry";
import { Delivery } from "./delivery/relay";
import { firstHeld, heldSequences, type PendingDelivery, pendingDeliveries } from "./delivery/state";
import { type AlarmClient, type LogHost, type PartitionLogSeams, productionSeams } from "./host";
import { type AppendInput, heldInputSchema, parseAppendInput, parseArgs } from "./input";
import { ConflictAbort, EventLog } from "./log";
import { AppendMetrics } from "./metrics";
import { locate, metricsOf, type ReadSources, readEvents, statsOf } from "./reads";
import { Routes, type RuntimeRoutes, runtimeRoutesSchema } from "./routes";
import { migratePartitionLog } from "./schema";
import { Streams } from "./streams";
import type {
  AppendResult,
  ArchiveResult,
  LoadedStream,
  PartitionMetrics,
  PartitionStats,
  ReadResult,
  StreamInfo,
  StreamPage,
} from "./types";

export type { CommandEvent, CommandInput, CommandOutcome } from "./commands/input";
export { hostedAggregates } from "./commands/registry";
export type { PendingDelivery } from "./delivery/state";
export type { PartitionLogSeams } from "./host";
export { type AppendInput, appendInputSchema, type ExpectedVersion, expectedVersionSchema, versionMatches } from "./input";
export type { RuntimeRoutes } from "./routes";
export type * from "./types";

/** Aggregate states one partition object keeps in memory (least recently used go first). */
const AGGREGATE_CACHE_ENTRIES = 1_000;

/**
 * One partition of one topic: an ordered, durable, append-only event log in the object's SQLite
 * storage. Every append call is one SQLite transaction, so a call's events are stored all together
 * or not at all; the RPC result reaches the caller only after the runtime has made that
 * transaction durable (the output gate), which is what lets the Worker answer 202.
 *
 * The class is a thin RPC surface over capabilities, each owning its tables and logic behind a
 * narrow host (host.ts, ADR 0037): commit (log.ts), streams, commands (ADR 0040), routes, metrics,
 * delivery (relay and redelivery) and archive. It owns the one alarm and asks each capability when it next needs to
 * run; the schema is numbered migrations (schema.ts), run once in the constructor.
 */
interface Capabilities {
  log: EventLog;
  streams: Streams;
  routes: Routes;
  metrics: AppendMetrics;
  segments: SegmentStore;
  delivery: Delivery;
  archiver: Archiver;
  commands: Commands;
}

export class PartitionLog extends DurableObject<Env> {
  /** What tests change on one object (PartitionLogSeams); production never touches it. */
  readonly testing: PartitionLogSeams;
  private readonly host: LogHost;
  private readonly logger = createLogger({ component: "partition-log" });
  /** The capabilities, opened by the constructor's blockConcurrencyWhile (which every call waits for). */
  private opened: Capabilities | undefined;
  /** Appends whose transaction ran but whose durability the caller is still waiting for. */
  private inFlight = 0;
  private alarmAt: number | null = null;
  /** While alarm() runs, capabilities' reschedule requests wait for its end. */
  private alarmRunning = false;
  /** Live readers of the partition (GET …/partitions/{p}/stream) waiting on hibernatable sockets. */
  private readonly waiters: Waiters;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.testing = productionSeams(env, config.partitionLog.maxInFlightAppends, metricsEnabled(env));
    this.waiters = new Waiters(ctx);
    const sql = ctx.storage.sql;
    this.host = { sql, storage: ctx.storage, identity: () => this.parts.log.identity(), log: this.logger, now: () => Date.now() };
    void ctx.blockConcurrencyWhile(async () => {
      migratePartitionLog(ctx.storage);
      this.opened = this.open(env);
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  /** Builds the capabilities over the migrated storage, each given only what it works with. */
  private open(env: Env): Capabilities {
    const { host, testing: seams } = this;
    const { storage } = this.ctx;
    const routes = new Routes(host);
    const metrics = new AppendMetrics(host);
    const segments = new SegmentStore(host, env.ARCHIVE, seams);
    const streams = new Streams(host, segments);
    const log = new EventLog(host, { streams, metrics, seams });
    const delivery = new Delivery(host, { routes, db: env.DB, seams, reschedule: () => this.reschedule() });
    const archiver = new Archiver(host, {
      segments,
      log,
      firstHeld: () => firstHeld(storage.sql),
      acknowledgeCheckpoints: () => delivery.acknowledgeCheckpoints(),
      trimThrough: (through) => log.trimThrough(storage, through, () => streams.indexTrimmed(through)),
      seams,
    });
    const commands = new Commands(host, {
      streams,
      log,
      append: (input) => this.append(input),
      aggregates: (name) => hostedAggregates.get(name),
      seams,
      settings: { config, ...config.commands, maxLimit: config.read.maxLimit, cacheEntries: AGGREGATE_CACHE_ENTRIES },
    });
    return { log, streams, routes, metrics, segments, delivery, archiver, commands };
  }

  private get parts(): Capabilities {
    if (this.opened === undefined) throw new Error("partition log called before its storage was opened");
    return this.opened;
  }

  private get alarmClients(): AlarmClient[] {
    return [this.parts.delivery, this.parts.archiver];
  }

  private get sources(): ReadSources {
    const { log, segments, metrics } = this.parts;
    return { sql: this.ctx.storage.sql, log, segments, metrics };
  }

  async append(input: AppendInput): Promise<AppendResult> {
    const started = Date.now();
    const { topic, partition, events, expect } = parseAppendInput(input);
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
      const routes = this.parts.routes.of(topic);
      try {
        const outbox = routes.length > 0 ? this.parts.delivery.outboxWrites(routes) : undefined;
        result = this.ctx.storage.transactionSync(() => this.parts.log.commit(topic, partition, events, outbox, expect));
        // Only once the transaction committed; a rollback leaves the in-memory state untouched.
        this.parts.log.committed(topic, partition);
        if (outbox !== undefined && result.ok) this.parts.delivery.committed(outbox);
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
      // The alarm (the relay's safety net, and archiving) is set before the commit is acknowledged.
      if (result.ok && result.queued > 0) this.parts.delivery.queued();
      if (result.ok) await this.reschedule();
      // Resolves once the transaction is on disk; meanwhile later appends may run, which is
      // what the in-flight bound counts.
      await this.ctx.storage.sync();
      // Live readers hear of the commit once it is durable (ADR 0046).
      if (result.ok && result.events.some((e) => !e.duplicate)) this.waiters.notify({ next: this.parts.log.head, closed: false });
      if (result.ok && this.testing.metricsOn) this.parts.metrics.observe((Date.now() - started) / 1000);
      // Relay right after the commit, without holding the caller's response. While the relay is
      // failing, the alarm retries it with backoff instead: each attempt reads the outbox backlog,
      // so retrying on every commit during a queue outage would make every append pay for it.
      if (result.ok && result.queued > 0 && !this.parts.delivery.failing) this.parts.delivery.relayAfterCommit(routes);
      return result;
    } finally {
      this.inFlight--;
    }
  }

  /**
   * Runs a command of a registered aggregate on its stream here: load (cached), decide, append at
   * the loaded version, in one call (commands/commands.ts, ADR 0040).
   */
  async command(input: CommandInput): Promise<CommandOutcome> {
    return await this.parts.commands.run(input);
  }

  /**
   * A live reader's wait (durable-objects/waiters.ts): the Worker's hibernatable WebSocket, told
   * the head after every durable commit. The object's only fetch.
   */
  override async fetch(request: Request): Promise<Response> {
    return this.waiters.attach(request, { next: this.parts.log.head, closed: false });
  }

  override webSocketMessage(): void {}

  override webSocketClose(ws: WebSocket, code: number): void {
    this.waiters.closed(ws, code);
  }

  /** Events from `from` in sequence order, exactly as stored, from the archive or the log. */
  read(from: number, limit: number): Promise<ReadResult> {
    return readEvents(this.sources, from, limit);
  }

  /** A stream's current version (0 when it has no events). */
  streamInfo(subject: string): StreamInfo {
    return this.parts.streams.info(subject);
  }

  /** A stream's events from version `from`, in order, exactly as stored. */
  readStream(subject: string, from: number, limit: number): Promise<StreamPage> {
    return this.parts.streams.read(subject, from, limit);
  }

  /** A stream's latest snapshot of `schema` and the events after it (Streams.load). */
  loadStream(subject: string, schema: number, limit: number = config.read.maxLimit): Promise<LoadedStream> {
    return this.parts.streams.load(subject, schema, limit);
  }

  /** Keeps `state` as the stream's snapshot at `version` unless a newer one is kept already. */
  saveSnapshot(input: { subject: string; version: number; schema: number; state: string }): boolean {
    return this.parts.streams.saveSnapshot(input);
  }

  /** Where an event (source, id) is stored, if it is. */
  findEvent(source: string, id: string): { sequence: number; streamVersion: number | null; body: string } | null {
    return this.parts.log.find(parseArgs(z.string().min(1), source, "source"), parseArgs(z.string().min(1), id, "id"));
  }

  /** Counters for GET /v1/metrics and commit times of `sequences` (reads.ts metricsOf). */
  metrics(sequences: number[] = [], checkpoints: Record<string, number> = {}): PartitionMetrics {
    return metricsOf(this.sources, sequences, checkpoints);
  }

  /** `checkpoints`: subscriptions' checkpoints here, for their `unacknowledged` counts. */
  stats(checkpoints: Record<string, number> = {}): PartitionStats {
    return statsOf(this.sources, checkpoints);
  }

  /** Where the event at `sequence` stands with each subscription that has not acknowledged it yet. */
  deliveryOf(sequence: number): PendingDelivery[] {
    return pendingDeliveries(this.ctx.storage.sql, parseArgs(z.number().int().min(1), sequence, "sequence"));
  }

  /**
   * The sequences in `from`..`to` (at most 1,000 apart) this log still holds for `subscription`:
   * routed to it and not yet acknowledged, so live delivery (and redelivery) brings them. A replay
   * job leaves these to the log and sends the rest as history (ADR 0035).
   */
  heldFor(subscription: string, from: number, to: number): number[] {
    const args = parseArgs(heldInputSchema, { subscription, from, to }, "held range");
    return heldSequences(this.ctx.storage.sql, args.subscription, args.from, args.to);
  }

  /** Replaces the runtime subscriptions this partition routes to, for events committed from now on. */
  setRuntimeRoutes(routes: RuntimeRoutes): number {
    return this.parts.routes.replace(parseArgs(runtimeRoutesSchema, routes, "runtime routes"));
  }

  /** Seals and archives what is unarchived now (operators, tests), then trims what retention allows. */
  async archiveNow(): Promise<ArchiveResult> {
    const result = await this.parts.archiver.archive(true);
    await this.reschedule();
    return result;
  }

  /** The manifest as this object holds it. */
  manifest(): Manifest | null {
    return this.parts.segments.manifest();
  }

  /** Checks R2 against the manifest there (and that one against this object's). */
  verify(): Promise<{ ok: boolean; segments: number; problems: { key: string; problem: string }[] }> {
    return this.parts.segments.verify();
  }

  /** The first sequence committed at or after `timeMs` (ms since epoch); head + 1 when none. */
  locate(timeMs: number): Promise<number> {
    return locate(this.sources, timeMs);
  }

  /** Drains the outbox now (the relay also runs after each commit and from the alarm). */
  relay(): Promise<void> {
    return this.parts.delivery.relay();
  }

  /** The one alarm: every capability runs (each decides what is due), then the alarm is set again. */
  override async alarm(): Promise<void> {
    this.alarmAt = null;
    this.alarmRunning = true;
    try {
      for (const client of this.alarmClients) await client.run(Date.now());
    } finally {
      this.alarmRunning = false;
    }
    await this.reschedule();
  }

  /**
   * Sets the alarm to the earliest time a capability wants it, never later than it already is:
   * a run that finds nothing due is cheap, a missed one could delay delivery.
   */
  private async reschedule(): Promise<void> {
    if (this.alarmRunning) return;
    const now = Date.now();
    let at: number | null = null;
    for (const client of this.alarmClients) {
      const next = client.nextRunAt(now);
      if (next !== null && (at === null || next < at)) at = next;
    }
    if (at === null || (this.alarmAt !== null && this.alarmAt <= at)) return;
    this.alarmAt = at;
    await this.ctx.storage.setAlarm(at);
  }
}
