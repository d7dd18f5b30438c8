import type { Route } from "../../../shared/subscriptions";
import type { AlarmClient, LogHost, PartitionLogSeams } from "../host";
import { isUnfiltered, type Routes } from "../routes";
import { d1Acks } from "./acks";
import type { DirectFilter } from "./direct";
import { isEnvelopeOnly } from "./envelope";
import { drainOutbox, OutboxWrites } from "./outbox";
import { acknowledgeCheckpoints, type RedeliveryHost, runRedelivery } from "./redelivery";
import { nextCheck } from "./state";

/** A direct route's filter for its range rows (delivery/direct.ts): none when every event matches it. */
function directFilter(route: Route): { filter?: DirectFilter } {
  if (isUnfiltered(route)) return {};
  return {
    filter: { matches: route.matches, envelopeOnly: route.keys !== undefined && isEnvelopeOnly(route.keys) },
  };
}

/** When a relay attempt fails (or was never finished), the alarm tries again after this. */
const RELAY_RETRY_MS = 2_000;
const RELAY_RETRY_MAX_MS = 60_000;

export interface DeliveryDeps {
  routes: Pick<Routes, "find">;
  /** The platform's D1 database, where subscriptions settle (delivery/acks.ts). */
  db: D1Database;
  seams: Pick<PartitionLogSeams, "send" | "redeliveryMs" | "feed" | "processLingerMs">;
  /** Asks the object to set its alarm again: a run time of this capability moved earlier. */
  reschedule(): Promise<void>;
}

/**
 * The delivery capability (ADR 0030): the relay hands committed outbox rows to the
 * subscriptions' queues, right after a commit and again from the alarm; the redelivery pass sends
 * again what a subscription has not acknowledged within its timeout. Its run times (the relay's
 * retry with backoff, the next redelivery check) are kept here and given to the object's alarm.
 */
export class Delivery implements AlarmClient {
  /** The running relay, if any; a second request while it runs makes it loop once more. */
  private relaying: Promise<void> | undefined;
  private relayAgain = false;
  /** A relay waiting out its linger (relayAfterCommit), if any. */
  private lingering: ReturnType<typeof setTimeout> | undefined;
  private relayFailures = 0;
  /** The running redelivery pass, if any (one at a time). */
  private redelivering: Promise<void> | undefined;
  /** The earliest time a run was asked for since the last run (null: none). */
  private wantedAt: number | null = null;
  /** Last sequence routed to each subscription, as committed (see OutboxWrites); filled lazily. */
  private routed = new Map<string, number>();

  constructor(
    private readonly host: LogHost,
    private readonly deps: DeliveryDeps,
  ) {}

  nextRunAt(): number | null {
    return this.wantedAt;
  }

  /** From the alarm: the relay's retry (sends whatever the outbox has not sent), then redelivery. */
  async run(): Promise<void> {
    this.wantedAt = null;
    await this.relay();
    await this.redeliver();
  }

  /** The outbox writes of one append transaction, for the routes the event may take. */
  outboxWrites(routes: Route[]): OutboxWrites {
    return new OutboxWrites(this.host.sql, routes, this.routed, isUnfiltered);
  }

  /** After that transaction committed: its chain ends are the committed ones (a rollback keeps the old). */
  committed(outbox: OutboxWrites): void {
    this.routed = outbox.routed;
  }

  /** True while the relay is failing: appends leave retries to the alarm's backoff. */
  get failing(): boolean {
    return this.relayFailures > 0;
  }

  /**
   * An append queued outbox rows: the alarm is the relay's safety net, so the caller sets it
   * (reschedule) before the commit is acknowledged and an eviction right after the 202 still delivers.
   */
  queued(): void {
    this.want(this.host.now() + RELAY_RETRY_MS);
  }

  /**
   * After a commit that queued rows for `routes`: relays now, except into a processor's instances
   * (ADR 0056), where the relay lingers (host.ts PROCESS_LINGER_MS) so that the commits of that time reach
   * the instance in one call — each call commits the instance's state once, so fewer, larger calls
   * cost less per event. The rows are committed either way; the alarm stays the safety net.
   */
  relayAfterCommit(routes: readonly Route[]): void {
    if (!routes.every((r) => r.direct?.stage === "process")) {
      void this.relay();
      return;
    }
    if (this.lingering !== undefined) return;
    this.lingering = setTimeout(() => {
      this.lingering = undefined;
      void this.relay();
    }, this.deps.seams.processLingerMs);
  }

  /** Drains the outbox; at most one drain runs at a time, and a failure asks for the alarm with backoff. */
  relay(): Promise<void> {
    if (this.relaying !== undefined) {
      this.relayAgain = true;
      return this.relaying;
    }
    const id = this.host.identity();
    if (id === undefined) return Promise.resolve();
    const { topic, partition } = id;
    const { log } = this.host;
    const routeOf = (subscription: string) => {
      const route = this.deps.routes.find(topic, subscription);
      if (route === undefined) return undefined;
      if (route.direct === undefined) return { queue: route.queue, timeoutMs: this.timeoutOf(route) };
      return { queue: route.queue, timeoutMs: this.timeoutOf(route), direct: route.direct, ...directFilter(route) };
    };
    this.relaying = (async () => {
      try {
        do {
          this.relayAgain = false;
          const sent = await drainOutbox(
            this.host.sql,
            topic,
            partition,
            routeOf,
            this.deps.seams.send,
            (subscription, rows) =>
              log.warn("outbox rows dropped: subscription no longer configured", { topic, partition, subscription, rows }),
            this.host.now,
            undefined,
            this.deps.seams.feed,
          );
          if (sent > 0) log.debug("relayed", { topic, partition, sent });
          // What was just sent is checked for acknowledgement when its timeout is up.
          const due = nextCheck(this.host.sql, this.host.now());
          if (due !== null) await this.wake(due);
        } while (this.relayAgain);
        this.relayFailures = 0;
      } catch (err) {
        this.relayFailures++;
        const retryMs = Math.min(RELAY_RETRY_MAX_MS, RELAY_RETRY_MS * 2 ** (this.relayFailures - 1));
        log.warn("relay failed; the alarm retries", { topic, partition, failures: this.relayFailures, retryMs, error: err });
        await this.wake(this.host.now() + retryMs);
      } finally {
        this.relaying = undefined;
      }
    })();
    return this.relaying;
  }

  /**
   * Sends again what subscriptions have not acknowledged within their timeout (ADR 0030), one pass
   * at a time, and asks for the alarm at the next check; a failed pass is tried again later.
   */
  private redeliver(): Promise<void> {
    if (this.redelivering !== undefined) return this.redelivering;
    const host = this.redeliveryHost();
    if (host === undefined) return Promise.resolve();
    this.redelivering = (async () => {
      try {
        const next = await runRedelivery(host);
        if (next !== null) await this.wake(next);
      } catch (err) {
        this.host.log.warn("redelivery pass failed; the alarm retries", {
          ...this.host.identity(),
          error: err,
          retryMs: RELAY_RETRY_MAX_MS,
        });
        await this.wake(this.host.now() + RELAY_RETRY_MAX_MS);
      } finally {
        this.redelivering = undefined;
      }
    })();
    return this.redelivering;
  }

  /**
   * Removes the outbox rows every subscription's checkpoint now covers (one D1 read), sending
   * nothing: archiving asks before trimming, since only acknowledged events may leave the log.
   */
  async acknowledgeCheckpoints(): Promise<void> {
    const id = this.host.identity();
    if (id !== undefined) await acknowledgeCheckpoints(this.host.sql, d1Acks(this.deps.db, id.topic, id.partition));
  }

  private timeoutOf(route: Route): number {
    return this.deps.seams.redeliveryMs ?? route.redeliveryMs;
  }

  /** What the redelivery pass works with (undefined before the first append names the partition). */
  private redeliveryHost(): RedeliveryHost | undefined {
    const id = this.host.identity();
    if (id === undefined) return undefined;
    const { topic, partition } = id;
    return {
      sql: this.host.sql,
      topic,
      partition,
      routeOf: (subscription) => this.deps.routes.find(topic, subscription),
      timeoutOf: (route) => this.timeoutOf(route),
      readAcks: d1Acks(this.deps.db, topic, partition),
      send: this.deps.seams.send,
      now: this.host.now,
      log: this.host.log,
    };
  }

  private want(at: number): void {
    this.wantedAt = this.wantedAt === null ? at : Math.min(this.wantedAt, at);
  }

  private async wake(at: number): Promise<void> {
    this.want(at);
    await this.deps.reschedule();
  }
}
