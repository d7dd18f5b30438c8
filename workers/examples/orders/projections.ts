import { eq, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import type { StoredEvent } from "../../../sdk/consumer";
import { customerSpend, customerSummaries, customerSummaryOrders, ordersView } from "../../../shared/db/schema";
import { configuredConsumer } from "../../platform/consumers/configured";
import { parseOrderEvent } from "./aggregate";
import { type OrderEvent, type OrderState, orderDecider } from "./domain";

/**
 * The orders read models (CQRS), as projections built with the consumer SDK: each handler
 * returns its D1 writes, which the SDK commits in one `db.batch()` with the event's idempotency
 * record and the subscription's checkpoint — exactly-once effects. Both subscriptions are
 * ordered (`partition`), and an order's events share a partition, so an order's events are
 * applied in stream order; each row also keeps the stream version it reflects and never moves
 * back, whatever is redelivered.
 */

export const ORDERS_VIEW = "orders-view";
export const CUSTOMER_SUMMARY = "customer-summary";

/** A drizzle query as the D1 statement the SDK batches (drizzle builds it, D1 runs it in the SDK's batch). */
function statement(db: D1Database, query: { toSQL(): { sql: string; params: unknown[] } }): D1PreparedStatement {
  const { sql: text, params } = query.toSQL();
  return db.prepare(text).bind(...params);
}

/** The stream position an order event carries: its subject (the order id) and stream version. */
export function streamPosition(event: StoredEvent): { orderId: string; version: number; committedAt: Date } {
  const subject = event.subject;
  const version = event.streamversion;
  if (typeof subject !== "string" || typeof version !== "number") {
    throw new Error(`event ${event.id} is not part of an order stream (no subject or streamversion)`);
  }
  const received = typeof event.receivedtime === "string" ? Date.parse(event.receivedtime) : Number.NaN;
  return { orderId: subject, version, committedAt: new Date(Number.isNaN(received) ? Date.now() : received) };
}

/** Thrown (and retried) when an order's event arrives before its predecessor was applied. */
export class OutOfOrder extends Error {
  override readonly name = "OutOfOrder";
}

function stateOf(row: typeof ordersView.$inferSelect | undefined): OrderState {
  if (row === undefined) return orderDecider.initialState;
  return {
    status: row.status as OrderState["status"],
    orderId: row.orderId,
    customerId: row.customerId,
    currency: row.currency,
    lines: row.lines,
    total: row.total,
    paid: row.paid,
  };
}

/** The `orders-view` effects of one event: the order's row, as `evolve` leaves it. */
export async function ordersViewStatements(
  d1: D1Database,
  stored: StoredEvent,
  at: { partition: number; sequence: number },
): Promise<D1PreparedStatement[]> {
  const db = drizzle(d1);
  const event = parseOrderEvent(stored);
  const { orderId, version, committedAt } = streamPosition(stored);
  const row = (await db.select().from(ordersView).where(eq(ordersView.orderId, orderId)).limit(1))[0];
  const current = row?.version ?? 0;
  if (current >= version) return []; // already reflected
  if (current !== version - 1) throw new OutOfOrder(`order ${orderId} is at version ${current}; event is version ${version}`);
  const next = orderDecider.evolve(stateOf(row), event);
  const values = {
    orderId,
    customerId: next.customerId ?? "",
    status: next.status,
    currency: next.currency ?? "",
    lines: next.lines,
    total: next.total,
    paid: next.paid,
    version,
    partition: at.partition,
    sequence: at.sequence,
    placedAt: row?.placedAt ?? committedAt,
    updatedAt: committedAt,
  };
  const { orderId: _key, placedAt: _placed, ...changes } = values;
  return [
    statement(
      d1,
      db
        .insert(ordersView)
        .values(values)
        // Forward only: a row never goes back to an older version.
        .onConflictDoUpdate({ target: ordersView.orderId, set: changes, setWhere: sql`${ordersView.version} < excluded.version` }),
    ),
  ];
}

/** The `customer-summary` effects of one event: order count and money spent per customer and currency. */
export async function customerSummaryStatements(d1: D1Database, stored: StoredEvent): Promise<D1PreparedStatement[]> {
  const db = drizzle(d1);
  const event: OrderEvent = parseOrderEvent(stored);
  const { orderId, version, committedAt } = streamPosition(stored);
  const order = (await db.select().from(customerSummaryOrders).where(eq(customerSummaryOrders.orderId, orderId)).limit(1))[0];
  const current = order?.version ?? 0;
  if (current >= version) return [];
  if (current !== version - 1) throw new OutOfOrder(`order ${orderId} is at version ${current}; event is version ${version}`);
  // Every write below is guarded by the version it moves from, so none can apply twice.
  const advance = (set: Partial<typeof customerSummaryOrders.$inferInsert>) =>
    statement(
      d1,
      db
        .update(customerSummaryOrders)
        .set({ ...set, version })
        .where(sql`${customerSummaryOrders.orderId} = ${orderId} AND ${customerSummaryOrders.version} = ${version - 1}`),
    );
  const spend = (customerId: string, currency: string, delta: number) =>
    statement(
      d1,
      db
        .insert(customerSpend)
        .values({ customerId, currency, totalSpent: delta })
        .onConflictDoUpdate({
          target: [customerSpend.customerId, customerSpend.currency],
          set: { totalSpent: sql`${customerSpend.totalSpent} + ${delta}` },
        }),
    );
  const queries: D1PreparedStatement[] = [];
  switch (event.type) {
    case "orders.placed": {
      const { customerId, currency } = event.data;
      queries.push(
        statement(
          d1,
          db
            .insert(customerSummaryOrders)
            .values({ orderId, customerId, currency, paid: 0, status: "open", version })
            .onConflictDoNothing(),
        ),
        statement(
          d1,
          db
            .insert(customerSummaries)
            .values({ customerId, orderCount: 1, updatedAt: committedAt })
            .onConflictDoUpdate({
              target: customerSummaries.customerId,
              set: { orderCount: sql`${customerSummaries.orderCount} + 1`, updatedAt: committedAt },
            }),
        ),
      );
      break;
    }
    case "orders.paid":
      if (order === undefined) throw new OutOfOrder(`order ${orderId} paid before it was placed`);
      queries.push(advance({ paid: event.data.amount, status: "paid" }), spend(order.customerId, order.currency, event.data.amount));
      break;
    case "orders.cancelled":
      if (order === undefined) throw new OutOfOrder(`order ${orderId} cancelled before it was placed`);
      // A cancelled order's payment is refunded: it no longer counts as spent.
      queries.push(advance({ status: "cancelled" }));
      if (order.paid > 0) queries.push(spend(order.customerId, order.currency, -order.paid));
      break;
    case "orders.shipped":
      queries.push(advance({ status: "shipped" }));
      break;
    default:
      // Line changes do not change the summary; the order's version still moves.
      queries.push(advance({}));
  }
  if (order !== undefined && event.type !== "orders.placed") {
    queries.push(
      statement(d1, db.update(customerSummaries).set({ updatedAt: committedAt }).where(eq(customerSummaries.customerId, order.customerId))),
    );
  }
  return queries;
}

/**
 * Both projections read an order's row and decide in JavaScript (read-modify-write), so an event
 * must see the effects of the order's previous event even within one queue batch: they settle
 * event by event (`settlement: "event"`, ADR 0036), not as one batch commit.
 */
export const ordersViewConsumer = configuredConsumer(
  ORDERS_VIEW,
  (event, { env, delivery }) => ordersViewStatements(env.DB, event, { partition: delivery.partition, sequence: delivery.sequence }),
  { settlement: "event" },
);

export const customerSummaryConsumer = configuredConsumer(CUSTOMER_SUMMARY, (event, { env }) => customerSummaryStatements(env.DB, event), {
  settlement: "event",
});
