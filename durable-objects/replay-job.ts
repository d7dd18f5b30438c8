import { DurableObject } from "cloudflare:workers";
import { z } from "zod";
import { createLogger } from "../sdk/logger";
import type { DeliveryMessage, ReplayMark } from "../sdk/messages";
import { partitionName } from "../sdk/partition-name";
import { compileFilter, type Filter } from "../shared/filter";
import { metricsEnabled } from "../shared/metrics";
import { queueBinding } from "../shared/subscriptions";
import { chunk, type Row, runsOf } from "./partition-log/delivery/runs";
import { Pacer } from "./replay/pacing";
import { createWatchTable, readSettlement, settledAmong, watch, watchedBatch } from "./replay/settlement";
import {
  type JobRow,
  type PartitionRow,
  type ReplaySpec,
  type ReplayState,
  type ReplayView,
  replaySpecSchema,
  viewOf,
} from "./replay/view";
import { migrate, type SqlMigration, tableExists } from "./sql-migrations";

export type { ReplayPartitionView, ReplaySpec, ReplaySpecInput, ReplayState, ReplayView } from "./replay/view";
export { replaySpecSchema } from "./replay/view";

/**
 * One replay job: delivers a range of a topic's events — from the R2 archive and the partition
 * logs, through PartitionLog.read, which serves both — to ONE subscription, filtered, in sequence
 * order per partition, paced at `rate` events/s, as runs (message v2). Progress is checkpointed
 * after every batch in the object's SQLite storage, and the job runs from its alarm, so it resumes
 * where it stopped after an eviction or a restart. Named by its job id.
 *
 * What it sends (ADR 0035): an unchained replay asks each partition which events of the batch it
 * still holds for the subscription (routed, not acknowledged: live delivery brings those) and
 * sends the rest marked `history` — events the log will never deliver to it, committed before it
 * existed or acknowledged already — which the consumer applies unless it settled them. A watched
 * job then reads the subscription's settlement in D1 (replay/settlement.ts) and is done when
 * every event it sent or left to the log is settled; for an ordered subscription it has at most
 * one run per partition in flight, so the queue cannot reorder what it replays.
 */

/** Consecutive failed ticks after which a job gives up (state `failed`). */
const MAX_FAILED_TICKS = 10;
/** Events read per partition call, and sent at most per tick (pacing: replay/pacing.ts). */
const PAGE = 100;
const MAX_PER_TICK = 1000;
/** How often a job waiting for its target's settlement looks again. */
const POLL_MS = 500;
/** How stale the D1 list of replays (GET /v1/replays, metrics) may be while a job runs; final states are written at once. */
const RECORD_MS = 1_000;

export type ReplaySend = (binding: string, bodies: DeliveryMessage[]) => Promise<void>;

/** Columns added to `positions` since it was first created (a job running across an upgrade keeps its table). */
/**
 * The job's schema as numbered migrations (durable-objects/sql-migrations.ts). A job object from
 * before them (a `job` table, no `_migrations`) is adopted once: what exists is kept, what its code
 * added at start (the counter columns, the watch table) is added only where missing.
 */
export const REPLAY_JOB_MIGRATIONS: readonly SqlMigration[] = [
  {
    id: 1,
    name: "job and positions",
    up: ({ sql }) => {
      sql.exec(`CREATE TABLE IF NOT EXISTS job (
        id TEXT PRIMARY KEY, spec TEXT NOT NULL, state TEXT NOT NULL, error TEXT,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, started_at INTEGER NOT NULL,
        finished_at INTEGER, resent INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0
      )`);
      sql.exec(`CREATE TABLE IF NOT EXISTS positions (
        partition INTEGER PRIMARY KEY, from_seq INTEGER NOT NULL, to_seq INTEGER NOT NULL,
        position INTEGER NOT NULL, prev INTEGER NOT NULL, scanned INTEGER NOT NULL, sent INTEGER NOT NULL,
        pending_to INTEGER, pending_sent INTEGER
      )`);
    },
  },
  {
    id: 2,
    name: "settlement counters and watch (ADR 0035)",
    up: ({ sql, addColumn }) => {
      for (const column of ["handled", "already_handled", "dead_lettered", "held"]) {
        addColumn("positions", column, "INTEGER NOT NULL DEFAULT 0");
      }
      createWatchTable(sql);
    },
  },
];

/** The test seams of a replay job, in one place (`runInDurableObject(stub, (job) => { job.testing.send = ... })`). */
export interface ReplayJobSeams {
  /** How batches reach the queue (tests record or fail them). */
  send: ReplaySend;
  /** Runs after each committed batch (tests stop the job there to simulate an eviction). */
  afterBatch: () => Promise<void>;
}

export class ReplayJob extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly log = createLogger({ component: "replay-job" });
  private compiled: Filter | undefined;
  /** The send schedule of this instance (a restart starts it again from its first tick). */
  private pacer: Pacer | undefined;
  /** When this instance last wrote the job's view to the D1 list, and whether it changed since. */
  private recordedAt = 0;
  private unrecorded = false;
  /** What tests change on one job (see ReplayJobSeams); production never touches it. */
  readonly testing: ReplayJobSeams = {
    send: async (binding, bodies) => {
      await queueBinding(this.env, binding).sendBatch(bodies.map((body) => ({ body, contentType: "json" })));
    },
    afterBatch: async () => {},
  };

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => {
      migrate(ctx.storage, REPLAY_JOB_MIGRATIONS, (sql) => tableExists(sql, "job"));
    });
  }

  private spec(): ReplaySpec | null {
    const row = this.sql.exec<{ spec: string }>(`SELECT spec FROM job`).toArray()[0];
    return row === undefined ? null : replaySpecSchema.parse(JSON.parse(row.spec));
  }

  /**
   * Starts the job (idempotent: a second call returns the job as it is). Ranges are resolved
   * now: a time becomes the first sequence committed at or after it, a missing `to` the head.
   */
  async start(input: z.input<typeof replaySpecSchema>): Promise<ReplayView> {
    const parsed = replaySpecSchema.safeParse(input);
    if (!parsed.success) throw new TypeError(`invalid replay: ${z.prettifyError(parsed.error)}`);
    const spec = parsed.data;
    if (this.spec() !== null) return this.view();
    const ranges = await Promise.all(
      spec.partitions.map(async (partition) => {
        const log = this.env.PARTITION_LOG.getByName(partitionName(spec.topic, partition));
        const from = "sequence" in spec.from ? spec.from.sequence : await log.locate(Date.parse(spec.from.time));
        let to: number;
        if (spec.to === undefined) to = (await log.stats()).head;
        else if ("sequence" in spec.to) to = spec.to.sequence;
        else to = (await log.locate(Date.parse(spec.to.time) + 1)) - 1;
        return { partition, from, to };
      }),
    );
    const now = Date.now();
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        `INSERT INTO job (id, spec, state, created_at, updated_at, started_at) VALUES (?, ?, 'running', ?, ?, ?)`,
        spec.id,
        JSON.stringify(spec),
        now,
        now,
        now,
      );
      for (const r of ranges) {
        this.sql.exec(
          `INSERT INTO positions (partition, from_seq, to_seq, position, prev, scanned, sent) VALUES (?, ?, ?, ?, 0, 0, 0)`,
          r.partition,
          r.from,
          Math.max(r.to, r.from - 1),
          r.from - 1,
        );
      }
    });
    await this.ctx.storage.setAlarm(now);
    this.log.info("replay started", {
      replayId: spec.id,
      topic: spec.topic,
      subscription: spec.subscription,
      ranges,
      rate: spec.rate,
      settlement: spec.settlement,
    });
    await this.record();
    return this.view();
  }

  /** The job as it stands, null when this object holds no job. */
  status(): ReplayView | null {
    return this.sql.exec<{ id: string }>(`SELECT id FROM job`).toArray()[0] === undefined ? null : this.view();
  }

  private view(): ReplayView {
    const job = this.sql.exec<JobRow>(`SELECT * FROM job`).toArray()[0];
    if (job === undefined) throw new Error("no replay job in this object");
    const partitions = this.sql.exec<PartitionRow>(`SELECT * FROM positions ORDER BY partition`).toArray();
    const awaiting = this.sql
      .exec<{ partition: number; n: number }>(`SELECT partition, COUNT(*) AS n FROM watch GROUP BY partition`)
      .toArray();
    return viewOf(job, partitions, new Map(awaiting.map((a) => [a.partition, a.n])));
  }

  /** Stops the job where it is; what was sent stays sent. Cancelling a finished job changes nothing. */
  async cancel(): Promise<ReplayView | null> {
    const view = this.status();
    if (view === null) return null;
    if (view.state === "running") {
      const now = Date.now();
      this.sql.exec(`UPDATE job SET state = 'cancelled', updated_at = ?, finished_at = ?`, now, now);
      await this.ctx.storage.deleteAlarm();
      this.log.info("replay cancelled", { replayId: view.id, scanned: view.scanned, sent: view.sent, awaiting: view.awaiting });
      await this.record();
    }
    return this.view();
  }

  /**
   * One tick: the target's settlement read (watched jobs), the events that fall due at `rate` (at
   * most MAX_PER_TICK) sent, then the alarm for the next.
   */
  override async alarm(): Promise<void> {
    const spec = this.spec();
    const state = this.sql.exec<{ state: ReplayState }>(`SELECT state FROM job`).toArray()[0]?.state;
    if (spec === null || state !== "running") return;
    const started = Date.now();
    this.pacer ??= new Pacer(spec.rate);
    let sentThisTick = 0;
    let scannedThisTick = 0;
    let settledThisTick = 0;
    const running = () => this.sql.exec<{ state: ReplayState }>(`SELECT state FROM job`).one().state === "running";
    // An ordered target gets one run per partition at a time: a partition whose last run is not
    // settled yet waits (the queue does not keep order; the consumer applies history as it comes).
    const oneRun = spec.settlement === "watched" && spec.ordering === "partition" && !spec.chain;
    const ready = () =>
      this.sql
        .exec<PartitionRow>(
          `SELECT * FROM positions p WHERE position < to_seq
           AND NOT (? AND EXISTS (SELECT 1 FROM watch w WHERE w.partition = p.partition AND w.kind = 'sent'))
           ORDER BY partition`,
          oneRun ? 1 : 0,
        )
        .toArray();
    try {
      if (spec.settlement === "watched") settledThisTick = await this.settle(spec);
      const budget = Math.min(MAX_PER_TICK, this.pacer.budget(started));
      // Scanning is bounded too, so a filter that matches little cannot make one tick read the
      // whole range.
      const scanBudget = Math.max(PAGE, budget * 10);
      let progressed = true;
      while (sentThisTick < budget && scannedThisTick < scanBudget && progressed) {
        progressed = false;
        for (const row of ready()) {
          // A cancel that came in while this tick awaited stops it at the next batch.
          if (sentThisTick >= budget || scannedThisTick >= scanBudget || !running()) break;
          const done = await this.batch(spec, row, budget - sentThisTick, oneRun);
          this.pacer.record(done.sent);
          sentThisTick += done.sent;
          scannedThisTick += done.scanned;
          progressed = true;
        }
      }
      if (!running()) return;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (!running()) return;
      const failures = this.sql
        .exec<{ failures: number }>(
          `UPDATE job SET error = ?, updated_at = ?, failures = failures + 1 WHERE state = 'running' RETURNING failures`,
          message,
          Date.now(),
        )
        .one().failures;
      if (failures >= MAX_FAILED_TICKS) {
        // It keeps failing (e.g. the queue is gone): stop, with the position kept for a new job.
        this.sql.exec(`UPDATE job SET state = 'failed', finished_at = ?`, Date.now());
        this.log.error("replay failed", { replayId: spec.id, failures, error: err });
      } else {
        this.log.error("replay tick failed; retrying", { replayId: spec.id, failures, error: err });
        await this.ctx.storage.setAlarm(Date.now() + Math.min(60_000, 1_000 * 2 ** failures));
      }
      await this.record();
      return;
    }
    const remaining = this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM positions WHERE position < to_seq`).one().n;
    const awaiting = this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM watch`).one().n;
    const now = Date.now();
    // Done once everything is sent and settled, and the last events' share of time at `rate` is over.
    if (remaining === 0 && awaiting === 0 && now >= this.pacer.due()) {
      this.sql.exec(
        `UPDATE job SET state = 'done', error = NULL, failures = 0, updated_at = ?, finished_at = ? WHERE state = 'running'`,
        now,
        now,
      );
      this.log.info("replay done", { replayId: spec.id, ...this.totals() });
    } else {
      this.sql.exec(`UPDATE job SET error = NULL, failures = 0, updated_at = ?`, now);
      // Paced (replay/pacing.ts): the next tick when the next events fall due, or (all sent) when the
      // last ones' time is over; only waiting for the target (every partition left with a run in
      // flight): a poll later.
      const paced = remaining === 0 && awaiting === 0 ? this.pacer.due() : this.pacer.next(started);
      await this.ctx.storage.setAlarm(ready().length === 0 && awaiting > 0 ? Math.max(paced, now + POLL_MS) : paced);
      // The D1 list gets a running job's view at most once per RECORD_MS (it ticks every 100 ms while
      // sending), and only when it changed (a waiting job polls twice a second); a change held back
      // is written by a later tick.
      if (sentThisTick + scannedThisTick + settledThisTick > 0) this.unrecorded = true;
      if (!this.unrecorded || now - this.recordedAt < RECORD_MS) return;
    }
    await this.record();
  }

  /** Reads the target's settlement of the oldest watched events and counts what is settled. */
  private async settle(spec: ReplaySpec): Promise<number> {
    const rows = watchedBatch(this.sql);
    if (rows.length === 0) return 0;
    const settled = await readSettlement(
      this.env.DB,
      { subscription: spec.subscription, topic: spec.topic, replays: spec.replays, attempts: metricsEnabled(this.env) },
      rows,
    );
    const column = { handled: "handled", alreadyHandled: "already_handled", deadLettered: "dead_lettered" } as const;
    this.ctx.storage.transactionSync(() => {
      for (const e of settled) {
        const gone = this.sql.exec(`DELETE FROM watch WHERE partition = ? AND sequence = ?`, e.partition, e.sequence).rowsWritten;
        if (gone > 0) this.sql.exec(`UPDATE positions SET ${column[e.as]} = ${column[e.as]} + 1 WHERE partition = ?`, e.partition);
      }
    });
    return settled.length;
  }

  private totals() {
    return this.sql
      .exec<{ scanned: number; sent: number; handled: number; already_handled: number; dead_lettered: number; held: number }>(
        `SELECT SUM(scanned) AS scanned, SUM(sent) AS sent, SUM(handled) AS handled, SUM(already_handled) AS already_handled,
           SUM(dead_lettered) AS dead_lettered, SUM(held) AS held FROM positions`,
      )
      .one();
  }

  private matches(spec: ReplaySpec): Filter {
    if (this.compiled === undefined) {
      const own = compileFilter(spec.filter);
      const subscription = compileFilter(spec.subscriptionFilter);
      this.compiled = (event) => subscription(event) && own(event);
    }
    return this.compiled;
  }

  /**
   * Reads up to `want` events of one partition after its position, sends the matching ones as
   * runs and commits the new position. The range about to be sent is recorded first, so if the job
   * stops before the commit, the resumed job knows it is sending those events again (`resent`).
   * `oneRun`: at most one run (an ordered target; the next waits until this one is settled).
   */
  private async batch(spec: ReplaySpec, row: PartitionRow, wantSent: number, oneRun: boolean): Promise<{ sent: number; scanned: number }> {
    const log = this.env.PARTITION_LOG.getByName(partitionName(spec.topic, row.partition));
    // A full page is read whatever is left to send: few of its events may match.
    const page = await log.read(row.position + 1, Math.min(PAGE, row.to_seq - row.position));
    const scanned = page.events
      .map((text) => ({ text, event: JSON.parse(text) as Record<string, unknown> }))
      .map((e) => ({ ...e, sequence: Number(e.event.sequence) }))
      .filter((e) => e.sequence <= row.to_seq);
    const first = scanned[0]?.sequence;
    const last = scanned.at(-1)?.sequence;
    if (first === undefined || last === undefined) {
      // Nothing left to read below `to` (the range ends beyond what exists): the partition is done.
      this.sql.exec(`UPDATE positions SET position = to_seq WHERE partition = ?`, row.partition);
      return { sent: 0, scanned: 0 };
    }
    const matches = this.matches(spec);
    // Asked after the read: an event the log held then but acknowledged since is absorbed as a
    // duplicate; asked before, an event committed in between would look unrouted and be applied
    // outside the order chain, beside its live delivery. Held events the subscription has settled
    // already are sent (settledAmong). A rebuild replays the live chain itself.
    const held = spec.chain ? new Set<number>() : new Set(await log.heldFor(spec.subscription, first, last));
    for (const s of await settledAmong(this.env.DB, { subscription: spec.subscription, topic: spec.topic, partition: row.partition }, [
      ...held,
    ]))
      held.delete(s);
    const rows: Row[] = [];
    const left: number[] = [];
    let prev = row.prev;
    let position = row.position;
    for (const { text, event, sequence } of scanned) {
      if (rows.length >= wantSent) break;
      position = sequence;
      if (!matches(event)) continue;
      if (held.has(sequence)) {
        left.push(sequence);
        continue;
      }
      rows.push({
        subscription: spec.subscription,
        sequence,
        // Unchained: one run of whatever is sent (the consumer ignores its `prev`).
        prev: spec.chain ? prev : (rows.at(-1)?.sequence ?? 0),
        body: text,
        received_at: Date.parse(String(event.receivedtime)),
      });
      prev = sequence;
    }
    let runs = runsOf(rows, spec.topic, row.partition);
    const second = runs[1]?.body.events[0]?.sequence;
    if (oneRun && second !== undefined) {
      // The rest of the page waits for this run to be settled.
      runs = runs.slice(0, 1);
      position = second - 1;
      prev = runs[0]?.body.events.at(-1)?.sequence ?? prev;
    }
    const sequences = runs.flatMap((r) => r.body.events.map((e) => e.sequence));
    const heldNow = left.filter((s) => s <= position);
    const mark: ReplayMark = spec.chain ? { jobId: spec.id, chain: true } : { jobId: spec.id, chain: false, history: true };
    const watched = spec.settlement === "watched";
    const at = Date.now();
    this.ctx.storage.transactionSync(() => {
      if (row.pending_to !== null) {
        // Resumed after stopping mid-batch: what was in flight then is being sent again.
        this.sql.exec(`UPDATE job SET resent = resent + ?`, row.pending_sent ?? 0);
      }
      this.sql.exec(`UPDATE positions SET pending_to = ?, pending_sent = ? WHERE partition = ?`, position, sequences.length, row.partition);
      // Watched from before the send: a consumer may settle them before this call returns.
      if (watched) watch(this.sql, row.partition, sequences, "sent", at);
    });
    for (const batch of chunk(runs)) {
      await this.testing.send(
        spec.binding,
        batch.map((m) => ({ ...m.body, replay: mark })),
      );
    }
    this.ctx.storage.transactionSync(() => {
      if (watched) watch(this.sql, row.partition, heldNow, "held", at);
      this.sql.exec(
        `UPDATE positions SET position = ?, prev = ?, scanned = scanned + ?, sent = sent + ?, held = held + ?,
           pending_to = NULL, pending_sent = NULL
         WHERE partition = ?`,
        position,
        prev,
        position - row.position,
        sequences.length,
        heldNow.length,
        row.partition,
      );
    });
    await this.testing.afterBatch();
    return { sent: sequences.length, scanned: position - row.position };
  }

  /** Keeps the D1 list of replays (`GET /v1/replays`) in step; the object is the source of truth. */
  private async record(): Promise<void> {
    this.recordedAt = Date.now();
    this.unrecorded = false;
    const view = this.view();
    try {
      await this.env.DB.prepare(
        `INSERT INTO replay_jobs (id, topic, subscription, state, created_at, updated_at, view)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at, view = excluded.view`,
      )
        .bind(
          view.id,
          view.topic,
          view.subscription,
          view.state,
          Date.parse(view.createdAt),
          Date.parse(view.updatedAt),
          JSON.stringify(view),
        )
        .run();
    } catch (err) {
      this.log.warn("replay list not updated", { replayId: view.id, error: err });
    }
  }
}
