import { type Delivery, deliveriesOf } from "./messages";

/**
 * A queue message carrying a run (message v2) is settled event by event: each event goes through
 * the SDK's per-event path as a `RunPart` — a message of its own that records whether it was acked
 * or retried — and the queue message is settled from its parts once all of them are:
 *
 * - every part acked (handled, duplicate, dead-lettered, parked, skipped) → the message is acked;
 * - some part retried (a handler failure, a wait for a predecessor, the circuit breaker) → the
 *   whole message is retried after the longest delay a part asked for. Its settled parts come back
 *   as duplicates (absorbed by the idempotency records, read in the batch prefetch), so a poisoned
 *   event is retried and dead-lettered alone — its failures are counted per event in D1 — and the
 *   rest of the run is handled once;
 * - a part that threw (D1 unavailable) leaves the message unsettled: `queue()` rethrows and Queues
 *   delivers it again.
 */

export class RunPart implements Message<unknown> {
  readonly id: string;
  readonly timestamp: Date;
  readonly attempts: number;
  acked = false;
  /** The delay the part asked for when it was retried (undefined: not retried). */
  retryDelay: number | undefined;

  constructor(
    readonly message: Message<unknown>,
    readonly body: Delivery,
  ) {
    this.id = `${message.id}/${body.sequence}`;
    this.timestamp = message.timestamp;
    this.attempts = message.attempts;
  }

  ack(): void {
    this.acked = true;
  }

  retry(options?: QueueRetryOptions): void {
    this.retryDelay = Math.max(this.retryDelay ?? 0, options?.delaySeconds ?? 0);
  }
}

export interface Unpacked {
  /** What the per-event path processes: the parts of a run, or the message itself (v1, or not a delivery). */
  parts: Message<unknown>[];
  /** Acks or retries a run's message from its parts (no-op for a v1 message, which settles itself). */
  finish(): void;
}

export function unpack(message: Message<unknown>): Unpacked {
  const parsed = deliveriesOf(message.body);
  if (!parsed.success || parsed.version === 1) return { parts: [message], finish: () => {} };
  const parts = parsed.deliveries.map((d) => new RunPart(message, d));
  return {
    parts,
    finish() {
      if (parts.some((p) => !p.acked && p.retryDelay === undefined)) return; // a part threw
      const retried = parts.filter((p) => !p.acked);
      if (retried.length === 0) message.ack();
      else message.retry({ delaySeconds: Math.max(...retried.map((p) => p.retryDelay ?? 0)) });
    },
  };
}
