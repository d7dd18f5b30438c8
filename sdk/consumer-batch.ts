import type { ConsumerMetrics } from "./consumer-metrics";
import type { CircuitBreaker } from "./consumer-policy";
import {
  type AttemptOutcome,
  type BatchContext,
  checkpointFrom,
  checkpointStatement,
  checkpointWalkStatements,
  chunks,
  countStatement,
  eventKey,
  isUniqueViolation,
  type Position,
  partitionKey,
} from "./consumer-store";
import type { Logger } from "./logger";
import type { Delivery, deliverySchema } from "./messages";

/**
 * Batch settlement (ADR 0036): the part of a `queue()` invocation that can be settled together is
 * settled together. After the batch prefetch (one round trip: idempotency records and checkpoints),
 * every live event that is new to the subscription and, for ordering `partition`, next in its
 * chain, runs its handler; then ONE `db.batch()` commits every handler's effects, the idempotency
 * records (one multi-row insert), one checkpoint walk per partition, the counters and the metrics.
 * So a batch costs two round trips whatever its size, where settling per message cost one each.
 * Replayed events take the same path: a rebuild's (in the live chain) like live ones, history
 * (ADR 0035) outside the chain.
 *
 * What cannot be settled that way goes on to the per-message path, after this commit (so it sees
 * it): duplicates, redrives, older jobs' unchained replays, events sent by reference, waits for a predecessor, and
 * everything while the circuit breaker is not closed. A handler that fails is settled alone (retry
 * or dead letter) and, ordered, stops its partition's run there: its successors wait as before.
 * If the commit is refused because an event was settled meanwhile (a concurrent copy), the batch is
 * split in halves down to that event, which ends as a duplicate: nothing else pays for it.
 *
 * Handlers see D1 as it was when the batch began: effects of earlier events of the same batch are
 * not visible to their reads (they are statements not yet run). A handler whose reads depend on
 * them sets `settlement: "event"` (see ConsumerOptions).
 */

type Parsed = ReturnType<typeof deliverySchema.safeParse>;
export interface Item {
  message: Message<unknown>;
  parsed: Parsed;
}

/** One message being settled: where it stands, how to log about it and record its attempts. */
export interface Frame {
  db: D1Database;
  message: Message<unknown>;
  delivery: Delivery;
  key: Position;
  log: Logger;
  metered: ConsumerMetrics;
  /** The attempt record of this delivery ending in `outcome` (none with EVENTLINE_METRICS=off). */
  attempt(outcome: AttemptOutcome, error?: string): D1PreparedStatement[];
  /** Writes that record with the invocation's next batch, or alone (best effort). */
  recordAttempt(outcome: AttemptOutcome): Promise<void>;
}

/** An event ready for its handler (resolved, decrypted, validated) and the context it gets. */
export interface Prepared<E, C> {
  event: E;
  ctx: C;
}

export type BatchOutcome = "handled" | "duplicate" | "retried" | "dead_lettered" | "deferred" | "skipped" | "parked";

export interface BatchDeps<Env, E extends { source: string; id: string }, C> {
  subscription: string;
  ordering: "none" | "partition";
  breaker: CircuitBreaker;
  frameOf(message: Message<unknown>, env: Env, delivery: Delivery, riders: D1PreparedStatement[]): Frame;
  prepare(frame: Frame, env: Env): Promise<Prepared<E, C>>;
  /** The per-event handler (timed). */
  handle(event: E, ctx: C): Promise<D1PreparedStatement[]>;
  /** The optional set handler; when it throws, each event runs `handle` alone. */
  handleBatch?: ((items: Prepared<E, C>[]) => Promise<D1PreparedStatement[] | undefined>) | undefined;
  /** Settles a failed handler run (retry or dead letter), as the per-message path does. */
  fail(frame: Frame, err: unknown): Promise<BatchOutcome>;
  /** Each outcome, for the metrics and the breaker's probe (`process` does the same per message). */
  settled(env: Env, outcome: BatchOutcome): void;
}

interface Ready<E, C> extends Prepared<E, C> {
  frame: Frame;
  effects: D1PreparedStatement[];
}

/** Events per commit: bounds one D1 batch (statements, bound text) whatever the queue batch holds. */
export const COMMIT_EVENTS = 500;

/** Every idempotency record of a commit in one statement: D1 binds at most 100 parameters, json_each any number of rows. */
const INSERT_HANDLED = `INSERT INTO processed_events (subscription, source, event_id, topic, partition, sequence, prev, outcome, processed_at)
  SELECT ?1, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), json_extract(j.value, '$[2]'),
    json_extract(j.value, '$[3]'), json_extract(j.value, '$[4]'), json_extract(j.value, '$[5]'), 'handled', ?3
  FROM json_each(?2) j`;
const CLEAR_FAILURES = `DELETE FROM delivery_failures WHERE subscription = ?1 AND topic = ?2 AND partition = ?3
  AND sequence IN (SELECT value FROM json_each(?4))`;

/**
 * Settles what it can of `items` in one commit and returns the items left for the per-message
 * path. Throws only after everything else settled, if the commit itself failed (D1 unavailable):
 * those messages are neither acked nor retried, so Queues delivers them again.
 */
export async function settleBatch<Env, E extends { source: string; id: string }, C>(
  deps: BatchDeps<Env, E, C>,
  db: D1Database,
  items: Item[],
  env: Env,
  context: BatchContext | undefined,
  riders: D1PreparedStatement[],
): Promise<{ rest: Item[]; error?: unknown }> {
  // Without the prefetch, or while the breaker holds or probes, each message goes its own way.
  if (context === undefined || deps.breaker.state !== "closed" || items.length === 0) return { rest: items };
  const { candidates, rest } = pick(deps, items, context);
  if (candidates.length === 0) return { rest };

  const frames = candidates.map((item) => ({
    item,
    frame: deps.frameOf(item.message, env, item.parsed.data as Delivery, riders),
  }));
  const ready: Ready<E, C>[] = [];
  /**
   * Handler runs in the order they ended. The circuit breaker counts consecutive failures; it is
   * told of them in that order after the commit, so a batch's failures are not counted as
   * consecutive when successes ran between them (as they would not be message by message).
   */
  const runs: ({ ok: true } | { ok: false; frame: Frame; err: unknown })[] = [];
  const held = new Set<Item>();

  // Ordered: partitions run side by side, each in chain order, stopping at its first failure.
  const groups = deps.ordering === "partition" ? byPartition(frames) : frames.map((f) => [f]);
  const prepared = await Promise.all(
    groups.map(async (group) => {
      const out: { frame: Frame; item: Item; prepared: Prepared<E, C> }[] = [];
      for (const [i, { frame, item }] of group.entries()) {
        try {
          out.push({ frame, item, prepared: await deps.prepare(frame, env) });
        } catch (err) {
          runs.push({ ok: false, frame, err });
          for (const later of group.slice(i + 1)) held.add(later.item);
          break;
        }
      }
      return out;
    }),
  );
  const runnable = prepared.flat();
  let error: unknown;
  let applied = false;
  if (deps.handleBatch !== undefined && runnable.length > 0) {
    try {
      const effects = (await deps.handleBatch(runnable.map((r) => r.prepared))) ?? [];
      const set = runnable.map((r, i) => ({ ...r.prepared, frame: r.frame, effects: i === 0 ? effects : [] }));
      // The set's effects cannot be split per event: if the commit is refused for one of them
      // (settled meanwhile), each event runs `handle` alone below.
      applied = await commitSet(deps, db, env, set, context).catch((err: unknown) => {
        error = err;
        return true;
      });
      if (applied && error === undefined) runs.push({ ok: true });
    } catch (err) {
      // One of the set failed: each event runs alone, so only the failing one pays for it.
      runnable[0]?.frame.log.warn("batch handler failed; handling the events one by one", { error: String(err) });
    }
  }
  if (!applied) {
    // The same groups as preparation: a partition's events in chain order, or one event each.
    await Promise.all(
      prepared.map(async (group) => {
        for (const [i, r] of group.entries()) {
          try {
            ready.push({ ...r.prepared, frame: r.frame, effects: await deps.handle(r.prepared.event, r.prepared.ctx) });
            runs.push({ ok: true });
          } catch (err) {
            runs.push({ ok: false, frame: r.frame, err });
            for (const later of group.slice(i + 1)) held.add(later.item);
            break;
          }
        }
      }),
    );
  }

  // Ordered, the commit keeps chain order within each partition (groups were run in order).
  if (deps.ordering === "partition") ready.sort((a, b) => order(a.frame.delivery) - order(b.frame.delivery));
  let committed = false;
  try {
    // In slices (a batch of 50 runs can hold 5,000 events), one after another: a slice that fails
    // stops the rest, so an ordered partition never has later events settled before earlier ones.
    for (const slice of chunks(ready, COMMIT_EVENTS)) await commit(deps, db, env, slice, context);
    committed = true;
  } catch (err) {
    error ??= err;
  }
  for (const run of runs) {
    try {
      if (run.ok) {
        if (committed) await deps.breaker.success(db);
      } else deps.settled(env, await deps.fail(run.frame, run.err));
    } catch (e) {
      error ??= e;
    }
  }
  return { rest: [...rest, ...candidates.filter((c) => held.has(c))], ...(error === undefined ? {} : { error }) };
}

/** Sorts chain order within a partition, partitions apart (stable across the whole list). */
function order(d: Delivery): number {
  return d.partition * 2 ** 32 + d.sequence;
}

/**
 * The items the batch path takes: live, inline, parsed, new to the subscription (prefetched as not
 * seen, first copy in the batch) and, ordered, each next in its partition's chain from the
 * prefetched checkpoint. A partition's chain stops at the first item that cannot be taken.
 */
function pick<Env, E extends { source: string; id: string }, C>(
  deps: BatchDeps<Env, E, C>,
  items: Item[],
  context: BatchContext,
): { candidates: Item[]; rest: Item[] } {
  const candidates: Item[] = [];
  const rest: Item[] = [];
  const taken = new Set<string>();
  const eligible = (item: Item): boolean => {
    const { parsed } = item;
    if (!parsed.success || parsed.data.subscription !== deps.subscription) return false;
    const d = parsed.data;
    if (d.redrive !== undefined || d.event === undefined) return false;
    // A replay in the live chain (a rebuild) settles like a live event, and a history event (never
    // delivered live, ADR 0035) is applied if new; an older job's unchained replay goes its own way.
    if (d.replay !== undefined && !d.replay.chain && d.replay.history !== true) return false;
    const { source, id } = d.event;
    if (typeof source !== "string" || typeof id !== "string") return false;
    const key = eventKey({ source, id });
    return context.seen.get(key) === null && !taken.has(key);
  };
  const take = (item: Item) => {
    const event = (item.parsed.data as Delivery).event as { source: string; id: string };
    taken.add(eventKey(event));
    candidates.push(item);
  };
  if (deps.ordering === "none") {
    for (const item of items) {
      if (eligible(item)) take(item);
      else rest.push(item);
    }
    return { candidates, rest };
  }
  const partitions = new Map<string, Item[]>();
  for (const item of items) {
    if (!item.parsed.success) {
      rest.push(item);
      continue;
    }
    const k = partitionKey(item.parsed.data);
    partitions.set(k, [...(partitions.get(k) ?? []), item]);
  }
  for (const [k, list] of partitions) {
    list.sort((a, b) => (a.parsed.data?.sequence ?? 0) - (b.parsed.data?.sequence ?? 0));
    let applied = context.checkpoints.get(k);
    let open = applied !== undefined;
    for (const item of list) {
      const d = item.parsed.data as Delivery;
      if (d.replay?.history === true) {
        // Outside the order chain: applied as it comes (its job sends a partition's history in
        // order, one run at a time), never moving the checkpoint.
        if (eligible(item)) take(item);
        else rest.push(item);
        continue;
      }
      if (open && applied !== undefined && eligible(item) && d.sequence > applied && d.prev <= applied) {
        take(item);
        applied = d.sequence;
      } else {
        // A duplicate below the checkpoint does not block the chain; anything else does.
        if (!(applied !== undefined && d.sequence <= applied)) open = false;
        rest.push(item);
      }
    }
  }
  return { candidates, rest };
}

function byPartition<T extends { frame: Frame }>(frames: T[]): T[][] {
  const groups = new Map<string, T[]>();
  for (const f of frames) {
    const k = partitionKey(f.frame.delivery);
    groups.set(k, [...(groups.get(k) ?? []), f]);
  }
  return [...groups.values()];
}

/** Commits a set handled by `handleBatch` whole; false (nothing written) when one of it was settled meanwhile. */
async function commitSet<Env, E extends { source: string; id: string }, C>(
  deps: BatchDeps<Env, E, C>,
  db: D1Database,
  env: Env,
  set: Ready<E, C>[],
  context: BatchContext,
): Promise<boolean> {
  try {
    await commit(deps, db, env, set, context, false);
    return true;
  } catch (err) {
    if (isUniqueViolation(err)) return false;
    throw err;
  }
}

/**
 * Commits `ready` in one db.batch(); refused because one of them was settled meanwhile (the
 * idempotency insert's unique key), it commits each half on its own, down to single events: the
 * one already settled ends as a duplicate (its effects rolled back), the others are handled.
 */
async function commit<Env, E extends { source: string; id: string }, C>(
  deps: BatchDeps<Env, E, C>,
  db: D1Database,
  env: Env,
  ready: Ready<E, C>[],
  context: BatchContext,
  split = true,
): Promise<void> {
  if (ready.length === 0) return;
  const metered = ready[0]?.frame.metered as ConsumerMetrics;
  // Commit → handled latency is a live figure: replayed events are old by design.
  const measured = metered.take(
    db,
    ready.filter((r) => r.frame.delivery.replay === undefined).map((r) => (Date.now() - r.frame.delivery.committedAt) / 1000),
  );
  const { statements, readBack } = batchStatements(deps, db, ready, measured.statements);
  let results: D1Result[];
  try {
    results = await db.batch(statements);
  } catch (err) {
    measured.restore();
    if (!split || !isUniqueViolation(err)) throw err;
    if (ready.length === 1) {
      const [only] = ready as [Ready<E, C>];
      context.seen.delete(eventKey(only.event)); // settled now; a later copy reads it
      only.frame.message.ack();
      await only.frame.recordAttempt("duplicate");
      deps.settled(env, "duplicate");
      return;
    }
    const half = Math.ceil(ready.length / 2);
    await commit(deps, db, env, ready.slice(0, half), context);
    await commit(deps, db, env, ready.slice(half), context);
    return;
  }
  for (const [k, index] of readBack) {
    const moved = checkpointFrom(results[index]);
    if (moved !== undefined) context.checkpoints.set(k, moved);
  }
  for (const r of ready) {
    const d = r.frame.delivery;
    context.seen.set(eventKey(r.event), { outcome: "handled", topic: d.topic, partition: d.partition, sequence: d.sequence });
    r.frame.message.ack();
    deps.settled(env, "handled");
  }
}

/** The statements of one commit, and where (by partition key) the checkpoints it reads back are. */
function batchStatements<Env, E extends { source: string; id: string }, C>(
  deps: BatchDeps<Env, E, C>,
  db: D1Database,
  ready: Ready<E, C>[],
  metrics: D1PreparedStatement[],
): { statements: D1PreparedStatement[]; readBack: Map<string, number> } {
  const now = Date.now();
  const statements: D1PreparedStatement[] = ready.flatMap((r) => r.effects);
  const rows = ready.map((r) => [
    r.event.source,
    r.event.id,
    r.frame.key.topic,
    r.frame.key.partition,
    r.frame.key.sequence,
    r.frame.key.prev,
  ]);
  statements.push(db.prepare(INSERT_HANDLED).bind(deps.subscription, JSON.stringify(rows), now));
  const partitions = new Map<string, { at: Position; sequences: number[] }>();
  for (const r of ready) {
    const k = partitionKey(r.frame.key);
    const entry = partitions.get(k) ?? { at: r.frame.key, sequences: [] };
    entry.sequences.push(r.frame.key.sequence);
    partitions.set(k, entry);
  }
  const readBack = new Map<string, number>();
  for (const { at, sequences } of partitions.values()) {
    statements.push(
      ...checkpointWalkStatements(db, at, now),
      db.prepare(CLEAR_FAILURES).bind(deps.subscription, at.topic, at.partition, JSON.stringify(sequences)),
    );
  }
  statements.push(countStatement(db, deps.subscription, "handled", now, ready.length));
  // A first run that succeeds writes no attempt record (its trace shows the settlement); a success
  // after failures, waits or a resend keeps one, so the trace lists every attempt.
  for (const r of ready) if (r.frame.message.attempts > 1) statements.push(...r.frame.attempt("handled"));
  statements.push(...metrics);
  if (deps.ordering === "partition") {
    for (const [k, { at }] of partitions) {
      readBack.set(k, statements.length);
      statements.push(checkpointStatement(db, at));
    }
  }
  return { statements, readBack };
}

/**
 * Waits for every message, then rethrows the first failure (Queues retries what was not acked).
 * Failing at the first one would end the invocation while others are still settling: their
 * acks, and the records the end-of-invocation batch carries, would be cut short.
 */
export async function settleEvery(tasks: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(tasks)).find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed !== undefined) throw failed.reason;
}
