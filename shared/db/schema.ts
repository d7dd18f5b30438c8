import { sql } from "drizzle-orm";
import { index, integer, primaryKey, real, sqliteTable, sqliteView, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/**
 * D1 schema (drizzle-orm). `npm run db:generate` turns changes here into a migration in
 * `migrations/`, which `npm start`, `npm run db:migrate:local` and the tests apply.
 *
 * Consumer-side state written by the consumer SDK (sdk/consumer.ts). A handler's D1 effects,
 * its `processed_events` row and its checkpoint move go in one `db.batch()`, so an event's
 * effects are applied exactly once however often it is delivered.
 */

/** Every event a subscription has settled: handled, or dead-lettered. The idempotency record. */
export const processedEvents = sqliteTable(
  "processed_events",
  {
    subscription: text("subscription").notNull(),
    source: text("source").notNull(),
    eventId: text("event_id").notNull(),
    topic: text("topic").notNull(),
    partition: integer("partition").notNull(),
    sequence: integer("sequence").notNull(),
    /** The previous sequence routed to this subscription in the partition: links the order chain. */
    prev: integer("prev").notNull(),
    /** `handled`, `dead_lettered`, or `duplicate_id` (its id was handled at another position). */
    outcome: text("outcome").notNull().default("handled"),
    processedAt: integer("processed_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.subscription, t.source, t.eventId] }),
    index("processed_events_position").on(t.subscription, t.topic, t.partition, t.sequence),
    // The checkpoint walk follows `prev` links.
    index("processed_events_chain").on(t.subscription, t.topic, t.partition, t.prev),
  ],
);

/**
 * Per subscription and partition: the highest sequence such that it and every one before it are
 * settled (ordering `none`), or the highest applied in order (ordering `partition`).
 * Lag = partition head − checkpoint.
 */
export const checkpoints = sqliteTable(
  "checkpoints",
  {
    subscription: text("subscription").notNull(),
    topic: text("topic").notNull(),
    partition: integer("partition").notNull(),
    sequence: integer("sequence").notNull(),
    updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.subscription, t.topic, t.partition] })],
);

/**
 * Handler failures of a delivery still being retried (`attempts` counts failures, not deliveries:
 * an ordered subscription's waits for a predecessor are deliveries too). The dead letter reports it.
 */
export const deliveryFailures = sqliteTable(
  "delivery_failures",
  {
    subscription: text("subscription").notNull(),
    topic: text("topic").notNull(),
    partition: integer("partition").notNull(),
    sequence: integer("sequence").notNull(),
    attempts: integer("attempts").notNull(),
    firstFailureAt: integer("first_failure_at", { mode: "timestamp_ms" }).notNull(),
    lastFailureAt: integer("last_failure_at", { mode: "timestamp_ms" }).notNull(),
    lastError: text("last_error").notNull(),
  },
  (t) => [primaryKey({ columns: [t.subscription, t.topic, t.partition, t.sequence] })],
);

/** Messages that exhausted their retries or failed permanently, kept for inspection and redrive. */
export const deadLetters = sqliteTable(
  "dead_letters",
  {
    id: text("id").primaryKey(),
    subscription: text("subscription").notNull(),
    topic: text("topic").notNull(),
    partition: integer("partition").notNull(),
    sequence: integer("sequence").notNull(),
    eventId: text("event_id"),
    /** The delivery message body as received (JSON). */
    body: text("body").notNull(),
    /** `max_retries`, `permanent`, `unsupported_schema_version` or `invalid_message`. */
    reason: text("reason").notNull(),
    error: text("error").notNull(),
    attempts: integer("attempts").notNull(),
    firstFailureAt: integer("first_failure_at", { mode: "timestamp_ms" }).notNull(),
    lastFailureAt: integer("last_failure_at", { mode: "timestamp_ms" }).notNull(),
    deadLetteredAt: integer("dead_lettered_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [index("dead_letters_subscription").on(t.subscription, t.deadLetteredAt)],
);

/** Running totals per subscription, for the status API. */
export const subscriptionStats = sqliteTable("subscription_stats", {
  subscription: text("subscription").primaryKey(),
  handled: integer("handled").notNull().default(0),
  retried: integer("retried").notNull().default(0),
  deadLettered: integer("dead_lettered").notNull().default(0),
  /** Replayed events the subscription had already settled (absorbed by idempotency). */
  replayDuplicates: integer("replay_duplicates").notNull().default(0),
  /**
   * Deliveries of events the subscription had already settled (queue redeliveries, replays; with
   * EVENTLINE_METRICS on), so delivered = handled + retried + dead_lettered + duplicates.
   */
  duplicates: integer("duplicates").notNull().default(0),
  updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
});

/** Circuit breaker state per subscription, written on transitions. */
export const circuitState = sqliteTable("circuit_state", {
  subscription: text("subscription").primaryKey(),
  /** `closed`, `open` or `half_open`. */
  state: text("state").notNull(),
  consecutiveFailures: integer("consecutive_failures").notNull(),
  openedAt: integer("opened_at", { mode: "timestamp_ms" }),
  updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
});

/** Read model of the `activity` subscription: what flows through each topic, by event type. */
export const eventTypeActivity = sqliteTable(
  "event_type_activity",
  {
    topic: text("topic").notNull(),
    type: text("type").notNull(),
    events: integer("events").notNull(),
    lastEventId: text("last_event_id").notNull(),
    lastSeenAt: integer("last_seen_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.topic, t.type] })],
);

/** Subscriptions created at runtime through the API, delivered by webhook (Standard Webhooks). */
export const webhookSubscriptions = sqliteTable("webhook_subscriptions", {
  name: text("name").primaryKey(),
  topic: text("topic").notNull(),
  /** The filter pattern as JSON, or null for every event. */
  filter: text("filter"),
  ordering: text("ordering").notNull(),
  maxRetries: integer("max_retries").notNull(),
  url: text("url").notNull(),
  secret: text("secret").notNull(),
  /** The secret a rotation replaced: deliveries are signed with it too until `previous_secret_expires_at`. */
  previousSecret: text("previous_secret"),
  /** End of the rotation's overlap window (epoch ms); null when there is no previous secret. */
  previousSecretExpiresAt: integer("previous_secret_expires_at"),
  createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
});

/** Read model of the example consumer Worker (workers/example-consumer): greetings per subject. */
export const greetings = sqliteTable("greetings", {
  subject: text("subject").primaryKey(),
  greetings: integer("greetings").notNull(),
  lastMessage: text("last_message").notNull(),
  lastSequence: integer("last_sequence").notNull(),
});

/**
 * Read model of the `orders-view` projection (CQRS): one row per order, the state a fold of its
 * stream gives. `version` is the stream version applied last: a row only ever moves forward.
 */
export const ordersView = sqliteTable(
  "orders_view",
  {
    orderId: text("order_id").primaryKey(),
    customerId: text("customer_id").notNull(),
    /** `open`, `paid`, `shipped` or `cancelled`. */
    status: text("status").notNull(),
    currency: text("currency").notNull(),
    /** `[{ sku, quantity, unitPrice }]`, in the order lines were added. */
    lines: text("lines", { mode: "json" }).notNull().$type<{ sku: string; quantity: number; unitPrice: number }[]>(),
    /** Minor units (cents). */
    total: integer("total").notNull(),
    paid: integer("paid").notNull(),
    version: integer("version").notNull(),
    /** Partition and sequence of the last event applied. */
    partition: integer("partition").notNull(),
    sequence: integer("sequence").notNull(),
    placedAt: integer("placed_at", { mode: "timestamp_ms" }).notNull(),
    updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [
    // The list query filters by status and/or customer and pages newest first.
    index("orders_view_status").on(t.status, t.placedAt, t.orderId),
    index("orders_view_customer").on(t.customerId, t.placedAt, t.orderId),
    index("orders_view_placed").on(t.placedAt, t.orderId),
  ],
);

/** Read model of the `customer-summary` projection: orders per customer. */
export const customerSummaries = sqliteTable("customer_summaries", {
  customerId: text("customer_id").primaryKey(),
  orderCount: integer("order_count").notNull(),
  updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
});

/** Read model of the `customer-summary` projection: money spent per customer and currency (paid, less refunds of cancelled orders). */
export const customerSpend = sqliteTable(
  "customer_spend",
  {
    customerId: text("customer_id").notNull(),
    currency: text("currency").notNull(),
    totalSpent: integer("total_spent").notNull(),
  },
  (t) => [primaryKey({ columns: [t.customerId, t.currency] })],
);

/**
 * The `customer-summary` projection's own working state: what it needs to know about each order
 * (whose it is, what was paid) to apply later events that carry only the order id.
 */
export const customerSummaryOrders = sqliteTable("customer_summary_orders", {
  orderId: text("order_id").primaryKey(),
  customerId: text("customer_id").notNull(),
  currency: text("currency").notNull(),
  paid: integer("paid").notNull(),
  status: text("status").notNull(),
  version: integer("version").notNull(),
});

/** Replay jobs, for listing (`GET /v1/replays`); each job's ReplayJob object is the source of truth. */
export const replayJobs = sqliteTable(
  "replay_jobs",
  {
    id: text("id").primaryKey(),
    topic: text("topic").notNull(),
    subscription: text("subscription").notNull(),
    /** `running`, `done`, `cancelled` or `failed`. */
    state: text("state").notNull(),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
    updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
    /** The job's last reported view (JSON). */
    view: text("view").notNull(),
  },
  (t) => [index("replay_jobs_created").on(t.createdAt)],
);

/** Read models being rebuilt (truncated and replayed from the log and the archive). */
export const projectionState = sqliteTable("projection_state", {
  projection: text("projection").primaryKey(),
  /** `rebuilding` or `ready`. */
  state: text("state").notNull(),
  replayId: text("replay_id"),
  startedAt: integer("started_at", { mode: "timestamp_ms" }).notNull(),
  finishedAt: integer("finished_at", { mode: "timestamp_ms" }),
});

/**
 * API keys (docs/security.md). The secret is shown once at creation and stored only as its
 * SHA-256 (a 256-bit random secret needs no slow hash); `id` is the public part of the key
 * (`evl_<id>_<secret>`) and how it is found, listed and revoked. A key minted by a key names it in
 * `created_by` (`key:<id>`): it expires no later than its creator and is revoked with it.
 */
export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    /** Hex SHA-256 of the whole key string. */
    secretHash: text("secret_hash").notNull(),
    /** JSON array of grant strings (shared/security/grants.ts). */
    grants: text("grants").notNull(),
    tenant: text("tenant"),
    createdBy: text("created_by").notNull(),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
    expiresAt: integer("expires_at", { mode: "timestamp_ms" }),
    revokedAt: integer("revoked_at", { mode: "timestamp_ms" }),
    revokedBy: text("revoked_by"),
    /** When the secret was last rotated (`POST /v1/keys/{id}/rotate`); null if never. */
    rotatedAt: integer("rotated_at", { mode: "timestamp_ms" }),
    /** Hex SHA-256 of the key string before the last rotation, accepted until `previousSecretUntil`. */
    previousSecretHash: text("previous_secret_hash"),
    previousSecretUntil: integer("previous_secret_until", { mode: "timestamp_ms" }),
  },
  // created_by: revoking a key walks the keys it minted (`key:<id>`), transitively.
  (t) => [index("api_keys_created").on(t.createdAt), index("api_keys_created_by").on(t.createdBy)],
);

/**
 * Latency histograms kept by the consumer SDK per subscription (`metric`: `handler` — time in the
 * handler; `end_to_end` — commit in the partition log → handled). One row per bucket upper bound
 * `le` (seconds, as text, `+Inf` last) holding a cumulative-ready count, plus rows `sum` and
 * `count`; observations are added with an upsert, so concurrent batches never lose one.
 */
export const latencyHistograms = sqliteTable(
  "latency_histograms",
  {
    subscription: text("subscription").notNull(),
    metric: text("metric").notNull(),
    le: text("le").notNull(),
    value: real("value").notNull(),
  },
  (t) => [primaryKey({ columns: [t.subscription, t.metric, t.le] })],
);

/**
 * Every delivery attempt the consumer SDK settles, for an event's trace
 * (GET /v1/topics/{topic}/partitions/{p}/events/{sequence}/trace): when, which attempt, and how it
 * ended (`handled`, `failed`, `dead_lettered`, `duplicate`, `deferred`, `skipped`), with the error.
 */
export const deliveryAttempts = sqliteTable(
  "delivery_attempts",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    subscription: text("subscription").notNull(),
    topic: text("topic").notNull(),
    partition: integer("partition").notNull(),
    sequence: integer("sequence").notNull(),
    attempt: integer("attempt").notNull(),
    outcome: text("outcome").notNull(),
    error: text("error"),
    at: integer("at", { mode: "timestamp_ms" }).notNull(),
    /** When the queue accepted the message (Message.timestamp): "sent". */
    sentAt: integer("sent_at", { mode: "timestamp_ms" }),
  },
  (t) => [index("delivery_attempts_event").on(t.topic, t.partition, t.sequence)],
);

/**
 * The metrics ring (workers/platform/metrics-window.ts): a bounded series of snapshots of each
 * subscription's and partition's cumulative counters, one per `slot` (the start, in ms since the
 * epoch, of a time bucket of metrics.windowSeconds ÷ 30), written by GET /v1/metrics and /v1/health and pruned beyond the
 * window + history. Windowed figures (error rate, rates, latency quantiles) are now − the snapshot
 * a window ago; the dashboard's charts read the series (GET /v1/metrics/history).
 * `kind`: `subscription` or `partition`; `name`: the subscription, or `<topic>/<partition>`.
 */
export const metricsSnapshots = sqliteTable(
  "metrics_snapshots",
  {
    slot: integer("slot").notNull(),
    kind: text("kind").notNull(),
    name: text("name").notNull(),
    /** When it was taken, ms since epoch (within its slot). */
    at: integer("at").notNull(),
    /** The counters as JSON (metrics-window.ts `SnapshotBody`). */
    body: text("body").notNull(),
  },
  (t) => [primaryKey({ columns: [t.kind, t.name, t.slot] }), index("metrics_snapshots_slot").on(t.slot)],
);

/**
 * The schema registry's runtime versions (docs/schemas.md): data schemas registered with
 * POST /v1/topics/{topic}/types/{type}/schemas, numbered after the versions eventline.config.ts
 * declares (1..n). Rows are never updated or deleted: an event stored with a `dataschema` can always
 * be re-validated against it. `schema` is the JSON Schema (draft 2020-12) as its author wrote it (member order kept);
 * `fingerprint` its SHA-256 (hex), so registering the same schema again answers the existing version.
 */
export const schemaVersions = sqliteTable(
  "schema_versions",
  {
    topic: text("topic").notNull(),
    type: text("type").notNull(),
    version: integer("version").notNull(),
    schema: text("schema").notNull(),
    fingerprint: text("fingerprint").notNull(),
    /** The compatibility mode it was checked under. */
    compatibility: text("compatibility").notNull(),
    /** The principal that registered it (as in the audit log). */
    createdBy: text("created_by"),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.topic, t.type, t.version] }),
    uniqueIndex("schema_versions_fingerprint").on(t.topic, t.type, t.fingerprint),
  ],
);

/**
 * Window results of processors declared with `output.table` (docs/processors.md), upserted by
 * (processor, key, window start): the last revision, and whether it is final. `data` is the
 * result event's data (`{ key, windowStart, windowEnd, …aggregates }`, RFC 3339 bounds).
 */
export const processorWindows = sqliteTable(
  "processor_windows",
  {
    processor: text("processor").notNull(),
    key: text("key").notNull(),
    windowStart: integer("window_start").notNull(),
    windowEnd: integer("window_end").notNull(),
    revision: integer("revision").notNull(),
    final: integer("final", { mode: "boolean" }).notNull(),
    data: text("data").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.processor, t.key, t.windowStart] }), index("processor_windows_end").on(t.processor, t.windowEnd)],
);

/** The orders demo's `revenue-per-minute` results as a view: one row per currency and minute. */
export const revenuePerMinute = sqliteView("revenue_per_minute").as((qb) =>
  qb
    .select({
      currency: sql<string>`${processorWindows.key}`.as("currency"),
      windowStart: sql<string>`json_extract(${processorWindows.data}, '$.windowStart')`.as("window_start"),
      windowEnd: sql<string>`json_extract(${processorWindows.data}, '$.windowEnd')`.as("window_end"),
      count: sql<number>`json_extract(${processorWindows.data}, '$.count')`.as("count"),
      sum: sql<number>`json_extract(${processorWindows.data}, '$.sum')`.as("sum"),
      final: processorWindows.final,
    })
    .from(processorWindows)
    .where(sql`${processorWindows.processor} = 'revenue-per-minute'`),
);
