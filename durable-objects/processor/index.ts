import { DurableObject } from "cloudflare:workers";
import config from "../../eventline.config";
import { createLogger } from "../../sdk/logger";
import { partitionName } from "../../sdk/partition-name";
import { advance, apply, type EngineState, nextWakeup, status } from "../../shared/processing";
import { engineInput, type ProcessorPlan, processorPlans, type Repartitioned } from "../../shared/processors";
import { type Backfill, backfillDone, backfillTotal, HistoryMerge, historyInputs, newBackfill } from "./backfill";
import { type FeedRun, instanceArgs, parseFeedArgs, parseInternalData, storedData, storedItem } from "./feed-input";
import { flushOutputs, type LateBody, resultBody, type TriggerTrace } from "./outputs";
import { type OutputKind, ProcessorStore } from "./store";
import { CatchingUp, type HistoryStep, type InstanceStatus, type Item, type ProcessorSeams } from "./types";

export type { InstanceStatus, ProcessorSeams } from "./types";
export { CatchingUp } from "./types";

/** Inputs whose trace context an instance remembers, for the results they cause later (a final closed by a later watermark). */
const TRACE_MEMORY = 10_000;
/** Internal-topic events read per catch-up step, and the steps one call or alarm may take. */
const CATCH_UP_PAGE = 1000;
const CATCH_UP_STEPS = 5;
const FLUSH_RETRY_MS = 2_000;
const FLUSH_RETRY_MAX_MS = 60_000;
/** Results appended in the last minute: the output rate. */
const RATE_WINDOW_MS = 60_000;
/** Input events a backfill reads per page of one partition, and applies per step (one state commit). */
const BACKFILL_PAGE = 1000;
/** Input events a backfill holds read ahead at most, over every input partition (a page each). */
const BACKFILL_BUFFER = 20_000;
const BACKFILL_STEP = 2000;
/** Backfill steps a feed call takes before it answers "catching up", and an alarm before it sets the next. */
const FEED_BACKFILL_STEPS = 1;
const ALARM_BACKFILL_STEPS = 10;

interface Opened {
  plan: ProcessorPlan;
  instance: number;
  state: EngineState;
  /** The internal topic's sequence applied through. */
  applied: number;
  /** False until the instance took its start: the heads it backfills through (ADR 0058). */
  started: boolean;
  /** The backfill under way (the internal topic waits for it), or null. */
  backfill: Backfill | null;
  /** Counts starts: a step prepared under an earlier start (a reset came in between) is not applied. */
  epoch: number;
}

/**
 * One instance of a stream processor (ADR 0053): partition `instance` of the processor's internal
 * re-partition topic, fed by that partition's log like a subscription (runs, in order, ack on
 * return). Each step applies inputs to the engine (shared/processing) and commits the state, its
 * checkpoints and the step's outputs in one SQLite transaction before the call returns; outputs
 * are then appended to the output topic by id. Timers (idle partitions, absence deadlines) run
 * from the alarm. A gap in the internal topic's sequences (a reset, a lost call) is read back
 * from the log and the archive, so an instance always sees its partition whole and in order.
 */
export class Processor extends DurableObject<Env> {
  readonly testing: ProcessorSeams = {
    now: () => Date.now(),
    beforeCommit: () => {},
    beforeFlush: async () => {},
    forget: () => {
      this.opened = undefined;
      this.traces.clear();
      this.catchingUp = false;
      this.merge = undefined;
    },
    catchUpPage: CATCH_UP_PAGE,
    backfillStep: BACKFILL_STEP,
  };
  private readonly store: ProcessorStore;
  private readonly logger = createLogger({ component: "processor" });
  private opened: Opened | undefined;
  private readonly traces = new Map<string, TriggerTrace>();
  private flushing: Promise<void> | undefined;
  private flushFailures = 0;
  private lastFlushError: string | null = null;
  private readonly appendedAt: { at: number; n: number }[] = [];
  private resultsAppended = 0;
  private catchingUp = false;
  /** The backfill's read-ahead (memory only; its committed position is the backfill's `next`). */
  private merge: HistoryMerge | undefined;
  private starting: Promise<unknown> | undefined;
  private backfilling: Promise<void> | undefined;
  private epochs = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.store = new ProcessorStore(ctx.storage);
  }

  /** Loads (once) the instance's plan and state; a state made for another spec is dropped and rebuilt. */
  private open(processor: string, instance: number): Opened {
    if (this.opened !== undefined) return this.opened;
    const plan = processorPlans(config).get(processor);
    if (plan === undefined) throw new Error(`processor ${processor} is not configured`);
    if (instance >= plan.instances) throw new Error(`processor ${processor} has ${plan.instances} instances, not ${instance + 1}`);
    this.store.setMeta("identity", JSON.stringify({ processor, instance }));
    const loaded = this.store.load(plan.spec);
    if (loaded.specChanged) this.logger.warn("processor spec changed: rebuilding from its input topic", { processor, instance });
    this.opened = {
      plan,
      instance,
      state: loaded.state,
      applied: loaded.applied,
      started: loaded.started,
      backfill: loaded.backfill,
      epoch: this.epochs,
    };
    this.catchingUp ||= loaded.backfill !== null;
    return this.opened;
  }

  private reopen(): Opened | undefined {
    if (this.opened !== undefined) return this.opened;
    const identity = this.store.meta("identity");
    if (identity === undefined) return undefined;
    const { processor, instance } = instanceArgs.parse(JSON.parse(identity));
    return this.open(processor, instance);
  }

  /** Runs of the internal partition, from its log's relay: applied in order, committed before the call returns. */
  async feed(input: { processor: string; instance: number; runs: FeedRun[] }): Promise<{ applied: number; duplicates: number }> {
    const args = parseFeedArgs(input);
    const o = await this.ready(this.open(args.processor, args.instance), FEED_BACKFILL_STEPS);
    if (o.backfill !== null) {
      await this.schedule(o);
      throw new CatchingUp(
        `processor ${o.plan.config.name}/${o.instance} is backfilling from its input topic (${o.backfill.read} of ${backfillTotal(o.backfill)} events read)`,
      );
    }
    const items: Item[] = [];
    let duplicates = 0;
    for (const run of args.runs) {
      for (const e of run.events) {
        const last = items.at(-1)?.sequence ?? o.applied;
        if (e.sequence <= last) {
          duplicates++;
          continue;
        }
        if (e.sequence !== last + 1 || (e.event === undefined && e.stored === undefined)) {
          // A gap (a reset, a call lost before this one) or an event sent by reference: read the partition back through it.
          if (items.length > 0) this.step(o, items.splice(0));
          await this.catchUp(o, e.sequence);
          if (o.applied < e.sequence)
            throw new CatchingUp(`processor ${o.plan.config.name}/${o.instance} is catching up at ${o.applied + 1}`);
          continue;
        }
        items.push({ sequence: e.sequence, inputs: parseInternalData(e.stored !== undefined ? storedData(e.stored) : e.event?.data) });
      }
    }
    const applied = items.reduce((n, item) => n + item.inputs.length, 0);
    if (items.length > 0) this.step(o, items);
    await this.afterStep(o);
    return { applied, duplicates };
  }

  /**
   * Applies inputs (of internal-topic events, or of a backfill step) and commits state,
   * checkpoints and outputs together; on failure the state is reloaded from storage.
   */
  private step(o: Opened, items: Item[], now?: number, history?: HistoryStep): void {
    // The internal partition and processing time wait for the backfill: applied before the history,
    // they would move checkpoints and clock past it (a reset can land while a feed awaits a page).
    if (o.backfill !== null && history === undefined && (items.length > 0 || now !== undefined))
      throw new CatchingUp(`processor ${o.plan.config.name}/${o.instance} is backfilling from its input topic`);
    const outputs: { kind: OutputKind; body: unknown }[] = [];
    let applied = o.applied;
    try {
      const applyInputs = (inputs: readonly Repartitioned[]) => {
        for (const input of inputs) {
          if (input.trace !== undefined) this.remember(input.id, input.trace);
          const out = apply(o.state, engineInput(input));
          for (const r of out.results) outputs.push({ kind: "result", body: resultBody(o.plan, r, this.traces.get(r.causationId)) });
          for (const l of out.late) outputs.push({ kind: "late", body: { input: l } satisfies LateBody });
        }
      };
      if (history !== undefined) {
        applyInputs(history.inputs);
        for (const body of history.skipped) outputs.push({ kind: "skipped", body });
      }
      for (const { sequence, inputs } of items) {
        if (sequence <= applied) continue;
        applied = sequence;
        applyInputs(inputs);
      }
      if (now !== undefined) {
        for (const r of advance(o.state, now).results)
          outputs.push({ kind: "result", body: resultBody(o.plan, r, this.traces.get(r.causationId)) });
      }
      this.testing.beforeCommit();
      const backfill = history === undefined ? o.backfill : history.backfill;
      this.store.commit(o.state, applied, backfill, outputs, Date.now());
      o.applied = applied;
      o.backfill = backfill;
    } catch (err) {
      // The engine changed the state in place: what was committed is the truth.
      this.opened = undefined;
      this.merge = undefined;
      this.open(o.plan.config.name, o.instance);
      throw err;
    }
  }

  /**
   * The instance as it may take its internal partition: started (its first call takes the start)
   * and with at most `steps` backfill steps applied; the answer's `backfill` is null once the
   * history is read. Races between calls share the start and the backfill's steps.
   */
  private async ready(o: Opened, steps: number): Promise<Opened> {
    const current = await this.started(o);
    if (current.backfill === null) return current;
    if (this.backfilling === undefined) {
      this.backfilling = this.backfill(current, steps).finally(() => {
        this.backfilling = undefined;
      });
    }
    await this.backfilling;
    return this.opened ?? current;
  }

  /** The instance, started: its first call takes the start (calls that race share it). */
  private async started(o: Opened): Promise<Opened> {
    if (!o.started) {
      this.starting ??= this.begin(o).finally(() => {
        this.starting = undefined;
      });
      await this.starting;
    }
    return this.opened ?? o;
  }

  /**
   * Starts over from now (ADR 0058): reads the internal partition's head, then every input
   * partition's head — in that order, so every input the internal topic holds up to its head is
   * at or below the input heads — and commits a fresh state that backfills the input topic
   * through those heads and then takes the internal partition after its head.
   */
  private async begin(o: Opened): Promise<{ rebuildThrough: number; inputThrough: number[] }> {
    const internal = await this.env.PARTITION_LOG.getByName(partitionName(o.plan.repartitionTopic, o.instance)).stats();
    const heads = await Promise.all(
      Array.from({ length: o.plan.spec.partitions }, (_, p) =>
        this.env.PARTITION_LOG.getByName(partitionName(o.plan.config.input.topic, p)).stats(),
      ),
    );
    if (this.flushing !== undefined) await this.flushing;
    const inputThrough = heads.map((h) => h.head);
    const backfill = newBackfill(inputThrough, Date.now());
    o.state = this.store.start(o.plan.spec, internal.head, backfill, Date.now());
    o.applied = internal.head;
    o.backfill = backfill;
    o.started = true;
    o.epoch = ++this.epochs;
    // What storage now holds is this start: it is the instance in memory too (a failed step may have reloaded another meanwhile).
    this.opened = o;
    this.merge = undefined;
    // Internal events after its head wait for the backfill; the relay sends them (or a gap reads them) after it.
    this.catchingUp = backfill !== null;
    if (backfill !== null)
      this.logger.info("processor backfilling from its input topic", {
        processor: o.plan.config.name,
        instance: o.instance,
        events: backfillTotal(backfill),
        internalFrom: internal.head + 1,
      });
    return { rebuildThrough: internal.head, inputThrough };
  }

  /** Up to `steps` backfill steps: input history in commit order, this instance's inputs applied and committed with the position. */
  private async backfill(o: Opened, steps: number): Promise<void> {
    const input = o.plan.config.input.topic;
    const read = (p: number, from: number, limit: number) => this.env.PARTITION_LOG.getByName(partitionName(input, p)).read(from, limit);
    for (let i = 0; i < steps; i++) {
      const bf = o.backfill;
      if (bf === null || this.opened !== o) return;
      const epoch = o.epoch;
      if (this.merge?.of !== bf) {
        // Read-ahead is a page per input partition: bounded in all, however many partitions there are.
        const page = Math.max(16, Math.min(BACKFILL_PAGE, this.testing.backfillStep, Math.floor(BACKFILL_BUFFER / bf.through.length)));
        this.merge = new HistoryMerge(bf, read, page);
      }
      const merge = this.merge;
      let taken: Awaited<ReturnType<HistoryMerge["take"]>>;
      try {
        taken = await merge.take(this.testing.backfillStep);
      } catch (err) {
        this.merge = undefined;
        throw err;
      }
      // A reset started over while the pages were read: this step belongs to the old start.
      if (this.opened !== o || o.epoch !== epoch || o.backfill !== bf) return;
      const { inputs, skipped } = historyInputs(o.plan, o.instance, taken.events);
      const position: Backfill = { ...bf, next: taken.next, read: bf.read + taken.events.length };
      const done = taken.events.length === 0 || backfillDone(position);
      this.step(o, [], undefined, { inputs, skipped, backfill: done ? null : position });
      // The merge continues from the committed position: it is the backfill now.
      if (!done && o.backfill !== null) this.merge = merge.continuing(o.backfill);
      if (done) {
        this.merge = undefined;
        this.logger.info("processor backfill done", { processor: o.plan.config.name, instance: o.instance, events: position.read });
        return;
      }
    }
  }

  private remember(id: string, trace: TriggerTrace): void {
    this.traces.delete(id);
    this.traces.set(id, trace);
    if (this.traces.size > TRACE_MEMORY) {
      const oldest = this.traces.keys().next().value;
      if (oldest !== undefined) this.traces.delete(oldest);
    }
  }

  /** Reads the internal partition from the checkpoint (log, then archive) and applies it, through `through` or a bounded number of pages. */
  private async catchUp(o: Opened, through: number): Promise<void> {
    const stub = this.env.PARTITION_LOG.getByName(partitionName(o.plan.repartitionTopic, o.instance));
    // The internal topic waits for the backfill: it continues from the head the backfill was taken with.
    if (o.backfill !== null || !o.started) return;
    const epoch = o.epoch;
    for (let step = 0; step < CATCH_UP_STEPS && o.applied < through; step++) {
      const from = o.applied + 1;
      const page = await stub.read(from, this.testing.catchUpPage);
      // A reset (or another catch-up) moved the checkpoint while the page was read: this page no
      // longer follows what is applied, so read again from where it stands now.
      if (this.opened !== o || o.epoch !== epoch) return;
      if (o.applied !== from - 1) continue;
      const items = page.events.map(storedItem);
      if (items.length > 0) this.step(o, items);
      if (items.length === 0 || o.applied >= page.head) {
        // Read through the partition's head: nothing is missing any more.
        this.catchingUp = false;
        return;
      }
    }
    this.catchingUp = o.applied < through;
  }

  /** After a step: hand outputs on (not awaited by the feeder) and set the alarm for timers, retries and catch-up. */
  private async afterStep(o: Opened): Promise<void> {
    const pending = this.store.pendingCount();
    await this.schedule(o, pending);
    if (pending > 0) void this.flush(o);
  }

  private flush(o: Opened): Promise<void> {
    if (this.flushing !== undefined) return this.flushing;
    this.flushing = (async () => {
      try {
        await this.testing.beforeFlush();
        const n = await flushOutputs({ env: this.env, config, plan: o.plan, store: this.store, log: this.logger, now: () => Date.now() });
        if (n > 0) this.counted(n);
        this.flushFailures = 0;
        this.lastFlushError = null;
      } catch (err) {
        this.flushFailures++;
        this.lastFlushError = err instanceof Error ? err.message : String(err);
        this.logger.warn("processor outputs not handed on; the alarm retries", {
          processor: o.plan.config.name,
          instance: o.instance,
          error: err,
        });
        await this.schedule(o);
      } finally {
        this.flushing = undefined;
      }
    })();
    return this.flushing;
  }

  private counted(n: number): void {
    const now = Date.now();
    this.resultsAppended += n;
    this.appendedAt.push({ at: now, n });
    while ((this.appendedAt[0]?.at ?? now) < now - RATE_WINDOW_MS) this.appendedAt.shift();
  }

  private async schedule(o: Opened, pending = this.store.pendingCount()): Promise<void> {
    const now = Date.now();
    const wants: number[] = [];
    const wake = nextWakeup(o.state);
    if (wake !== null) wants.push(Math.max(wake, now));
    if (pending > 0) wants.push(now + Math.min(FLUSH_RETRY_MAX_MS, FLUSH_RETRY_MS * 2 ** this.flushFailures));
    if (this.catchingUp) wants.push(now);
    if (wants.length === 0) return;
    const at = Math.min(...wants);
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }

  /** Timers (processing time moves; idle partitions stop holding the watermark), catch-up, and output retries. */
  override async alarm(): Promise<void> {
    const opened = this.reopen();
    if (opened === undefined) return;
    // A fresh instance starts, and the history is read, before anything else (ADR 0058).
    const o = await this.ready(opened, ALARM_BACKFILL_STEPS);
    if (o.backfill !== null) {
      await this.flush(o);
      await this.ctx.storage.setAlarm(Date.now());
      return;
    }
    // Whatever the internal partition holds beyond the checkpoint is applied first: processing time
    // may only move on once the instance has read what was committed before it, or busy inputs
    // with a backlog would look idle and their events late.
    await this.catchUp(o, Number.MAX_SAFE_INTEGER);
    // Processing time moves on: idle inputs stop holding the watermark, and what that closes fires.
    // Its clock starts with the first input: before that, nothing is waiting on it.
    if (!this.catchingUp && o.state.time.clock !== null) this.step(o, [], this.testing.now());
    await this.flush(o);
    await this.schedule(o);
  }

  /**
   * Drops the state and rebuilds it from the input topic's history (log and archive, ADR 0058),
   * then takes the internal partition after its head now; results are re-appended by id
   * (duplicates). Answers the heads the rebuild reads through.
   */
  async reset(input: { processor: string; instance: number }): Promise<{ ok: true; rebuildThrough: number; inputThrough: number[] }> {
    const args = instanceArgs.parse(input);
    const o = this.open(args.processor, args.instance);
    const taken = await this.begin(o);
    await this.ctx.storage.setAlarm(Date.now());
    return { ok: true, ...taken };
  }

  /** What GET /v1/processors/{name} shows of this instance; an instance not started yet starts (by its alarm). */
  async status(input: { processor: string; instance: number }): Promise<InstanceStatus> {
    const args = instanceArgs.parse(input);
    let o = this.open(args.processor, args.instance);
    if (!o.started) {
      // A view is often the first call a new processor's instance gets: it starts, and its alarm reads the history.
      o = await this.started(o);
      await this.schedule(o);
    }
    const s = status(o.state);
    const now = Date.now();
    const recent = this.appendedAt.filter((a) => a.at >= now - RATE_WINDOW_MS).reduce((n, a) => n + a.n, 0);
    return {
      instance: o.instance,
      applied: o.applied,
      watermark: s.watermark,
      inputs: s.partitions,
      openWindows: s.open,
      keys: s.keys,
      counters: s.counters,
      pendingOutputs: this.store.pendingCount(),
      resultsAppended: this.resultsAppended,
      outputPerSecond: recent / (RATE_WINDOW_MS / 1000),
      lastOutputError: this.lastFlushError,
      catchingUp: this.catchingUp,
      backfill: o.backfill === null ? null : { read: o.backfill.read, total: backfillTotal(o.backfill) },
    };
  }
}
