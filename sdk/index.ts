/**
 * The Eventline consumer SDK: what a consumer Worker imports. Everything it needs lives in sdk/
 * (nothing here imports the platform); see sdk/README.md.
 */

export { defineConsumer } from "./consumer";
export { resolveFromLog } from "./consumer-refs";
export {
  type Consumer,
  type ConsumerOptions,
  type HandleContext,
  ORDERING_DEFERRALS,
  PermanentError,
  type SchemaVersionPins,
  type StoredEvent,
  storedEventSchema,
  UnsupportedSchemaVersionError,
} from "./consumer-types";
export { createLogger, type Logger } from "./logger";
export { type Delivery, type DeliveryMessage, deliveriesOf, type Run } from "./messages";
export { parseSchemaUri, type SchemaRef, schemaUri, schemaVersionOf } from "./schema-uri";
