import { z } from "zod";
import { filterSchema } from "../../shared/filter";

/** A replay job's spec, stored in its object, and the view of it the API returns. */

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
  /**
   * `watched`: the job reads the subscription's settlement in the platform's D1 and is done when
   * every event it sent (or left to the log) is settled (ADR 0035). `sent`: the platform cannot see
   * the subscription's state, so the job is done once it has sent the range. Jobs stored before
   * ADR 0035 have neither and keep `sent`.
   */
  settlement: z.enum(["watched", "sent"]).default("sent"),
  /** The subscription's ordering: `partition` → one run per partition in flight at a time (watched only). */
  ordering: z.enum(["none", "partition"]).default("none"),
  /** The subscription's replay semantics: `always` (webhooks) delivers events it had again. */
  replays: z.enum(["once", "always"]).default("once"),
});
export type ReplaySpec = z.output<typeof replaySpecSchema>;
export type ReplaySpecInput = z.input<typeof replaySpecSchema>;

export type ReplayState = "running" | "done" | "cancelled" | "failed";

/** What a job has settled so far, per partition and in total (see replay/settlement.ts). */
export interface ReplayCounters {
  /** Events settled by the target after the job reached them. */
  handled: number;
  /** Events the target had settled before the job reached them (absorbed as duplicates, or re-sent for `replays: "always"`). */
  alreadyHandled: number;
  deadLettered: number;
  /** Events the partition log still held for the target (routed, not yet acknowledged): left to its delivery, not sent. */
  held: number;
  /** Events sent or held whose settlement the job has not seen yet (0 for `settlement: "sent"`). */
  awaiting: number;
}

export interface ReplayPartitionView extends ReplayCounters {
  partition: number;
  from: number;
  to: number;
  /** Last sequence scanned. */
  position: number;
  scanned: number;
  sent: number;
  /** Scanned to `to`, and (watched) every event sent or held settled. */
  done: boolean;
}

export interface ReplayView extends ReplayCounters {
  id: string;
  topic: string;
  subscription: string;
  state: ReplayState;
  rate: number;
  from: ReplaySpec["from"];
  to: z.output<typeof positionSchema> | null;
  filter: NonNullable<ReplaySpec["filter"]> | null;
  chain: boolean;
  settlement: ReplaySpec["settlement"];
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

export type JobRow = {
  id: string;
  spec: string;
  state: ReplayState;
  error: string | null;
  created_at: number;
  updated_at: number;
  started_at: number;
  finished_at: number | null;
  resent: number;
};

export type PartitionRow = {
  partition: number;
  from_seq: number;
  to_seq: number;
  position: number;
  prev: number;
  scanned: number;
  sent: number;
  pending_to: number | null;
  pending_sent: number | null;
  handled: number;
  already_handled: number;
  dead_lettered: number;
  held: number;
};

const sum = (rows: ReplayCounters[], key: keyof ReplayCounters) => rows.reduce((n, r) => n + r[key], 0);

export function viewOf(job: JobRow, rows: PartitionRow[], awaiting: Map<number, number>): ReplayView {
  const spec = replaySpecSchema.parse(JSON.parse(job.spec));
  const partitions: ReplayPartitionView[] = rows.map((p) => ({
    partition: p.partition,
    from: p.from_seq,
    to: p.to_seq,
    position: p.position,
    scanned: p.scanned,
    sent: p.sent,
    handled: p.handled,
    alreadyHandled: p.already_handled,
    deadLettered: p.dead_lettered,
    held: p.held,
    awaiting: awaiting.get(p.partition) ?? 0,
    done: p.position >= p.to_seq && (awaiting.get(p.partition) ?? 0) === 0,
  }));
  const scanned = partitions.reduce((n, p) => n + p.scanned, 0);
  const sent = partitions.reduce((n, p) => n + p.sent, 0);
  const total = partitions.reduce((n, p) => n + Math.max(0, p.to - p.from + 1), 0);
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
    settlement: spec.settlement,
    createdAt: new Date(job.created_at).toISOString(),
    updatedAt: new Date(job.updated_at).toISOString(),
    finishedAt: job.finished_at === null ? null : new Date(job.finished_at).toISOString(),
    error: job.error,
    partitions,
    scanned,
    sent,
    resent: job.resent,
    handled: sum(partitions, "handled"),
    alreadyHandled: sum(partitions, "alreadyHandled"),
    deadLettered: sum(partitions, "deadLettered"),
    held: sum(partitions, "held"),
    awaiting: sum(partitions, "awaiting"),
    total,
    eventsPerSecond: Math.round((sent / elapsed) * 10) / 10,
    // While scanning: at the scan rate. Once scanned, what is left is the target's pace, not the job's.
    etaSeconds: job.state !== "running" || scanned >= total ? null : scanRate > 0 ? Math.ceil((total - scanned) / scanRate) : null,
  };
}
