import { type BatchDeps, type Frame, type Item, type Prepared, settleBatch, settleEvery } from "./consumer-batch";
import { createFrame, errorText } from "./consumer-frame";
import { ConsumerMetrics, metricsEnabled } from "./consumer-metrics";
import { backoffSeconds, CircuitBreaker } from "./consumer-policy";
import { RunPart, unpack } from "./consumer-runs";
import { checkPins, requireReadable, schemaVersionFor } from "./consumer-schemas";
import {
  type BatchContext,
  checkpointFrom,
  checkpointStatement,
  countStatement,
  eventKey,
  failuresSoFar,
  isUniqueViolation,
  partitionKey,
  prefetchBatch,
  readCheckpoint,
  readSeen,
  recordDeadLetter,
  recordFailureStatements,
  settleStatements,
} from "./consumer-store";
import {
  type Consumer,
  type ConsumerOptions,
  type HandleContext,
  ORDERING_DEFERRALS,
  type Outcome,
  PermanentError,
  type StoredEvent,
  UnsupportedSchemaVersionError,
} from "./consumer-types";
import { createLogger } from "./logger";
import { type Delivery, deliverySchema } from "./messages";
import { type ReactionAttributes, reactionAttributes } from "./trace";

/**
 * The consumer SDK: `defineConsumer({ subscription, handle, ... })` returns a Queues `queue()`
 * handler. `queue()` reads the idempotency records and checkpoints of a whole batch up front in one
 * round trip (`BatchContext`), settles every live, new, in-order event in one more
 * (sdk/consumer-batch.ts, ADR 0036), and takes the rest message by message (`settle`): parse →
 * resolve the event → validate its data → circuit breaker → idempotency and ordering checks →
 * `handle` → one D1 batch with the handler's effects, the idempotency record and the checkpoint →
 * ack. A failure is retried with exponential backoff and full jitter; a permanent failure, or the
 * last allowed attempt, is dead-lettered at once. One message's failure never holds up the others.
 */

export { resolveFromLog } from "./consumer-refs";
export {
  type Consumer,
  type ConsumerOptions,
  type HandleContext,
  PermanentError,
  type SchemaVersionPins,
  type StoredEvent,
  storedEventSchema,
  UnsupportedSchemaVersionError,
} from "./consumer-types";

/** A run's parts were validated with their run (runSchema, through deliveriesOf): not parsed twice. */
function parse(message: Message<unknown>): Item["parsed"] {
  if (message instanceof RunPart) return { success: true, data: message.body } as Item["parsed"];
  return deliverySchema.safeParse(message.body);
}

function isPermanent(err: unknown): boolean {
  return err instanceof PermanentError || (err instanceof Error && err.name === "ZodError");
}

export function defineConsumer<Env, Data = unknown>(options: ConsumerOptions<Env, Data>): Consumer<Env> {
  checkPins(options.schemaVersions);
  const ordering = options.ordering ?? "none";
  /** Deliveries a message may spend waiting for its predecessor before it is parked (see `queueMaxRetries`). */
  const waitBudget = Math.max(0, (options.queueMaxRetries ?? options.maxRetries + ORDERING_DEFERRALS) - options.maxRetries);
  const backoff = options.backoff ?? { baseSeconds: 1, capSeconds: 300 };
  const breaker = new CircuitBreaker(options.subscription, options.circuitBreaker ?? { failureThreshold: 5, openSeconds: 30 });
  const baseLog = createLogger({ component: "consumer", subscription: options.subscription });
  /** Latency histograms and duplicate counts not yet written, per isolate; see shared/metrics.ts. */
  const metrics = new ConsumerMetrics(options.subscription);
  /** Where EVENTLINE_METRICS is off: the switch is per env, so each call picks one of the two. */
  const unmetered = new ConsumerMetrics(options.subscription, false);
  const metricsOf = (env: unknown): ConsumerMetrics => (metricsEnabled(env) ? metrics : unmetered);

  /** Runs the handler; its time goes to the handler latency histogram, whether it succeeds or fails. */
  async function handleTimed(event: StoredEvent & { data: Data }, ctx: HandleContext<Env>): Promise<D1PreparedStatement[]> {
    const started = Date.now();
    try {
      return (await options.handle(event, ctx)) ?? [];
    } finally {
      metricsOf(ctx.env).observeHandler((Date.now() - started) / 1000);
    }
  }

  async function deadLetter(
    db: D1Database,
    message: Message<unknown>,
    delivery: Delivery | undefined,
    reason: string,
    error: string,
    also: D1PreparedStatement[] = [],
    handlerRuns = message.attempts,
  ): Promise<boolean> {
    return recordDeadLetter(db, {
      subscription: options.subscription,
      delivery,
      rawBody: message.body,
      reason,
      error,
      attempts: handlerRuns,
      also,
    });
  }

  async function process(
    message: Message<unknown>,
    env: Env,
    parsed = deliverySchema.safeParse(message.body),
    context?: BatchContext,
    riders?: D1PreparedStatement[],
  ): Promise<Outcome> {
    const outcome = await settle(message, env, parsed, context, riders);
    metricsOf(env).settled(outcome);
    // Only a handler's success or failure says anything about the dependency behind it; a probe
    // that ended otherwise (duplicate, waiting for order, permanent error) lets the next one through.
    if (outcome !== "handled" && outcome !== "retried") breaker.release();
    return outcome;
  }

  /** What every path needs about one message (sdk/consumer-frame.ts). */
  function frameOf(message: Message<unknown>, env: Env, delivery: Delivery, riders: D1PreparedStatement[] | undefined): Frame {
    return createFrame(
      { subscription: options.subscription, db: options.db(env), log: baseLog, metered: metricsOf(env) },
      message,
      delivery,
      riders,
    );
  }

  /** Resolves (by reference), decrypts and validates the event, and builds the handler's context. */
  async function prepare(frame: Frame, env: Env): Promise<Prepared<StoredEvent & { data: Data }, HandleContext<Env>>> {
    const { delivery, message, db } = frame;
    const queued = (delivery.event as StoredEvent | undefined) ?? (await resolve(delivery, env));
    const event = options.decrypt === undefined ? queued : await options.decrypt(queued, { env, topic: delivery.topic });
    if (delivery.event?.traceparent === undefined && typeof event.traceparent === "string") {
      frame.log = frame.log.with({ traceparent: event.traceparent });
    }
    // A pinned type's event that names a version this consumer does not read never reaches the schema or handler.
    const schemaVersion = schemaVersionFor(event, delivery.topic);
    requireReadable(options.schemaVersions, event.type, schemaVersion);
    const data = options.schema ? options.schema.parse(event.data) : (event.data as Data);
    let reaction: ReactionAttributes | undefined;
    const ctx: HandleContext<Env> = {
      env,
      db,
      delivery,
      attempts: message.attempts,
      log: frame.log,
      schemaVersion,
      reactionAttributes: () => {
        reaction ??= reactionAttributes(event);
        return { ...reaction };
      },
    };
    return { event: { ...event, data }, ctx };
  }

  /**
   * `context`: what `queue()` prefetched for the batch; without it (or for a key it lacks) D1 is read here.
   * `riders`: attempt records of outcomes that write nothing else (duplicate, deferred, skipped), which
   * `queue()` has written with a later settle batch of the invocation (or at its end) rather than alone.
   */
  async function settle(
    message: Message<unknown>,
    env: Env,
    parsed: ReturnType<typeof deliverySchema.safeParse>,
    context: BatchContext | undefined,
    riders: D1PreparedStatement[] | undefined,
  ): Promise<Outcome> {
    const db = options.db(env);
    if (!parsed.success || parsed.data.subscription !== options.subscription) {
      const error = parsed.success ? `message for subscription ${parsed.data.subscription}` : parsed.error.message;
      baseLog.error("invalid delivery message", { messageId: message.id, error });
      await deadLetter(db, message, parsed.success ? parsed.data : undefined, "invalid_message", error);
      message.ack();
      return "dead_lettered";
    }
    const delivery = parsed.data;
    const frame = frameOf(message, env, delivery, riders);
    const { key, metered, attempt, recordAttempt } = frame;
    // Redriven letters and unchained replays are applied as they come (ADR 0012, ADR 0019).
    const inChain = delivery.redrive === undefined && (delivery.replay === undefined || delivery.replay.chain);

    try {
      const { event, ctx } = await prepare(frame, env);
      const log = frame.log;

      const wait = breaker.shouldHold();
      if (wait > 0) {
        message.retry({ delaySeconds: wait });
        await recordAttempt("deferred");
        return "deferred";
      }

      // A prefetched "not seen" may be stale: the processed_events insert in the settle batch is
      // still the guard. Events sent by reference were not prefetched (their id was not known).
      const prefetched = context?.seen.get(eventKey(event));
      const seen = prefetched !== undefined ? prefetched : await readSeen(db, options.subscription, event);
      // A redriven letter replaces its dead-lettered record; anything else seen before is a duplicate.
      const redrive = delivery.redrive !== undefined && seen?.outcome === "dead_lettered";
      if (seen !== null && !redrive && delivery.replay !== undefined && options.replays === "always") {
        const effects = await handleTimed(event, ctx);
        const statements = [...effects, ...attempt("handled")];
        if (statements.length > 0) await db.batch(statements);
        metered.redelivered();
        message.ack();
        return "handled";
      }
      if (seen !== null && !redrive) {
        if (delivery.replay !== undefined) {
          // Counted, so an operator sees how much of a replay the subscription already had.
          await db.batch([countStatement(db, options.subscription, "replay_duplicates"), ...attempt("duplicate")]);
        }
        const samePosition = seen.topic === delivery.topic && seen.partition === delivery.partition && seen.sequence === delivery.sequence;
        if (!samePosition) {
          // Another event reused this (source, id) in another partition (producers' dedupe is per
          // partition): not applied twice, but its position is settled so the checkpoint moves on.
          const alias = { source: "eventline:duplicate-id", id: `${delivery.topic}/${delivery.partition}/${delivery.sequence}` };
          try {
            await db.batch([
              ...settleStatements(db, key, alias, "duplicate_id"),
              ...(delivery.replay === undefined ? attempt("duplicate") : []),
            ]);
          } catch (err) {
            if (!isUniqueViolation(err)) throw err;
            // An earlier delivery settled this position: the refused batch took this attempt's record with it.
            if (delivery.replay === undefined) await recordAttempt("duplicate");
          }
          log.warn("event id already handled at another position: not applied", { source: event.source, id: event.id, firstSeenAt: seen });
        } else if (delivery.replay === undefined) {
          await recordAttempt("duplicate");
        }
        message.ack();
        return "duplicate";
      }
      if (delivery.replay !== undefined && !delivery.replay.chain && delivery.replay.history !== true) {
        // A history event (the log will never deliver it live: ADR 0035) is applied below, as it
        // comes. Anything else a replay sends fills in only what the subscription has passed
        // without settling: an event beyond the checkpoint is still on its way live, and settling
        // it here, outside the order chain, would stall the checkpoint behind it. (Jobs since ADR
        // 0035 send only history; this is for messages of older jobs.)
        const applied = context?.checkpoints.get(partitionKey(delivery)) ?? (await readCheckpoint(db, key));
        if (delivery.sequence > applied) {
          message.ack();
          await recordAttempt("skipped");
          return "skipped";
        }
      }
      // A redriven letter is re-applied where it stands: its successors have moved on already.
      if (ordering === "partition" && inChain) {
        const known = context?.checkpoints.get(partitionKey(delivery));
        let applied = known ?? (await readCheckpoint(db, key));
        if (known !== undefined && delivery.prev > applied) {
          // The prefetched checkpoint may be stale (low, never high): another invocation may have
          // applied the predecessor since. Read it again before deciding to wait.
          applied = await readCheckpoint(db, key);
          context?.checkpoints.set(partitionKey(delivery), applied);
        }
        if (delivery.sequence <= applied) {
          message.ack();
          await recordAttempt("duplicate");
          return "duplicate";
        }
        if (delivery.prev > applied) {
          // Its predecessor has not been applied yet: never apply out of order. Waiting is not a
          // failure: the queue's max_retries leaves room for some waits (ORDERING_DEFERRALS), after
          // which the message is parked and the log's redelivery brings it (and, if lost, its
          // predecessor) back. A message parks only while it has never run the handler, so waiting
          // plus failing stays within the queue's max_retries.
          if (message.attempts > waitBudget) {
            message.ack();
            await recordAttempt("parked");
            return "parked";
          }
          message.retry({ delaySeconds: Math.min(10, (options.gapRetrySeconds ?? 1) * message.attempts) });
          await recordAttempt("deferred");
          return "deferred";
        }
      }

      const effects = await handleTimed(event, ctx);
      // In a batch, the settle also reads back where the checkpoint moved (the walk may pass events
      // settled earlier out of order), so the partition's next message needs no read of its own.
      const track = context !== undefined && ordering === "partition";
      const riding = riders?.splice(0) ?? [];
      // Latencies observed so far ride along too (end to end: commit → handled, for live deliveries).
      const live = delivery.redrive === undefined && delivery.replay === undefined;
      const measured = metered.take(db, live ? (Date.now() - delivery.committedAt) / 1000 : undefined);
      const statements = [
        ...effects,
        ...settleStatements(db, key, event, "handled", redrive),
        // A first run that succeeds writes no attempt record: its settlement stands for it (the trace).
        ...(message.attempts > 1 || redrive ? attempt("handled") : []),
        ...riding,
        ...measured.statements,
      ];
      let results: D1Result[];
      try {
        results = await db.batch(track ? [...statements, checkpointStatement(db, key)] : statements);
      } catch (err) {
        riders?.push(...riding);
        measured.restore();
        // A concurrent delivery of the same event committed first: its effects are the ones kept.
        if (isUniqueViolation(err)) {
          context?.seen.delete(eventKey(event)); // known to be seen now; a copy later in the batch reads it
          message.ack();
          await recordAttempt("duplicate");
          return "duplicate";
        }
        throw err;
      }
      if (context !== undefined) {
        context.seen.set(eventKey(event), {
          outcome: "handled",
          topic: delivery.topic,
          partition: delivery.partition,
          sequence: delivery.sequence,
        });
        const moved = track ? checkpointFrom(results.at(-1)) : undefined;
        if (moved !== undefined) context.checkpoints.set(partitionKey(delivery), moved);
      }
      await breaker.success(db);
      message.ack();
      return "handled";
    } catch (err) {
      return fail(frame, err);
    }
  }

  /**
   * A failure of the handler, or of what runs before it (resolve, decrypt, data schema): a
   * permanent one, or the last allowed run, is dead-lettered; anything else is retried with backoff.
   */
  async function fail(frame: Frame, err: unknown): Promise<Outcome> {
    const { db, message, delivery, key, log, metered, attempt, recordAttempt } = frame;
    const error = errorText(err);
    if (isPermanent(err)) {
      // A letter's `attempts` counts handler runs (the failures recorded for it, this one included),
      // not deliveries: waits for a predecessor and copies the log sent again are not runs.
      const runs = (await failuresSoFar(db, key)) + 1;
      const reason = err instanceof UnsupportedSchemaVersionError ? "unsupported_schema_version" : "permanent";
      if (!(await deadLetter(db, message, delivery, reason, error, attempt("dead_lettered", error), runs))) {
        // A check that runs before the duplicate check (data schema, decrypt, resolveRef) failed
        // for an event this subscription had already settled.
        log.info("permanent failure of an event already settled: not dead-lettered", { error });
        await recordAttempt("duplicate");
        message.ack();
        return "duplicate";
      }
      log.warn("permanent failure: dead-lettered", { error });
      message.ack();
      return "dead_lettered";
    }
    await breaker.failure(db);
    // Handler failures are counted apart from deliveries, which also include waits for order.
    const failures = await failuresSoFar(db, key);
    if (failures + 1 > options.maxRetries) {
      if (!(await deadLetter(db, message, delivery, "max_retries", error, attempt("dead_lettered", error), failures + 1))) {
        log.info("retries exhausted for an event already settled: not dead-lettered", { error });
        await recordAttempt("duplicate");
        message.ack();
        return "duplicate";
      }
      log.warn("retries exhausted: dead-lettered", { error });
      message.ack();
      return "dead_lettered";
    }
    const delaySeconds = backoffSeconds(failures + 1, backoff.baseSeconds, backoff.capSeconds);
    log.info("handler failed; retrying", { error, delaySeconds, failures: failures + 1 });
    const measured = metered.take(db);
    await db
      .batch([...recordFailureStatements(db, key, failures + 1, error), ...attempt("failed", error), ...measured.statements])
      .catch((e: unknown) => {
        measured.restore();
        throw e;
      });
    message.retry({ delaySeconds });
    return "retried";
  }

  async function resolve(delivery: Delivery, env: Env): Promise<StoredEvent> {
    if (options.resolveRef === undefined) throw new PermanentError("event sent by reference but the consumer has no resolveRef");
    return options.resolveRef(delivery, env);
  }

  async function settleAll(
    items: { message: Message<unknown>; parsed: ReturnType<typeof deliverySchema.safeParse> }[],
    env: Env,
    context: BatchContext | undefined,
    riders: D1PreparedStatement[],
  ): Promise<void> {
    // Messages settle independently: one failing never affects the others' ack or retry.
    // Without ordering, nothing is gained by waiting: every message is processed at once.
    if (ordering === "none") {
      await settleEvery(items.map(({ message, parsed }) => process(message, env, parsed, context, riders)));
      return;
    }
    // Within a partition they are taken in sequence order (Queues does not keep order), so an
    // ordered subscription rarely has to wait for a predecessor that is in the same batch.
    const byPartition = new Map<string, typeof items>();
    for (const item of items) {
      const group = item.parsed.success ? partitionKey(item.parsed.data) : `invalid/${item.message.id}`;
      const list = byPartition.get(group) ?? [];
      list.push(item);
      byPartition.set(group, list);
    }
    const sequence = ({ parsed }: (typeof items)[number]) => (parsed.success ? parsed.data.sequence : 0);
    await settleEvery(
      [...byPartition.values()].map(async (list) => {
        for (const { message, parsed } of list.sort((a, b) => sequence(a) - sequence(b)))
          await process(message, env, parsed, context, riders);
      }),
    );
  }

  const batchDeps: BatchDeps<Env, StoredEvent & { data: Data }, HandleContext<Env>> = {
    subscription: options.subscription,
    ordering,
    breaker,
    frameOf,
    prepare,
    handle: handleTimed,
    handleBatch:
      options.handleBatch === undefined
        ? undefined
        : async (items) => {
            const started = Date.now();
            const effects = await options.handleBatch?.(items);
            // Timed only when it succeeds: if it throws, each event runs `handle` (timed) alone, and
            // a run counted twice would break "one handler run per handled, retried or dead-lettered delivery".
            const metered = metricsOf(items[0]?.ctx.env);
            for (const _ of items) metered.observeHandler((Date.now() - started) / 1000 / items.length);
            return effects;
          },
    fail,
    settled: (env, outcome) => {
      metricsOf(env).settled(outcome);
      if (outcome !== "handled" && outcome !== "retried") breaker.release();
    },
  };

  return {
    breaker,
    process,
    async queue(batch, env) {
      const db = options.db(env);
      // A run (message v2) is settled event by event, each event as a message of its own.
      const unpacked = batch.messages.map(unpack);
      const items: Item[] = unpacked.flatMap((u) => u.parts).map((message) => ({ message, parsed: parse(message) }));
      const context = await prefetchBatch(db, options.subscription, ordering === "partition", items, baseLog);
      const riders: D1PreparedStatement[] = [];
      try {
        // What can be settled together is, in one commit; the rest goes message by message after it.
        const batched: { rest: Item[]; error?: unknown } =
          (options.settlement ?? "batch") === "batch" ? await settleBatch(batchDeps, db, items, env, context, riders) : { rest: items };
        await settleAll(batched.rest, env, context, riders);
        if (batched.error !== undefined) throw batched.error;
      } finally {
        for (const u of unpacked) u.finish();
        // Latencies and duplicates no batch took along go with the attempt records below; if that
        // batch fails they are given back for the next one (the attempt records are best effort).
        const measured = metricsOf(env).take(db);
        riders.push(...measured.statements);
        // Attempt records no settle batch took along: one more batch for the whole invocation.
        if (riders.length > 0) {
          await db.batch(riders.splice(0)).catch((err: unknown) => {
            measured.restore();
            baseLog.warn("delivery attempts not recorded", { error: errorText(err) });
          });
        }
        // Always the isolate's instance: each data point starts afresh, and none is written where metrics are off.
        metrics.report(env, batch.messages.length);
      }
    },
  };
}
