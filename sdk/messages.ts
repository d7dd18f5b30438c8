import { z } from "zod";

/**
 * The bodies of delivery messages (outbox relay → subscription queue → consumer SDK). Version 1
 * carries one event (still what redrives send, and what may sit in a queue from before an
 * upgrade); version 2 carries a run of events (below): what the relay and replay jobs send. Consumers parse either with
 * `deliveriesOf`; never cast them.
 */

/** Queues allows 128 KB per message; above this the event travels as a reference to the log. */
export const MAX_INLINE_EVENT_BYTES = 96 * 1024;
/** sendBatch limits: at most 100 messages and 256 KB per call. */
export const MAX_BATCH_MESSAGES = 100;
export const MAX_BATCH_BYTES = 240 * 1024;

/**
 * What a replay job puts on the messages it sends. `chain`: the message carries the live `prev`
 * chain (a rebuild from the start) and is ordered and checkpointed like a live one; otherwise it
 * is applied as it comes (the job sends in partition order) outside the order chain, and never
 * moves the checkpoint. `history` (unchained replays since ADR 0035): the partition log holds no
 * delivery of this event for the subscription — it was never routed to it (committed before the
 * subscription existed, or outside its filter then) or the subscription acknowledged it — so no
 * live delivery will bring it: the consumer applies it unless it has settled it already. Without
 * `history` (messages of older jobs) an unchained replay fills in only what the subscription has
 * passed without settling (at or below its checkpoint).
 */
export const replayMarkSchema = z.object({ jobId: z.string(), chain: z.boolean(), history: z.boolean().optional() });
export type ReplayMark = z.output<typeof replayMarkSchema>;

export const deliverySchema = z
  .object({
    v: z.literal(1),
    subscription: z.string().min(1),
    topic: z.string().min(1),
    partition: z.number().int().nonnegative(),
    sequence: z.number().int().positive(),
    /** The previous event of this partition routed to this subscription (0: none): the order chain. */
    prev: z.number().int().nonnegative(),
    /** The stored CloudEvent, unless it was too large to inline (then `ref` is true). */
    event: z.record(z.string(), z.unknown()).optional(),
    ref: z.literal(true).optional(),
    /** Commit time (ms since epoch), for end-to-end latency. */
    committedAt: z.number().int().nonnegative(),
    /** Set when the message is a redriven dead letter. */
    redrive: z.object({ deadLetterId: z.string() }).optional(),
    /** Set when a replay job sent the message (see `replayMarkSchema`). */
    replay: replayMarkSchema.optional(),
  })
  .refine((m) => (m.event === undefined) === (m.ref === true), { message: "exactly one of event and ref" });

export type Delivery = z.output<typeof deliverySchema>;

/**
 * Message v2: a run — consecutive events of one partition routed to one subscription, in chain
 * order: `prev` is the predecessor of the first event, and each event's predecessor is the one
 * before it in the run. The relay sends what the outbox holds as runs of up to RUN_MAX_EVENTS
 * events and MAX_INLINE_EVENT_BYTES of inline event text (an event above that travels by
 * reference, in a run of its own if need be), so a busy partition pays one queue message per run,
 * not per event. Consumers read v1 and v2 alike through `deliveriesOf`.
 */
export const RUN_MAX_EVENTS = 100;

const runEventSchema = z
  .object({
    sequence: z.number().int().positive(),
    committedAt: z.number().int().nonnegative(),
    event: z.record(z.string(), z.unknown()).optional(),
    ref: z.literal(true).optional(),
  })
  .refine((e) => (e.event === undefined) === (e.ref === true), { message: "exactly one of event and ref" });

/** A run's fields other than its events (the platform's processor feeds take runs whose events come in other forms too). */
export const runHeadShape = {
  v: z.literal(2),
  subscription: z.string().min(1),
  topic: z.string().min(1),
  partition: z.number().int().nonnegative(),
  /** The previous event of this partition routed to this subscription before the run's first (0: none). */
  prev: z.number().int().nonnegative(),
};

/** A run's events follow `prev` in increasing sequence order: the check of every run schema. */
export const runInOrder = [
  (r: { prev: number; events: { sequence: number }[] }) =>
    r.events.every((e, i) => e.sequence > (i === 0 ? r.prev : (r.events[i - 1]?.sequence ?? 0))),
  { message: "events must follow prev in increasing sequence order" },
] as const;

export const runSchema = z
  .object({
    ...runHeadShape,
    events: z.array(runEventSchema).min(1).max(1000),
    /** Set when a replay job sent the run; every event of it carries the mark (unchained: `prev` 0, ignored). */
    replay: replayMarkSchema.optional(),
  })
  .refine(...runInOrder);

export type Run = z.output<typeof runSchema>;
/** The body of any delivery message, either version. */
export type DeliveryMessage = Delivery | Run;

/** The per-event deliveries a run carries, each with its place in the chain. */
export function runDeliveries(run: Run): Delivery[] {
  return run.events.map((e, i) => ({
    v: 1 as const,
    subscription: run.subscription,
    topic: run.topic,
    partition: run.partition,
    sequence: e.sequence,
    prev: i === 0 ? run.prev : (run.events[i - 1]?.sequence ?? run.prev),
    committedAt: e.committedAt,
    ...(e.event === undefined ? { ref: true as const } : { event: e.event }),
    ...(run.replay === undefined ? {} : { replay: run.replay }),
  }));
}

export type ParsedMessage =
  | { success: true; version: 1 | 2; subscription: string; deliveries: Delivery[] }
  | { success: false; error: z.ZodError };

/** Parses a delivery message of either version into the per-event deliveries it carries. */
export function deliveriesOf(body: unknown): ParsedMessage {
  const version = typeof body === "object" && body !== null ? (body as { v?: unknown }).v : undefined;
  if (version === 2) {
    const run = runSchema.safeParse(body);
    if (!run.success) return { success: false, error: run.error };
    return { success: true, version: 2, subscription: run.data.subscription, deliveries: runDeliveries(run.data) };
  }
  const one = deliverySchema.safeParse(body);
  if (!one.success) return { success: false, error: one.error };
  return { success: true, version: 1, subscription: one.data.subscription, deliveries: [one.data] };
}

/** The sequences a delivery message carries (logs, tests). */
export function sequencesOf(body: DeliveryMessage): number[] {
  return body.v === 2 ? body.events.map((e) => e.sequence) : [body.sequence];
}
