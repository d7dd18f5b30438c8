import { defineConfig } from "./shared/config";
import { orderEventSchemas } from "./workers/examples/orders/schemas";

/**
 * Eventline's topics and limits. Validated on load: a mistake here fails `npm run build`,
 * `npm test` and `npm start` with a message naming the bad field.
 */

/** The orders demo's event types and data schemas live with its domain (workers/examples/orders/schemas.ts). */
export { orderEventSchemas } from "./workers/examples/orders/schemas";

export default defineConfig({
  topics: [
    {
      name: "events",
      partitions: 4,
      retentionHours: 24 * 7,
      // A segment per 1,000 events, or sooner once its oldest event is 30 s old, so archiving is
      // visible in local dev within half a minute.
      archive: { segmentEvents: 1000, segmentSeconds: 30 },
      description: "General-purpose topic: any event type, no data schema.",
    },
    {
      name: "orders",
      partitions: 4,
      retentionHours: 24 * 30,
      archive: { segmentEvents: 1000, segmentSeconds: 30 },
      strictTypes: true,
      schemas: orderEventSchemas,
      description: "Demo domain: order lifecycle events, each type with a data schema.",
    },
    {
      name: "customers",
      partitions: 2,
      retentionHours: 24 * 30,
      archive: { segmentEvents: 1000, segmentSeconds: 30 },
      // Personal data: encrypted at ingest under the subject's (the customer's) data key, readable
      // only with a decrypt grant, erasable with DELETE /v1/subjects/{subject}/keys (docs/security.md).
      sensitive: { "*": ["/name", "/email", "/phone", "/address"] },
      description: "Demo of field encryption: customer events whose personal fields are stored encrypted.",
    },
    {
      name: "orders-revenue",
      partitions: 2,
      retentionHours: 24 * 30,
      archive: { segmentEvents: 1000, segmentSeconds: 30 },
      description: "Results of the revenue-per-minute processor: revenue per currency per minute, final once the minute closes.",
    },
    {
      name: "orders-alerts",
      partitions: 2,
      retentionHours: 24 * 30,
      archive: { segmentEvents: 1000, segmentSeconds: 30 },
      description: "Results of the unpaid-orders processor: an alert per order placed and not paid within 15 minutes.",
    },
    {
      name: "audit",
      partitions: 1,
      retentionHours: 24 * 365,
      archive: { segmentEvents: 1000, segmentSeconds: 30 },
      internal: true,
      description: "The audit log (GET /v1/audit): written only by the platform, archived like any topic.",
    },
  ],
  subscriptions: [
    {
      name: "activity",
      topic: "events",
      queue: "SUB_ACTIVITY",
      description: "Built-in projection: events per (topic, type) in D1, hosted by the platform Worker.",
      // Counting commutes, so no ordering is needed, and a failing event never holds up others.
      ordering: "none",
      maxRetries: 3,
      backoff: { baseSeconds: 1, capSeconds: 30 },
      circuitBreaker: { failureThreshold: 10, openSeconds: 10 },
    },
    {
      name: "greetings",
      topic: "events",
      filter: { type: [{ prefix: "com.example.greeting" }] },
      queue: "SUB_GREETINGS",
      description: "Consumed by the example consumer Worker (workers/example-consumer).",
      consumer: "workers/example-consumer/wrangler.toml",
      ordering: "partition",
      maxRetries: 5,
      backoff: { baseSeconds: 1, capSeconds: 60 },
    },
    {
      name: "orders-view",
      topic: "orders",
      // Projections of order streams: an orders event outside a stream (no subject) is not theirs.
      filter: { streamversion: [{ exists: true }] },
      queue: "SUB_ORDERS_VIEW",
      description: "Projection: the orders read model in D1 (GET /v1/orders), hosted by the platform Worker.",
      // An order's events must be applied in stream order; they share a partition.
      ordering: "partition",
      maxRetries: 5,
      backoff: { baseSeconds: 1, capSeconds: 30 },
    },
    {
      name: "customer-summary",
      topic: "orders",
      // Projections of order streams: an orders event outside a stream (no subject) is not theirs.
      filter: { streamversion: [{ exists: true }] },
      queue: "SUB_CUSTOMER_SUMMARY",
      description: "Projection: order count and money spent per customer in D1 (GET /v1/customers/{id}/summary).",
      ordering: "partition",
      maxRetries: 5,
      backoff: { baseSeconds: 1, capSeconds: 30 },
    },
  ],
  // Stream processors (docs/processors.md): results in event time, exactly once, appended as events.
  processors: [
    {
      name: "revenue-per-minute",
      kind: "aggregate",
      description: "Revenue per currency per minute of event time, final once the minute (+ grace) has passed.",
      input: { topic: "orders", filter: { type: ["orders.paid"] } },
      key: "/data/currency",
      eventTime: "time",
      window: { type: "tumbling", size: "1m" },
      aggregates: [
        { name: "count", op: "count" },
        { name: "sum", op: "sum", field: "/data/amount" },
      ],
      emit: "final",
      watermark: { outOfOrderness: "30s", idleTimeout: "10s" },
      grace: "30s",
      output: { topic: "orders-revenue", table: true },
    },
    {
      name: "unpaid-orders",
      kind: "pattern",
      description: "An alert for each order placed and not paid within 15 minutes of event time.",
      input: { topic: "orders", filter: { type: ["orders.placed", "orders.paid"] } },
      key: "/data/orderId",
      pattern: { type: "absence", a: { type: ["orders.placed"] }, b: { type: ["orders.paid"] }, within: "15m" },
      watermark: { outOfOrderness: "30s", idleTimeout: "10s" },
      grace: "30s",
      output: { topic: "orders-alerts" },
    },
  ],
  commands: {
    // The command side's aggregate snapshots: every N events an aggregate's state is kept beside its stream.
    snapshotEvery: 10,
    // A command that loses a race for its stream's version is decided again on the new state, this often.
    conflictRetries: 4,
    // Read-your-writes: how long a query that names a position may wait for the read model.
    maxWaitMs: 10_000,
    defaultWaitMs: 5_000,
  },
  limits: {
    maxBodyBytes: 1024 * 1024,
    maxEventBytes: 64 * 1024,
    maxBatchEvents: 500,
  },
  partitionLog: {
    maxInFlightAppends: 256,
    retryAfterSeconds: 1,
  },
  read: {
    defaultLimit: 100,
    maxLimit: 1000,
  },
});
