import config, { orderEventSchemas } from "../../../eventline.config";
import { PermanentError } from "../../../sdk/consumer";
import type { Aggregate } from "../../../shared/aggregate";
import { findTopic } from "../../../shared/config";
import {
  deserializeState,
  ORDER_EVENT_TYPES,
  type OrderCommand,
  type OrderEvent,
  type OrderEventType,
  type OrderState,
  orderCommandSchema,
  orderDecider,
  SNAPSHOT_SCHEMA_VERSION,
  serializeState,
} from "./domain";

/** The orders aggregate on the `orders` topic: one stream per order, its subject the order id. */

/** The topic order commands append to and the order read models are projected from. */
export const ORDERS_TOPIC = "orders";
const topic = findTopic(config, ORDERS_TOPIC);
if (topic === undefined) throw new Error("eventline.config.ts must declare the orders topic");

const isOrderEventType = (type: unknown): type is OrderEventType => (ORDER_EVENT_TYPES as readonly unknown[]).includes(type);

/**
 * A stored event of an order stream as a domain event, its data checked against the topic's
 * schema. Anything else in an order stream is a bug or tampering: a PermanentError (a consumer
 * dead-letters it at once instead of retrying).
 */
export function parseOrderEvent(stored: Record<string, unknown>): OrderEvent {
  const type = stored.type;
  if (!isOrderEventType(type)) throw new PermanentError(`not an order event type: ${JSON.stringify(type)}`);
  const data = orderEventSchemas[type].safeParse(stored.data);
  if (!data.success) throw new PermanentError(`${type} data does not match its schema: ${data.error.message}`);
  return { type, data: data.data } as OrderEvent;
}

/** Registered by this name (the orders example's `aggregates`): order commands run in the order's partition log. */
export const ordersAggregate: Aggregate<OrderCommand, OrderEvent, OrderState> = {
  name: "orders",
  topic,
  source: (orderId) => `/orders/${encodeURIComponent(orderId)}`,
  decider: orderDecider,
  commandSchema: orderCommandSchema,
  snapshotSchema: SNAPSHOT_SCHEMA_VERSION,
  serialize: serializeState,
  deserialize: deserializeState,
  parse: parseOrderEvent,
};
