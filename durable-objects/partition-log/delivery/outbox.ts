import { RUN_MAX_EVENTS } from "../../../sdk/messages";
import type { DirectTarget, Route } from "../../../shared/subscriptions";
import { type DirectFilter, type DirectRow, drainDirect } from "./direct";
import { isEnvelopeOnly } from "./envelope";
import { chunk, type FeedRuns, runsOf, type SendBatch } from "./runs";

/**
 * The transactional outbox of a partition: one row per (subscription, sequence) written in the
 * same SQLite transaction as the event, kept until the subscription acknowledged the event (not
 * merely until the queue accepted a message: see durable-objects/delivery). So a committed event
 * reaches every matching subscription at least once, whatever fails in between. A direct route (a
 * processor's feed) has one row per transaction instead, a range of its matching events (ADR 0056,
 * delivery/direct.ts).
 */

/**
 * The outbox writes of one append transaction: an outbox row for each committed event and each
 * route whose filter matches, each row naming its predecessor in that subscription's chain
 * (`prev`). The chain's end per subscription is kept in `routing`, written once per transaction
 * by `finish()`; `routed` holds the ends as of this transaction, for the caller to keep once the
 * transaction has committed (and to drop if it rolls back).
 */
export class OutboxWrites {
  readonly routed: Map<string, number>;
  private readonly changed = new Set<string>();
  /** Direct routes: the transaction's matched events as one range row each (written by `finish()`). */
  private readonly ranges = new Map<string, { first: number; last: number; prev: number }>();

  /**
   * `committed`: chain ends known from earlier transactions; others are read from `routing`.
   * `unfiltered`: routes without a filter, which every event matches (their filter is never called).
   */
  constructor(
    private readonly sql: SqlStorage,
    private readonly routes: Route[],
    committed: ReadonlyMap<string, number>,
    private readonly unfiltered: (route: Route) => boolean = () => false,
  ) {
    this.routed = new Map(committed);
  }

  /**
   * Inside the append transaction: an outbox row for each route whose filter matches the event
   * as stored. `stored` gives that event (parsed: called only if some filter needs more than the
   * envelope); `envelope` gives its ENVELOPE_KEYS attributes, with the same values, cheaply.
   */
  add(sequence: number, stored: () => Record<string, unknown>, envelope?: () => Record<string, unknown>): number {
    let n = 0;
    let event: Record<string, unknown> | undefined;
    let head: Record<string, unknown> | undefined;
    for (const route of this.routes) {
      if (!this.unfiltered(route)) {
        let view: Record<string, unknown>;
        if (envelope !== undefined && route.keys !== undefined && isEnvelopeOnly(route.keys)) {
          if (head === undefined) head = envelope();
          view = head;
        } else {
          if (event === undefined) event = stored();
          view = event;
        }
        if (!route.matches(view)) continue;
      }
      const prev = this.routed.get(route.name) ?? this.lastRouted(route.name);
      if (route.direct !== undefined) {
        const range = this.ranges.get(route.name);
        if (range === undefined) this.ranges.set(route.name, { first: sequence, last: sequence, prev });
        else range.last = sequence;
      } else {
        this.sql.exec(`INSERT INTO outbox (subscription, sequence, prev) VALUES (?, ?, ?)`, route.name, sequence, prev);
      }
      this.routed.set(route.name, sequence);
      this.changed.add(route.name);
      n++;
    }
    return n;
  }

  /** Inside the append transaction, after the last `add`: writes the direct routes' range rows and records each chain's new end. */
  finish(): void {
    for (const [name, r] of this.ranges) {
      this.sql.exec(`INSERT INTO outbox (subscription, sequence, prev, through) VALUES (?, ?, ?, ?)`, name, r.first, r.prev, r.last);
    }
    for (const name of this.changed) {
      this.sql.exec(
        `INSERT INTO routing (subscription, last_sequence) VALUES (?, ?) ON CONFLICT (subscription) DO UPDATE SET last_sequence = excluded.last_sequence`,
        name,
        this.routed.get(name) ?? 0,
      );
    }
  }

  private lastRouted(subscription: string): number {
    return (
      this.sql.exec<{ last_sequence: number }>(`SELECT last_sequence FROM routing WHERE subscription = ?`, subscription).toArray()[0]
        ?.last_sequence ?? 0
    );
  }
}

/** Where the relay sends a subscription's events, and how long it waits for them to be settled. */
export interface RelayRoute {
  queue: string;
  /** A direct route (a processor's feed): `feed` delivers, and its success acknowledges (the rows go). */
  direct?: DirectTarget;
  /** A direct route's filter, applied again to the events inside its range rows (absent: unfiltered). */
  filter?: DirectFilter;
  /** Redelivery timeout: a sent event not settled by then is sent again (durable-objects/delivery). */
  timeoutMs: number;
}

/**
 * Sends every outbox row not yet sent, oldest first per subscription, marking rows as sent (in
 * transit, due for their redelivery check after the route's timeout) only after their batch was
 * accepted. Rows stay until the subscription acknowledges them (durable-objects/delivery). Throws
 * on the first failed send (rows stay unsent for the next attempt).
 */
export async function drainOutbox(
  sql: SqlStorage,
  topic: string,
  partition: number,
  routeOf: (subscription: string) => RelayRoute | undefined,
  send: SendBatch,
  onDropped: (subscription: string, rows: number) => void,
  now: () => number = Date.now,
  runEvents: number = RUN_MAX_EVENTS,
  feed?: FeedRuns,
): Promise<number> {
  let sent = 0;
  /** A direct route that failed: the others are still sent, then the failure is thrown (the relay retries with backoff). */
  let failed: unknown;
  const skip = new Set<string>();
  for (;;) {
    const rows = sql
      .exec<DirectRow>(
        `SELECT o.subscription, o.sequence, o.prev, o.through, e.body, e.received_at
         FROM outbox o JOIN events e ON e.sequence = o.sequence
         WHERE o.sent_at IS NULL ${skip.size === 0 ? "" : `AND o.subscription NOT IN (${[...skip].map(() => "?").join(", ")})`}
         ORDER BY o.subscription, o.sequence LIMIT 1000`,
        ...skip,
      )
      .toArray();
    if (rows.length === 0) {
      if (failed !== undefined) throw failed;
      return sent;
    }
    const bySubscription = new Map<string, DirectRow[]>();
    for (const row of rows) {
      // Pushed, not copied: a page of 1,000 rows for one subscription copied its list 1,000 times.
      const list = bySubscription.get(row.subscription);
      if (list === undefined) bySubscription.set(row.subscription, [row]);
      else list.push(row);
    }
    for (const [subscription, subRows] of bySubscription) {
      const route = routeOf(subscription);
      if (route === undefined) {
        // The subscription was removed from the config: nobody can receive these any more.
        sql.exec(`DELETE FROM outbox WHERE subscription = ?`, subscription);
        onDropped(subscription, subRows.length);
        continue;
      }
      if (route.direct !== undefined) {
        // Direct: in order, by range rows; each call returns after the processor side committed, so the rows go.
        try {
          if (feed === undefined) throw new Error(`no feed for direct route ${subscription}`);
          const target = { subscription, direct: route.direct, ...(route.filter === undefined ? {} : { filter: route.filter }) };
          sent += await drainDirect(sql, target, subRows, { topic, partition }, feed, runEvents);
        } catch (err) {
          failed ??= err;
          skip.add(subscription);
        }
        continue;
      }
      for (const batch of chunk(runsOf(subRows, topic, partition, runEvents))) {
        await send(
          route.queue,
          batch.map((m) => m.body),
        );
        // The selection was ordered, so this subscription has no other unsent rows between first and last.
        const first = batch[0]?.body.events[0]?.sequence ?? 0;
        const last = batch.at(-1)?.body.events.at(-1)?.sequence ?? 0;
        const at = now();
        sql.exec(
          `UPDATE outbox SET sent_at = ?, due_at = ?, sends = sends + 1
           WHERE subscription = ? AND sequence BETWEEN ? AND ? AND sent_at IS NULL`,
          at,
          at + route.timeoutMs,
          subscription,
          first,
          last,
        );
        sent += batch.reduce((n, m) => n + m.body.events.length, 0);
      }
    }
  }
}
