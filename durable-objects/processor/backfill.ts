import { z } from "zod";
import { compileFilter, type Filter } from "../../shared/filter";
import { partitionFor } from "../../shared/partitioner";
import type { ProcessorPlan, Repartitioned } from "../../shared/processors";
import { inputOrLetter, type ProcessorDeadLetter } from "./dead-letters";

/**
 * An instance's backfill (ADR 0058): before it takes its internal partition, a fresh instance (a
 * new processor, a reset, a changed spec) reads the input topic's history — every partition from
 * sequence 1 through its head when the backfill was taken, archive then log — merged across
 * partitions in commit order, and applies the inputs whose key is its own. What it read is
 * checkpointed with its state, in the same transaction, so a crash resumes where the last step
 * committed. The internal partition then continues from its head when the backfill was taken
 * (read before the input heads), so every input is applied once: what came through the internal
 * topic before then is in the history read, and an input in both is a duplicate by the engine's
 * per-input-partition checkpoints.
 */

export const backfillSchema = z.object({
  /** Per input partition: its head when the backfill was taken; the backfill reads 1 … through. */
  through: z.array(z.number().int().min(0)),
  /** Per input partition: the next sequence to read (through + 1: that partition is done). */
  next: z.array(z.number().int().min(1)),
  /** Input events read so far, over every partition (all of them, whoever's key). */
  read: z.number().int().min(0),
  /** When it was taken (ms since the epoch). */
  startedAt: z.number().int(),
});
export type Backfill = z.infer<typeof backfillSchema>;

/** A backfill of input heads `through`; null when there is nothing to read. */
export function newBackfill(through: number[], now: number): Backfill | null {
  if (through.every((h) => h === 0)) return null;
  return { through, next: through.map(() => 1), read: 0, startedAt: now };
}

export const backfillTotal = (b: Backfill) => b.through.reduce((n, h) => n + h, 0);
export const backfillDone = (b: Backfill) => b.next.every((n, p) => n > (b.through[p] ?? 0));

/** One input event of the history, parsed. */
export interface HistoryEvent {
  partition: number;
  sequence: number;
  /** Its commit time in the input topic (`receivedtime`), the order of the merge. */
  committedAt: number;
  event: Record<string, unknown>;
}

/** Reads stored events of one input partition from `from` (archive, then log), as PartitionLog.read does. */
export type ReadPage = (partition: number, from: number, limit: number) => Promise<{ events: string[]; last: number | null }>;

function parseStored(partition: number, text: string): HistoryEvent {
  const event = JSON.parse(text) as Record<string, unknown>;
  const sequence = Number(event.sequence);
  const committedAt = typeof event.receivedtime === "string" ? Date.parse(event.receivedtime) : Number.NaN;
  if (!Number.isSafeInteger(sequence) || !Number.isFinite(committedAt))
    throw new Error(`input partition ${partition}: a stored event without sequence or receivedtime`);
  return { partition, sequence, committedAt, event };
}

/**
 * The history of every input partition, merged in commit order (ties: lower partition first),
 * read page by page. It holds read-ahead in memory only: the position that counts is `next`,
 * which the caller commits with the state; after a failure the caller drops the merge and opens
 * a new one from what was committed, which yields the same order.
 */
export class HistoryMerge {
  private readonly buffers: HistoryEvent[][];
  private readonly next: number[];

  constructor(
    private backfill: Backfill,
    private readonly readPage: ReadPage,
    private readonly pageSize: number,
  ) {
    this.buffers = backfill.through.map(() => []);
    this.next = [...backfill.next];
  }

  /** The backfill it continues (a reset starts another: the caller compares). */
  get of(): Backfill {
    return this.backfill;
  }

  /** The same merge, its position committed as `backfill` (the next step continues from its read-ahead). */
  continuing(backfill: Backfill): this {
    this.backfill = backfill;
    return this;
  }

  /** Up to `max` events in commit order, and the position after them. An empty answer: the history is read. */
  async take(max: number): Promise<{ events: HistoryEvent[]; next: number[] }> {
    const events: HistoryEvent[] = [];
    while (events.length < max) {
      await this.fill();
      let best = -1;
      for (let p = 0; p < this.buffers.length; p++) {
        const head = this.buffers[p]?.[0];
        if (head === undefined) continue;
        const current = this.buffers[best]?.[0];
        if (current === undefined || head.committedAt < current.committedAt) best = p;
      }
      const picked = this.buffers[best]?.shift();
      if (picked === undefined) break;
      events.push(picked);
      this.next[best] = picked.sequence + 1;
    }
    return { events, next: [...this.next] };
  }

  /** Reads a page into every empty buffer whose partition has more to read: the merge must see each partition's next event. */
  private async fill(): Promise<void> {
    const reads: Promise<void>[] = [];
    for (let p = 0; p < this.buffers.length; p++) {
      const through = this.backfill.through[p] ?? 0;
      const from = this.next[p] ?? 1;
      if ((this.buffers[p]?.length ?? 0) > 0 || from > through) continue;
      reads.push(
        this.readPage(p, from, Math.min(this.pageSize, through - from + 1)).then((page) => {
          const parsed = page.events.map((text) => parseStored(p, text)).filter((e) => e.sequence >= from && e.sequence <= through);
          // Nothing readable from here on (trimmed without an archive): the partition's history ends here.
          if (parsed.length === 0) this.next[p] = through + 1;
          else this.buffers[p] = parsed;
        }),
      );
    }
    await Promise.all(reads);
  }
}

const inputFilters = new WeakMap<ProcessorPlan, Filter>();

/**
 * Of history events, what instance `instance` applies — the inputs whose key is its own, exactly
 * as the re-partition step would have sent them (the input filter, then key, event time, values,
 * role) — and, on instance 0 only, the events that are dead letters (no key, timed too far
 * ahead), so each is recorded once.
 */
export function historyInputs(
  plan: ProcessorPlan,
  instance: number,
  events: readonly HistoryEvent[],
): { inputs: Repartitioned[]; skipped: ProcessorDeadLetter[] } {
  let matches = inputFilters.get(plan);
  if (matches === undefined) {
    matches = compileFilter(plan.config.input.filter);
    inputFilters.set(plan, matches);
  }
  const inputs: Repartitioned[] = [];
  const skipped: ProcessorDeadLetter[] = [];
  for (const e of events) {
    if (!matches(e.event)) continue;
    const taken = inputOrLetter(plan, e.event, { partition: e.partition, sequence: e.sequence, committedAt: e.committedAt });
    if (taken === null) continue;
    if ("letter" in taken) {
      if (instance === 0) skipped.push(taken.letter);
    } else if (partitionFor({ id: taken.input.id, partitionkey: taken.input.key }, plan.instances) === instance) inputs.push(taken.input);
  }
  return { inputs, skipped };
}
