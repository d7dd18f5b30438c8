/**
 * A replay job's pacing: events are released on a schedule of `rate` per second from the moment
 * sending starts, not in one burst of `rate` events per second. A burst per second made a job of N
 * events take (N / rate − 1) seconds — 400 events at 200/s in about a second, "300 events/s" —
 * while this schedule holds the rate within a tick: event k is due `k / rate` seconds after the
 * start, a tick sends what falls due before the next tick, and the job finishes no earlier than its
 * last event's share of time is over.
 */

/** How often a paced job ticks, and how far ahead of its due time one tick sends an event. */
export const TICK_MS = 100;

/**
 * Behind schedule by more than this (a pause: waiting for the target's settlement, a failed tick's
 * back-off, a restart), the schedule starts again from now instead of catching up in a burst.
 */
export const RESYNC_MS = 250;

export class Pacer {
  private start: number | undefined;
  private sent = 0;

  constructor(private readonly rate: number) {}

  /** How many events this tick may send: those due by `now + TICK_MS`, less those already sent. */
  budget(now: number): number {
    if (this.start === undefined || now - this.due() > RESYNC_MS) {
      this.start = now;
      this.sent = 0;
    }
    return Math.max(0, Math.floor(((now + TICK_MS - this.start) * this.rate) / 1000) + 1 - this.sent);
  }

  /** Counts `n` events sent. */
  record(n: number): void {
    this.sent += n;
  }

  /** When the events sent so far have had their share of time at `rate`: the earliest the job may finish. */
  due(): number {
    return (this.start ?? 0) + (this.sent * 1000) / this.rate;
  }

  /** The next tick after one that began at `tickStart`: a tick later, or when the next event is nearly due. */
  next(tickStart: number): number {
    return Math.max(tickStart + TICK_MS, this.due() - TICK_MS);
  }
}
