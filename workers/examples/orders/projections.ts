import type { StoredEvent } from "../../../sdk/consumer";
import { configuredConsumer } from "../../platform/consumers/configured";
import { parseOrderEvent } from "./aggregate";
import { type OrderEvent, type OrderLine, orderDecider } from "./domain";

/**
 * The orders read models (CQRS), as projections built with the consumer SDK: each handler
 * returns its D1 writes, which the SDK commits with the event's idempotency record and the
 * subscription's checkpoint — exactly-once effects. Both subscriptions are ordered (`partition`),
 * and an order's events share a partition, so an order's events are applied in stream order.
 *
 * The writes are pure SQL, read nothing in JavaScript and are correct applied one after another
 * in one commit (ADR 0047): each is guarded by the stream version it moves from
 * (`WHERE version = v - 1`), so an event already reflected changes nothing and a row never moves
 * back, whatever is redelivered; and a last statement per event fails the commit (which is then
 * retried) if the row is still behind the event, so a missing predecessor is never skipped
 * silently. So both settle a queue batch in one commit (batch settlement, ADR 0036): two D1
 * round trips per batch instead of two per event.
 */

export const ORDERS_VIEW = "orders-view";
export const CUSTOMER_SUMMARY = "customer-summary";

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

/**
 * Fails the statement (so the whole commit, which is then retried) unless the row `table` keeps
 * for order ?1 is at version ?2 or later: the event's effects did not apply because its
 * predecessor has not been applied (out of order). SQLite has no RAISE outside triggers; `json()`
 * of a text that is not JSON is the error. It depends on the row, so SQLite cannot evaluate it
 * ahead of the CASE.
 */
const behindGuard = (table: "orders_view" | "customer_summary_orders") =>
  `SELECT CASE WHEN coalesce((SELECT version FROM ${table} WHERE order_id = ?1), 0) >= ?2 THEN 1
    ELSE json('out of order: ${table} row of order ' || ?1 || ' is at version ' || coalesce((SELECT version FROM ${table} WHERE order_id = ?1), 0) || ', behind event version ' || ?2) END`;
const ORDERS_VIEW_GUARD = behindGuard("orders_view");
const SUMMARY_GUARD = behindGuard("customer_summary_orders");

// ---------------------------------------------------------------------------------------------
// orders-view: the order's row, as `evolve` leaves it

/** placed (version 1): the row as `evolve` makes it from nothing; a row that exists is at version ≥ 1 already. */
const VIEW_PLACE = `INSERT INTO orders_view (order_id, customer_id, status, currency, lines, total, paid, version, partition, sequence, placed_at, updated_at)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)
  ON CONFLICT (order_id) DO NOTHING`;

/** The columns every later event moves, after `changes` (the event's own). Applies only on top of version ?2 - 1. */
const viewAdvance = (changes: string) =>
  `UPDATE orders_view SET ${changes}version = ?2, partition = ?3, sequence = ?4, updated_at = ?5
  WHERE order_id = ?1 AND version = ?2 - 1`;
/** line-added: appended last, as `evolve` does; the total grows by the line's amount (?6 the line, ?7 its amount). */
const VIEW_LINE_ADDED = viewAdvance("lines = json_insert(lines, '$[#]', json(?6)), total = total + ?7, ");
/** Every line but SKU ?6, in order, and the total over them (both read the row before the update). */
const keptLines = "FROM json_each(orders_view.lines) j WHERE json_extract(j.value, '$.sku') IS NOT ?6";
const VIEW_LINE_REMOVED = viewAdvance(
  `lines = (SELECT json_group_array(json(j.value)) ${keptLines}),
  total = (SELECT coalesce(sum(json_extract(j.value, '$.quantity') * json_extract(j.value, '$.unitPrice')), 0) ${keptLines}), `,
);
const VIEW_PAID = viewAdvance("status = 'paid', paid = ?6, ");
const VIEW_STATUS = viewAdvance("status = ?6, ");

/** A line as the row stores it (the key order `evolve`'s copy has). */
const lineJson = ({ sku, quantity, unitPrice }: OrderLine): string => JSON.stringify({ sku, quantity, unitPrice });

/** The `orders-view` effects of one event: the order's row, as `evolve` leaves it. */
export function ordersViewStatements(
  d1: D1Database,
  stored: StoredEvent,
  at: { partition: number; sequence: number },
): D1PreparedStatement[] {
  const event = parseOrderEvent(stored);
  const { orderId, version, committedAt } = streamPosition(stored);
  const time = committedAt.getTime();
  const guard = d1.prepare(ORDERS_VIEW_GUARD).bind(orderId, version);
  if (event.type === "orders.placed") {
    const placed = orderDecider.evolve(orderDecider.initialState, event);
    const lines = `[${placed.lines.map(lineJson).join(",")}]`;
    const { customerId, currency } = event.data;
    return [
      d1
        .prepare(VIEW_PLACE)
        .bind(orderId, customerId, placed.status, currency, lines, placed.total, placed.paid, version, at.partition, at.sequence, time),
      guard,
    ];
  }
  const position = [orderId, version, at.partition, at.sequence, time];
  const update = (() => {
    switch (event.type) {
      case "orders.line-added": {
        const { line } = event.data;
        return d1.prepare(VIEW_LINE_ADDED).bind(...position, lineJson(line), line.quantity * line.unitPrice);
      }
      case "orders.line-removed":
        return d1.prepare(VIEW_LINE_REMOVED).bind(...position, event.data.sku);
      case "orders.paid":
        return d1.prepare(VIEW_PAID).bind(...position, event.data.amount);
      case "orders.shipped":
        return d1.prepare(VIEW_STATUS).bind(...position, "shipped");
      case "orders.cancelled":
        return d1.prepare(VIEW_STATUS).bind(...position, "cancelled");
    }
  })();
  return [update, guard];
}

// ---------------------------------------------------------------------------------------------
// customer-summary: order count and money spent per customer and currency

/** placed: one more order for the customer, unless the order is already known (the count is not idempotent by itself). */
const SUMMARY_COUNT = `INSERT INTO customer_summaries (customer_id, order_count, updated_at)
  SELECT ?2, 1, ?3 WHERE NOT EXISTS (SELECT 1 FROM customer_summary_orders WHERE order_id = ?1)
  ON CONFLICT (customer_id) DO UPDATE SET order_count = order_count + 1, updated_at = excluded.updated_at`;
const SUMMARY_ORDER = `INSERT INTO customer_summary_orders (order_id, customer_id, currency, paid, status, version)
  VALUES (?1, ?2, ?3, 0, 'open', ?4) ON CONFLICT (order_id) DO NOTHING`;
/** The order's working row, if it is exactly one version behind event version ?2. */
const PREVIOUS = "FROM customer_summary_orders WHERE order_id = ?1 AND version = ?2 - 1";
/** paid: the amount (?3) counts as spent in the order's currency. */
const SUMMARY_SPEND_PAID = `INSERT INTO customer_spend (customer_id, currency, total_spent)
  SELECT customer_id, currency, ?3 ${PREVIOUS}
  ON CONFLICT (customer_id, currency) DO UPDATE SET total_spent = total_spent + excluded.total_spent`;
/** cancelled: a paid order's payment is refunded, so it no longer counts as spent. */
const SUMMARY_REFUND = `INSERT INTO customer_spend (customer_id, currency, total_spent)
  SELECT customer_id, currency, -paid ${PREVIOUS} AND paid > 0
  ON CONFLICT (customer_id, currency) DO UPDATE SET total_spent = total_spent + excluded.total_spent`;
const SUMMARY_TOUCH = `UPDATE customer_summaries SET updated_at = ?3 WHERE customer_id = (SELECT customer_id ${PREVIOUS})`;
/** Last of an event's statements: the ones before it key on the version it moves from. */
const SUMMARY_ADVANCE =
  "UPDATE customer_summary_orders SET status = coalesce(?3, status), paid = coalesce(?4, paid), version = ?2 WHERE order_id = ?1 AND version = ?2 - 1";

/** The `customer-summary` effects of one event: order count and money spent per customer and currency. */
export function customerSummaryStatements(d1: D1Database, stored: StoredEvent): D1PreparedStatement[] {
  const event: OrderEvent = parseOrderEvent(stored);
  const { orderId, version, committedAt } = streamPosition(stored);
  const time = committedAt.getTime();
  const guard = d1.prepare(SUMMARY_GUARD).bind(orderId, version);
  if (event.type === "orders.placed") {
    const { customerId, currency } = event.data;
    return [
      d1.prepare(SUMMARY_COUNT).bind(orderId, customerId, time),
      d1.prepare(SUMMARY_ORDER).bind(orderId, customerId, currency, version),
      guard,
    ];
  }
  const queries: D1PreparedStatement[] = [];
  const advance = (status: string | null, paid: number | null) => d1.prepare(SUMMARY_ADVANCE).bind(orderId, version, status, paid);
  if (event.type === "orders.paid") queries.push(d1.prepare(SUMMARY_SPEND_PAID).bind(orderId, version, event.data.amount));
  if (event.type === "orders.cancelled") queries.push(d1.prepare(SUMMARY_REFUND).bind(orderId, version));
  queries.push(d1.prepare(SUMMARY_TOUCH).bind(orderId, version, time));
  switch (event.type) {
    case "orders.paid":
      queries.push(advance("paid", event.data.amount));
      break;
    case "orders.cancelled":
      queries.push(advance("cancelled", null));
      break;
    case "orders.shipped":
      queries.push(advance("shipped", null));
      break;
    default:
      // Line changes do not change the summary; the order's version still moves.
      queries.push(advance(null, null));
  }
  queries.push(guard);
  return queries;
}

/** Batch settlement (the default, ADR 0036): an event's writes see the earlier events' of the same commit. */
export const ordersViewConsumer = configuredConsumer(ORDERS_VIEW, async (event, { env, delivery }) =>
  ordersViewStatements(env.DB, event, { partition: delivery.partition, sequence: delivery.sequence }),
);

export const customerSummaryConsumer = configuredConsumer(CUSTOMER_SUMMARY, async (event, { env }) =>
  customerSummaryStatements(env.DB, event),
);
