import { z } from "zod";

/**
 * The body of every delivery message (outbox relay → subscription queue → consumer SDK), and of
 * redriven and replayed ones. Consumers parse it with `deliverySchema`; never cast it.
 */

/** Queues allows 128 KB per message; above this the event travels as a reference to the log. */
export const MAX_INLINE_EVENT_BYTES = 96 * 1024;
/** sendBatch limits: at most 100 messages and 256 KB per call. */
export const MAX_BATCH_MESSAGES = 100;
export const MAX_BATCH_BYTES = 240 * 1024;

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
    /**
     * Set when a replay job sent the message. `chain`: the message carries the live `prev` chain
     * (a rebuild from the start) and is ordered and checkpointed like a live one; otherwise it is
     * applied as it comes (the job sends in order) and does not move the checkpoint.
     */
    replay: z.object({ jobId: z.string(), chain: z.boolean() }).optional(),
  })
  .refine((m) => (m.event === undefined) === (m.ref === true), { message: "exactly one of event and ref" });

export type Delivery = z.output<typeof deliverySchema>;
