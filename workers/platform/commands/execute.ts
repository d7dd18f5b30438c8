import type { Logger } from "../../../sdk/logger";
import type { CloudEvent } from "../../../shared/cloudevents";
import type { EventlineConfig, TopicConfig } from "../../../shared/config";
import { type Decider, DomainError, fold } from "../../../shared/decider";
import { EventlineError } from "../../../shared/errors";
import { streamPartition } from "../../../shared/partitioner";
import { appendToStream, partitionStub, partitionUnavailable } from "../ingest/append";
import { prepareEvents } from "../ingest/parse";

/**
 * The command side of event sourcing: load an aggregate's stream (from its snapshot when there
 * is one), decide on the current state, append the decided events at the version the state was
 * read at, and on losing that race decide again on the new state, a bounded number of times.
 */

export interface Aggregate<Command, Event extends { type: string; data: unknown }, State> {
  topic: TopicConfig;
  /** CloudEvents `source` of the events written for `subject`. */
  source(subject: string): string;
  decider: Decider<Command, Event, State>;
  /** Format of the serialized state; snapshots of another format are ignored. */
  snapshotSchema: number;
  serialize(state: State): string;
  /** Throws on a snapshot it cannot read (the stream is then replayed from the start). */
  deserialize(text: string): State;
  /** A stored event of the stream as a domain event. */
  parse(stored: Record<string, unknown>): Event;
}

export interface CommandOptions {
  config: EventlineConfig;
  /** Client's idempotency key: a command re-sent with it returns its first result instead of running again. */
  idempotencyKey?: string | undefined;
  /** Carried by every event the command writes (`correlationid`). */
  correlationId: string;
  traceparent: string;
  log: Logger;
  /** Runs work after the response (ctx.waitUntil), e.g. saving a snapshot. */
  defer: (work: Promise<unknown>) => void;
  /** Tests shorten the pause between conflict retries. */
  sleep?: (ms: number) => Promise<void>;
}

export interface CommandResult {
  subject: string;
  /** The stream's version after the command (that of its last event). */
  version: number;
  partition: number;
  /** Partition sequence of the command's last event: the position read-your-writes waits for. */
  sequence: number;
  events: { id: string; type: string; streamVersion: number; sequence: number }[];
  /** Times the command was decided again after another writer moved the stream. */
  conflictRetries: number;
  /** True when this is the stored result of an earlier request with the same idempotency key. */
  replayed: boolean;
}

interface Loaded<State> {
  state: State;
  version: number;
  /** Stream version the state was loaded from a snapshot at (0: folded from the start). */
  snapshotVersion: number;
}

const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Loads the state of `subject`: its snapshot (if readable) plus the events after it, paged. */
export async function loadAggregate<Command, Event extends { type: string; data: unknown }, State>(
  env: Env,
  aggregate: Aggregate<Command, Event, State>,
  subject: string,
  log: Logger,
  maxLimit: number,
): Promise<Loaded<State>> {
  const partition = streamPartition(subject, aggregate.topic.partitions);
  const stub = partitionStub(env, aggregate.topic.name, partition);
  const loaded = await stub.loadStream(subject, aggregate.snapshotSchema, maxLimit);
  let state = aggregate.decider.initialState;
  let from = 1;
  let events = loaded.events;
  let complete = loaded.complete;
  if (loaded.snapshot !== null) {
    try {
      state = aggregate.deserialize(loaded.snapshot.state);
      from = loaded.snapshot.version + 1;
    } catch (err) {
      log.warn("unreadable snapshot ignored: replaying the stream", { subject, version: loaded.snapshot.version, error: err });
      events = [];
      complete = false;
    }
  }
  const snapshotVersion = from - 1;
  let applied = snapshotVersion;
  const apply = (page: string[]) => {
    state = fold(
      aggregate.decider,
      page.map((text) => aggregate.parse(JSON.parse(text) as Record<string, unknown>)),
      state,
    );
    applied += page.length;
  };
  apply(events);
  // The version is read once: the page reads stop there even if writers append meanwhile, so
  // the state and the version the append will expect always agree.
  const version = loaded.version;
  while (!complete && applied < version) {
    const page = await stub.readStream(subject, applied + 1, Math.min(maxLimit, version - applied));
    if (page.events.length === 0) break;
    apply(page.events);
    complete = applied >= version;
  }
  if (applied !== version) throw new Error(`stream ${subject} folded to version ${applied}, expected ${version}`);
  return { state, version, snapshotVersion };
}

function domainToHttp(err: DomainError): EventlineError {
  if (err.code === "not_found") return new EventlineError("not_found", err.message);
  return new EventlineError("command_rejected", err.message, { extensions: { reason: err.code } });
}

/** The stored result of a command re-sent with its idempotency key, if it ran before. */
async function priorResult(env: Env, topic: TopicConfig, subject: string, source: string, key: string): Promise<CommandResult | null> {
  const partition = streamPartition(subject, topic.partitions);
  const stub = partitionStub(env, topic.name, partition);
  const events: CommandResult["events"] = [];
  for (let i = 0; ; i++) {
    const found = await stub.findEvent(source, `${key}.${i}`);
    if (found === null || found.streamVersion === null) break;
    const stored = JSON.parse(found.body) as { type: string; subject?: string };
    if (stored.subject !== subject) break;
    events.push({ id: `${key}.${i}`, type: stored.type, streamVersion: found.streamVersion, sequence: found.sequence });
  }
  const last = events.at(-1);
  if (last === undefined) return null;
  return { subject, version: last.streamVersion, partition, sequence: last.sequence, events, conflictRetries: 0, replayed: true };
}

/**
 * Runs one command against the stream `subject`. Throws EventlineError: `not_found` (404) or
 * `command_rejected` (422) when the state forbids the command, nothing appended;
 * `version_conflict` (409) when other writers kept winning the race for every retry; and the
 * append errors of ingest (503 etc.).
 */
export async function executeCommand<Command, Event extends { type: string; data: unknown }, State>(
  env: Env,
  aggregate: Aggregate<Command, Event, State>,
  subject: string,
  command: Command,
  options: CommandOptions,
): Promise<CommandResult> {
  const { config, log } = options;
  const source = aggregate.source(subject);
  const key = options.idempotencyKey;
  const retryAfter = config.partitionLog.retryAfterSeconds;
  /** A loading call that failed changed nothing: the client may retry (503). */
  const guarded = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (err) {
      if (err instanceof EventlineError) throw err;
      log.warn(`${what} failed`, { subject, error: err });
      throw partitionUnavailable(err, what, retryAfter);
    }
  };
  const prior = () =>
    key === undefined
      ? Promise.resolve(null)
      : guarded("idempotency lookup", () => priorResult(env, aggregate.topic, subject, source, key));
  const first = await prior();
  if (first !== null) return first;
  const retries = config.commands.conflictRetries;
  const sleep = options.sleep ?? wait;
  for (let attempt = 0; ; attempt++) {
    const loaded = await guarded("loading the stream", () => loadAggregate(env, aggregate, subject, log, config.read.maxLimit));
    let decided: Event[];
    try {
      decided = aggregate.decider.decide(command, loaded.state);
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
      // A retry of a command that committed meanwhile (same key) sees its own result.
      const replayed = await prior();
      if (replayed !== null) return replayed;
      throw domainToHttp(err);
    }
    if (decided.length === 0) {
      // Nothing to record (an idempotent command on a state that already satisfies it).
      const partition = streamPartition(subject, aggregate.topic.partitions);
      return { subject, version: loaded.version, partition, sequence: 0, events: [], conflictRetries: attempt, replayed: false };
    }
    const now = new Date().toISOString();
    const idOf = (i: number) => `${options.idempotencyKey ?? crypto.randomUUID()}.${i}`;
    const cloudEvents: CloudEvent[] = decided.map((e, i) => ({
      specversion: "1.0",
      id: idOf(i),
      source,
      type: e.type,
      subject,
      time: now,
      datacontenttype: "application/json",
      data: e.data,
      correlationid: options.correlationId,
    }));
    const prepared = await prepareEvents(cloudEvents, aggregate.topic, config, { traceparent: options.traceparent, batch: true });
    try {
      const appended = await appendToStream(
        env,
        aggregate.topic,
        subject,
        prepared,
        loaded.version,
        log,
        config.partitionLog.retryAfterSeconds,
      );
      maybeSnapshot(env, aggregate, subject, loaded, decided, appended.version, options);
      const last = appended.events.at(-1);
      return {
        subject,
        version: appended.version,
        partition: appended.partition,
        sequence: last?.sequence ?? 0,
        events: appended.events.map((e, i) => ({
          id: e.id,
          type: decided[i]?.type ?? "",
          streamVersion: e.streamVersion,
          sequence: e.sequence,
        })),
        conflictRetries: attempt,
        replayed: false,
      };
    } catch (err) {
      if (key !== undefined && err instanceof EventlineError && (err.code === "version_conflict" || err.code === "duplicate_conflict")) {
        // The same command, committed by a concurrent request with the same key, won the race.
        const replayed = await prior();
        if (replayed !== null) return replayed;
      }
      if (!(err instanceof EventlineError) || err.code !== "version_conflict") throw err;
      if (attempt >= retries) {
        throw new EventlineError(
          "version_conflict",
          `${err.detail}; other writers kept changing the stream, ${attempt + 1} attempt(s) made — re-read and retry`,
          { extensions: { ...err.options.extensions, attempts: attempt + 1 } },
        );
      }
      log.info("command lost a version race: deciding again", { subject, attempt: attempt + 1, expected: loaded.version });
      // A short, jittered pause so racing writers spread out.
      await sleep(Math.random() * 10 * (attempt + 1));
    }
  }
}

/** Every `snapshotEvery` events, keeps the new state beside the stream (after the response). */
function maybeSnapshot<Command, Event extends { type: string; data: unknown }, State>(
  env: Env,
  aggregate: Aggregate<Command, Event, State>,
  subject: string,
  loaded: Loaded<State>,
  decided: Event[],
  version: number,
  options: CommandOptions,
): void {
  const every = options.config.commands.snapshotEvery;
  if (Math.floor(version / every) === Math.floor(loaded.version / every) && version - loaded.snapshotVersion < every) return;
  const state = fold(aggregate.decider, decided, loaded.state);
  const partition = streamPartition(subject, aggregate.topic.partitions);
  options.defer(
    partitionStub(env, aggregate.topic.name, partition)
      .saveSnapshot({ subject, version, schema: aggregate.snapshotSchema, state: aggregate.serialize(state) })
      .catch((err: unknown) => options.log.warn("snapshot not saved", { subject, version, error: err })),
  );
}
