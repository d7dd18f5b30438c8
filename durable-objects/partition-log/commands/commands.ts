import type { AnyAggregate } from "../../../shared/aggregate";
import type { CloudEvent } from "../../../shared/cloudevents";
import type { EventlineConfig } from "../../../shared/config";
import { DomainError, fold } from "../../../shared/decider";
import { EventlineError } from "../../../shared/errors";
import { streamPartition } from "../../../shared/partitioner";
import { configSource } from "../../../workers/platform/ingest/data-schema";
import { type PreparedEvent, prepareEvents, toAppendEvent } from "../../../workers/platform/ingest/parse";
import type { LogHost, PartitionLogSeams } from "../host";
import { type AppendInput, parseArgs } from "../input";
import type { EventLog } from "../log";
import type { Streams } from "../streams";
import type { AppendResult } from "../types";
import { AggregateCache, type CachedAggregate } from "./cache";
import { type CommandEvent, type CommandInput, type CommandOutcome, commandInputSchema } from "./input";
import { SubjectLocks } from "./locks";

/**
 * The commands capability (ADR 0040): a command runs where its stream lives. One call loads the
 * aggregate (from the in-memory cache, else its snapshot and the stream), decides with the
 * aggregate's pure decider, prepares the events as ingest does, and appends them at the version
 * the state was folded to, through the object's own append (one transaction, the same outbox,
 * durability wait and relay as every append). Commands on one stream take turns (SubjectLocks),
 * so they never race each other; an outside writer (ingest, an `expectedVersion` append) that
 * commits while a command is being prepared makes that command's append lose on the version, and
 * the command is decided again on the new state, locally, a bounded number of times.
 */

export interface CommandSettings {
  /** prepareEvents' view of the configuration (limits, schemas). */
  config: EventlineConfig;
  snapshotEvery: number;
  conflictRetries: number;
  /** Page size when folding a long stream. */
  maxLimit: number;
  /** Aggregates kept in memory per partition object. */
  cacheEntries: number;
}

export interface CommandDeps {
  streams: Pick<Streams, "state" | "load" | "read" | "saveSnapshot">;
  log: Pick<EventLog, "find">;
  /** The object's append: parse, one transaction (with its expectation), durability, relay. */
  append(input: AppendInput): Promise<AppendResult>;
  aggregates(name: string): AnyAggregate | undefined;
  seams: Pick<PartitionLogSeams, "beforeCommandAppend">;
  settings: CommandSettings;
}

type Attempt = { done: CommandOutcome } | { conflict: { currentVersion: number; expected: number; detail: string } };

export class Commands {
  readonly cache: AggregateCache;
  private readonly locks = new SubjectLocks();

  constructor(
    private readonly host: Pick<LogHost, "log" | "now">,
    private readonly deps: CommandDeps,
  ) {
    this.cache = new AggregateCache(deps.settings.cacheEntries);
  }

  async run(raw: CommandInput): Promise<CommandOutcome> {
    const input = parseArgs(commandInputSchema, raw, "command input");
    const aggregate = this.deps.aggregates(input.aggregate);
    if (aggregate === undefined)
      throw new TypeError(`invalid command input: no aggregate is registered as ${JSON.stringify(input.aggregate)}`);
    if (aggregate.topic.name !== input.topic || streamPartition(input.subject, aggregate.topic.partitions) !== input.partition) {
      throw new TypeError(
        `invalid command input: stream ${JSON.stringify(input.subject)} of ${aggregate.name} is not in ${input.topic}/${input.partition}`,
      );
    }
    const command = parseArgs(aggregate.commandSchema, input.command, `${aggregate.name} command`);
    const retries = this.deps.settings.conflictRetries;
    for (let attempt = 0; ; attempt++) {
      const result = await this.locks.exclusive(input.subject, (release) => this.attempt(aggregate, input, command, attempt, release));
      if ("done" in result) return result.done;
      if (attempt >= retries) {
        return {
          ok: false,
          code: "version_conflict",
          detail: `${result.conflict.detail}; other writers kept changing the stream, ${attempt + 1} attempt(s) made — re-read and retry`,
          currentVersion: result.conflict.currentVersion,
          expectedVersion: result.conflict.expected,
          attempts: attempt + 1,
        };
      }
      this.host.log.info("command lost a version race to an outside writer: deciding again", {
        subject: input.subject,
        attempt: attempt + 1,
        expected: result.conflict.expected,
      });
    }
  }

  /**
   * One decision, holding the stream's turn. `release` hands the turn on as soon as the append's
   * transaction has visibly run (append() commits before its first await), so the next command
   * decides while this one waits for durability; when the commit is not visible yet (a refusal,
   * or an append that awaited first), the turn is held until the append answers.
   */
  private async attempt(
    aggregate: AnyAggregate,
    input: ReturnType<typeof commandInputSchema.parse>,
    command: unknown,
    attempt: number,
    release: () => void,
  ): Promise<Attempt> {
    const { subject, idempotencyKey: key } = input;
    const source = aggregate.source(subject);
    if (key !== undefined) {
      const prior = this.priorResult(source, subject, key);
      if (prior !== null) return { done: prior };
    }
    const loaded = await this.load(aggregate, subject);
    let decided: { type: string; data: unknown }[];
    try {
      decided = aggregate.decider.decide(command, loaded.state);
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
      return { done: { ok: false, code: "rejected", reason: err.code, detail: err.message } };
    }
    if (decided.length === 0) {
      // Nothing to record (an idempotent command on a state that already satisfies it).
      return { done: { ok: true, version: loaded.version, sequence: 0, events: [], conflictRetries: attempt, replayed: false } };
    }
    const time = new Date(this.host.now()).toISOString();
    const prefix = key ?? crypto.randomUUID();
    const cloudEvents: CloudEvent[] = decided.map((e, i) => ({
      specversion: "1.0",
      id: `${prefix}.${i}`,
      source,
      type: e.type,
      subject,
      time,
      datacontenttype: "application/json",
      data: e.data,
      correlationid: input.correlationId,
    }));
    let prepared: PreparedEvent[];
    try {
      prepared = await prepareEvents(cloudEvents, aggregate.topic, this.deps.settings.config, {
        traceparent: input.traceparent,
        batch: true,
        // The decider is code written against the config's zod schemas: its events are checked
        // against, and stamped with, the config-declared latest version of their type (ADR 0051).
        schemas: configSource(aggregate.topic, input.origin),
      });
    } catch (err) {
      if (!(err instanceof EventlineError)) throw err;
      const { issues, extensions } = err.options;
      return {
        done: {
          ok: false,
          code: "problem",
          problem: {
            code: err.code,
            detail: err.detail,
            ...(issues !== undefined && { issues }),
            ...(extensions !== undefined && { extensions }),
          },
        },
      };
    }
    await this.deps.seams.beforeCommandAppend(subject);
    const next = fold(aggregate.decider, decided, loaded.state);
    const { streams } = this.deps;
    // From here to release() nothing awaits: no other call runs, so a stream that moved from
    // `loaded.version` by exactly this command's events moved by this command's commit.
    const before = streams.state(subject).version;
    const pending = this.deps.append({
      topic: input.topic,
      partition: input.partition,
      events: prepared.map(toAppendEvent),
      expect: { subject, version: loaded.version },
    });
    const after = streams.state(subject).version;
    if (before === loaded.version && after === loaded.version + decided.length) {
      // Committed already: the next command's turn starts now, from this state, while this one
      // waits for durability. Otherwise the turn is held until the append answers.
      this.cache.offer(subject, { aggregate: aggregate.name, version: after, state: next, snapshotVersion: loaded.snapshotVersion });
      release();
    }
    const result = await pending;
    if (!result.ok) {
      if (result.code === "version_conflict") {
        return { conflict: { currentVersion: result.currentVersion, expected: loaded.version, detail: result.detail } };
      }
      if (result.code === "overloaded")
        return { done: { ok: false, code: "overloaded", detail: result.detail, retryAfter: result.retryAfter } };
      return { done: { ok: false, code: "problem", problem: { code: "duplicate_conflict", detail: result.detail } } };
    }
    const events: CommandEvent[] = result.events.map((e, i) => {
      if (e.streamVersion === undefined) throw new Error(`partition did not give command event ${e.id} a stream version`);
      return { id: e.id, type: decided[i]?.type ?? "", streamVersion: e.streamVersion, sequence: e.sequence };
    });
    const version = Math.max(...events.map((e) => e.streamVersion));
    if (result.events.every((e) => !e.duplicate) && version === loaded.version + decided.length) {
      this.committed(aggregate, subject, loaded, next, version);
    }
    return { done: { ok: true, version, sequence: events.at(-1)?.sequence ?? 0, events, conflictRetries: attempt, replayed: false } };
  }

  /** After a command's events committed: the cache holds the new state, and every snapshotEvery events it is kept. */
  private committed(aggregate: AnyAggregate, subject: string, loaded: CachedAggregate, state: unknown, version: number): void {
    const every = this.deps.settings.snapshotEvery;
    let snapshotVersion = loaded.snapshotVersion;
    if (Math.floor(version / every) !== Math.floor(loaded.version / every) || version - loaded.snapshotVersion >= every) {
      try {
        this.deps.streams.saveSnapshot({ subject, version, schema: aggregate.snapshotSchema, state: aggregate.serialize(state) });
        snapshotVersion = version;
      } catch (err) {
        // Snapshots are an optimisation: the stream stays the truth.
        this.host.log.warn("snapshot not saved", { subject, version, error: err });
      }
    }
    this.cache.offer(subject, { aggregate: aggregate.name, version, state, snapshotVersion });
  }

  /**
   * The aggregate's state at the stream's current version: the cached state when it is at that
   * version, brought forward by folding the events it lacks when the stream moved on (any append
   * by anyone), else folded from the snapshot and the stream. The version is read once, first:
   * page reads stop there even if writers append meanwhile, so state and version always agree.
   */
  async load(aggregate: AnyAggregate, subject: string): Promise<CachedAggregate> {
    const { version } = this.deps.streams.state(subject);
    const cached = this.cache.get(subject);
    if (cached !== undefined && cached.aggregate === aggregate.name && cached.version <= version) {
      if (cached.version === version) {
        return cached;
      }
      const state = await this.foldFrom(aggregate, subject, cached.state, cached.version, version);
      const entry = { aggregate: aggregate.name, version, state, snapshotVersion: cached.snapshotVersion };
      this.cache.offer(subject, entry);
      return entry;
    }
    const entry = await this.loadStored(aggregate, subject);
    this.cache.offer(subject, entry);
    return entry;
  }

  /** Snapshot (if readable) + the events after it, paged. */
  private async loadStored(aggregate: AnyAggregate, subject: string): Promise<CachedAggregate> {
    const { maxLimit } = this.deps.settings;
    const loaded = await this.deps.streams.load(subject, aggregate.snapshotSchema, maxLimit);
    let state = aggregate.decider.initialState;
    let events = loaded.events;
    let snapshotVersion = 0;
    if (loaded.snapshot !== null) {
      try {
        state = aggregate.deserialize(loaded.snapshot.state);
        snapshotVersion = loaded.snapshot.version;
      } catch (err) {
        this.host.log.warn("unreadable snapshot ignored: replaying the stream", { subject, version: loaded.snapshot.version, error: err });
        events = [];
      }
    }
    state = fold(aggregate.decider, events.map(parseWith(aggregate)), state);
    const applied = snapshotVersion + events.length;
    state = await this.foldFrom(aggregate, subject, state, applied, loaded.version);
    return { aggregate: aggregate.name, version: loaded.version, state, snapshotVersion };
  }

  /** Folds versions applied+1..version onto `state`, reading the stream in pages. */
  private async foldFrom(aggregate: AnyAggregate, subject: string, state: unknown, applied: number, version: number): Promise<unknown> {
    let folded = state;
    let at = applied;
    while (at < version) {
      const page = await this.deps.streams.read(subject, at + 1, Math.min(this.deps.settings.maxLimit, version - at));
      if (page.events.length === 0) break;
      folded = fold(aggregate.decider, page.events.map(parseWith(aggregate)), folded);
      at += page.events.length;
    }
    if (at !== version) throw new Error(`stream ${subject} folded to version ${at}, expected ${version}`);
    return folded;
  }

  /** The stored result of a command re-sent with its idempotency key, if it ran before. */
  private priorResult(source: string, subject: string, key: string): CommandOutcome | null {
    const events: CommandEvent[] = [];
    for (let i = 0; ; i++) {
      const found = this.deps.log.find(source, `${key}.${i}`);
      if (found === null || found.streamVersion === null) break;
      const stored = JSON.parse(found.body) as { type: string; subject?: string };
      if (stored.subject !== subject) break;
      events.push({ id: `${key}.${i}`, type: stored.type, streamVersion: found.streamVersion, sequence: found.sequence });
    }
    const last = events.at(-1);
    if (last === undefined) return null;
    return { ok: true, version: last.streamVersion, sequence: last.sequence, events, conflictRetries: 0, replayed: true };
  }
}

const parseWith = (aggregate: AnyAggregate) => (text: string) => aggregate.parse(JSON.parse(text) as Record<string, unknown>);
