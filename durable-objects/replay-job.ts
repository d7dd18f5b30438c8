import { DurableObject } from "cloudflare:workers";
import { z } from "zod";
import { compileFilter, type Filter, filterSchema } from "../shared/filter";
import { createLogger } from "../shared/logger";
import { type Delivery, MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MAX_INLINE_EVENT_BYTES } from "../shared/messages";
import { queueBinding } from "../shared/subscriptions";

/**
 * One replay job: sends a range of a topic's events — from the R2 archive and the partition logs,
 * through PartitionLog.read, which serves both — to ONE subscription's queue, filtered, in
 * sequence order per partition, paced at `rate` events/s. Progress is checkpointed after every
 * batch in the object's SQLite storage, and the job runs from its alarm, so it resumes where it
 * stopped after an eviction or a restart. Named by its job id.
 */

const positionSchema = z.union([
  z.object({ sequence: z.number().int().min(1) }).strict(),
  z.object({ time: z.iso.datetime({ offset: true }) }).strict(),
]);

export const replaySpecSchema = z.object({
  id: z.string().min(1).max(64),
  topic: z.string().min(1),
  partitions: z.array(z.number().int().nonnegative()).min(1),
  from: positionSchema,
  to: positionSchema.optional(),
  /** The replay's own filter; the subscription's filter applies as well. */
  filter: filterSchema.optional(),
  subscription: z.string().min(1),
  /** The subscription's filter (it only ever gets what it subscribed to). */
  subscriptionFilter: filterSchema.optional(),
  /** Queue producer binding that delivers the subscription. */
  binding: z.string().min(1),
  /** Events per second sent. */
  rate: z.number().int().min(1).max(10_000),
  /**
   * True for a rebuild from the start with no filter of its own: the messages then carry the same
   * `prev` chain as live deliveries and are ordered and checkpointed like them.
   */
  chain: z.boolean(),
});
export type ReplaySpec = z.output<typeof replaySpecSchema>;

export type ReplayState = "running" | "done" | "cancelled" | "failed";

export interface ReplayPartitionView {
  partition: number;
  from: number;
  to: number;
  /** Last sequence scanned. */
  position: number;
  scanned: number;
  sent: number;
  done: boolean;
}

export interface ReplayView {
  id: string;
  topic: string;
  subscription: string;
  state: ReplayState;
  rate: number;
  from: ReplaySpec["from"];
  to: z.output<typeof positionSchema> | null;
  filter: NonNullable<ReplaySpec["filter"]> | null;
  chain: boolean;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  error: string | null;
  partitions: ReplayPartitionView[];
  scanned: number;
  sent: number;
  /** Events sent again after a resume (the batch in flight when the job stopped); consumers absorb them. */
  resent: number;
  /** Events in the ranges to scan. */
  total: number;
  eventsPerSecond: number;
  etaSeconds: number | null;
}

const utf8 = new TextEncoder();

/** Consecutive failed ticks after which a job gives up (state `failed`). */
const MAX_FAILED_TICKS = 10;
/** Events read per partition call, and sent at most per tick. */
const PAGE = 100;
const MAX_PER_TICK = 1000;

type PartitionRow = {
  partition: number;
  from_seq: number;
  to_seq: number;
  position: number;
  prev: number;
  scanned: number;
  sent: number;
  pending_to: number | null;
  pending_sent: number | null;
};

export type ReplaySend = (binding: string, bodies: Delivery[]) => Promise<void>;

export class ReplayJob extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly log = createLogger({ component: "replay-job" });
  private compiled: Filter | undefined;
  /** How batches reach the queue; an instance field so tests can record or fail them. */
  send: ReplaySend = async (binding, bodies) => {
    await queueBinding(this.env, binding).sendBatch(bodies.map((body) => ({ body, contentType: "json" })));
  };
  /** Called after each committed batch (tests stop the job there to simulate an eviction). */
  afterBatch: () => Promise<void> = async () => {};

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(`CREATE TABLE IF NOT EXISTS job (
        id TEXT PRIMARY KEY, spec TEXT NOT NULL, state TEXT NOT NULL, error TEXT,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, started_at INTEGER NOT NULL,
        finished_at INTEGER, resent INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0
      )`);
      this.sql.exec(`CREATE TABLE IF NOT EXISTS positions (
        partition INTEGER PRIMARY KEY, from_seq INTEGER NOT NULL, to_seq INTEGER NOT NULL,
        position INTEGER NOT NULL, prev INTEGER NOT NULL, scanned INTEGER NOT NULL, sent INTEGER NOT NULL,
        pending_to INTEGER, pending_sent INTEGER
      )`);
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
        const log = this.env.PARTITION_LOG.getByName(`${spec.topic}/${partition}`);
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
    this.log.info("replay started", { replayId: spec.id, topic: spec.topic, subscription: spec.subscription, ranges, rate: spec.rate });
    await this.record();
    return this.view();
  }

  /** The job as it stands, null when this object holds no job. */
  status(): ReplayView | null {
    return this.sql.exec<{ id: string }>(`SELECT id FROM job`).toArray()[0] === undefined ? null : this.view();
  }

  private view(): ReplayView {
    const job = this.sql
      .exec<{
        id: string;
        spec: string;
        state: ReplayState;
        error: string | null;
        created_at: number;
        updated_at: number;
        started_at: number;
        finished_at: number | null;
        resent: number;
      }>(`SELECT * FROM job`)
      .toArray()[0];
    if (job === undefined) throw new Error("no replay job in this object");
    const spec = replaySpecSchema.parse(JSON.parse(job.spec));
    const partitions = this.sql.exec<PartitionRow>(`SELECT * FROM positions ORDER BY partition`).toArray();
    const scanned = partitions.reduce((n, p) => n + p.scanned, 0);
    const sent = partitions.reduce((n, p) => n + p.sent, 0);
    const total = partitions.reduce((n, p) => n + Math.max(0, p.to_seq - p.from_seq + 1), 0);
    const elapsed = Math.max(0.001, ((job.finished_at ?? Date.now()) - job.started_at) / 1000);
    const scanRate = scanned / elapsed;
    return {
      id: job.id,
      topic: spec.topic,
      subscription: spec.subscription,
      state: job.state,
      rate: spec.rate,
      from: spec.from,
      to: spec.to ?? null,
      filter: spec.filter ?? null,
      chain: spec.chain,
      createdAt: new Date(job.created_at).toISOString(),
      updatedAt: new Date(job.updated_at).toISOString(),
      finishedAt: job.finished_at === null ? null : new Date(job.finished_at).toISOString(),
      error: job.error,
      partitions: partitions.map((p) => ({
        partition: p.partition,
        from: p.from_seq,
        to: p.to_seq,
        position: p.position,
        scanned: p.scanned,
        sent: p.sent,
        done: p.position >= p.to_seq,
      })),
      scanned,
      sent,
      resent: job.resent,
      total,
      eventsPerSecond: Math.round((sent / elapsed) * 10) / 10,
      etaSeconds: job.state !== "running" ? null : scanRate > 0 ? Math.ceil((total - scanned) / scanRate) : null,
    };
  }

  /** Stops the job where it is; what was sent stays sent. Cancelling a finished job changes nothing. */
  async cancel(): Promise<ReplayView | null> {
    const view = this.status();
    if (view === null) return null;
    if (view.state === "running") {
      const now = Date.now();
      this.sql.exec(`UPDATE job SET state = 'cancelled', updated_at = ?, finished_at = ?`, now, now);
      await this.ctx.storage.deleteAlarm();
      this.log.info("replay cancelled", { replayId: view.id, scanned: view.scanned, sent: view.sent });
      await this.record();
    }
    return this.view();
  }

  /** One tick: up to `rate` events (and at most MAX_PER_TICK) sent, then the alarm for the next. */
  override async alarm(): Promise<void> {
    const spec = this.spec();
    const state = this.sql.exec<{ state: ReplayState }>(`SELECT state FROM job`).toArray()[0]?.state;
    if (spec === null || state !== "running") return;
    const started = Date.now();
    let sentThisTick = 0;
    let scannedThisTick = 0;
    const running = () => this.sql.exec<{ state: ReplayState }>(`SELECT state FROM job`).one().state === "running";
    try {
      const budget = Math.min(MAX_PER_TICK, spec.rate);
      // Scanning is bounded too, so a filter that matches little cannot make one tick read the
      // whole range.
      const scanBudget = Math.max(PAGE, budget * 10);
      let progressed = true;
      while (sentThisTick < budget && scannedThisTick < scanBudget && progressed) {
        progressed = false;
        for (const row of this.sql.exec<PartitionRow>(`SELECT * FROM positions WHERE position < to_seq ORDER BY partition`).toArray()) {
          // A cancel that came in while this tick awaited stops it at the next batch.
          if (sentThisTick >= budget || scannedThisTick >= scanBudget || !running()) break;
          const done = await this.batch(spec, row, budget - sentThisTick);
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
    const now = Date.now();
    if (remaining === 0) {
      this.sql.exec(
        `UPDATE job SET state = 'done', error = NULL, failures = 0, updated_at = ?, finished_at = ? WHERE state = 'running'`,
        now,
        now,
      );
      this.log.info("replay done", { replayId: spec.id, ...this.totals() });
    } else {
      this.sql.exec(`UPDATE job SET error = NULL, failures = 0, updated_at = ?`, now);
      // Paced: the next tick when this one's events are due at `rate`.
      await this.ctx.storage.setAlarm(started + Math.ceil((sentThisTick / spec.rate) * 1000));
    }
    await this.record();
  }

  private totals() {
    return this.sql.exec<{ scanned: number; sent: number }>(`SELECT SUM(scanned) AS scanned, SUM(sent) AS sent FROM positions`).one();
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
   * Reads up to `want` events of one partition after its position, sends the matching ones and
   * commits the new position. The range about to be sent is recorded first, so if the job stops
   * before the commit, the resumed job knows it is sending those events again (`resent`).
   */
  private async batch(spec: ReplaySpec, row: PartitionRow, wantSent: number): Promise<{ sent: number; scanned: number }> {
    const log = this.env.PARTITION_LOG.getByName(`${spec.topic}/${row.partition}`);
    // A full page is read whatever is left to send: few of its events may match.
    const page = await log.read(row.position + 1, Math.min(PAGE, row.to_seq - row.position));
    const matches = this.matches(spec);
    const messages: Delivery[] = [];
    let prev = row.prev;
    let position = row.position;
    for (const text of page.events) {
      const event = JSON.parse(text) as Record<string, unknown>;
      const sequence = Number(event.sequence);
      if (sequence > row.to_seq || messages.length >= wantSent) break;
      position = sequence;
      if (!matches(event)) continue;
      const inline = text.length <= MAX_INLINE_EVENT_BYTES;
      messages.push({
        v: 1,
        subscription: spec.subscription,
        topic: spec.topic,
        partition: row.partition,
        sequence,
        prev: spec.chain ? prev : 0,
        committedAt: Date.parse(String(event.receivedtime)),
        replay: { jobId: spec.id, chain: spec.chain },
        ...(inline ? { event } : { ref: true as const }),
      });
      prev = sequence;
    }
    if (page.events.length === 0 || position === row.position) {
      // Nothing left to read below `to` (the range ends beyond what exists): the partition is done.
      this.sql.exec(`UPDATE positions SET position = to_seq WHERE partition = ?`, row.partition);
      return { sent: 0, scanned: 0 };
    }
    if (row.pending_to !== null) {
      // Resumed after stopping mid-batch: what was in flight then is being sent again.
      this.sql.exec(`UPDATE job SET resent = resent + ?`, row.pending_sent ?? 0);
    }
    this.sql.exec(`UPDATE positions SET pending_to = ?, pending_sent = ? WHERE partition = ?`, position, messages.length, row.partition);
    await this.sendAll(spec.binding, messages);
    this.sql.exec(
      `UPDATE positions SET position = ?, prev = ?, scanned = scanned + ?, sent = sent + ?, pending_to = NULL, pending_sent = NULL
       WHERE partition = ?`,
      position,
      prev,
      position - row.position,
      messages.length,
      row.partition,
    );
    await this.afterBatch();
    return { sent: messages.length, scanned: position - row.position };
  }

  /** sendBatch limits: at most 100 messages and 256 KB per call. */
  private async sendAll(binding: string, messages: Delivery[]): Promise<void> {
    let chunk: Delivery[] = [];
    let bytes = 0;
    for (const m of messages) {
      const size = utf8.encode(JSON.stringify(m)).byteLength;
      if (chunk.length > 0 && (chunk.length >= MAX_BATCH_MESSAGES || bytes + size > MAX_BATCH_BYTES)) {
        await this.send(binding, chunk);
        chunk = [];
        bytes = 0;
      }
      chunk.push(m);
      bytes += size;
    }
    if (chunk.length > 0) await this.send(binding, chunk);
  }

  /** Keeps the D1 list of replays (`GET /v1/replays`) in step; the object is the source of truth. */
  private async record(): Promise<void> {
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
