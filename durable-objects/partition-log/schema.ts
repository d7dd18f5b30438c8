import { type MigrationResult, migrate, type SqlMigration, tableExists } from "../sql-migrations";
import { segmentsMigration } from "./archive/segments";
import { deliveryMigration, directRangesMigration, outboxMigration } from "./delivery/state";
import { eventsMigration } from "./log";
import { appendMetricsMigration } from "./metrics";
import { runtimeRoutesMigration } from "./routes";
import { streamsMigration } from "./streams";

/**
 * The partition log's schema, as numbered migrations (durable-objects/sql-migrations.ts). Each
 * capability defines the migrations of the tables it owns; this list is their one order. A new
 * schema change is a new entry at the end, with the next id; an applied one never changes.
 */
export const PARTITION_LOG_MIGRATIONS: readonly SqlMigration[] = [
  eventsMigration, // 1: meta, events (commit + idempotency)
  streamsMigration, // 2: events.stream_version, streams, stream_archive, snapshots
  outboxMigration, // 3: outbox, routing
  deliveryMigration, // 4: outbox delivery state, routing.redelivered
  segmentsMigration, // 5: segments (the archive's manifest)
  runtimeRoutesMigration, // 6: runtime_routes
  appendMetricsMigration, // 7: append_metrics
  directRangesMigration, // 8: outbox.through (direct routes' range rows)
];

/**
 * Brings the object's storage to the current schema. An object created before the log kept
 * `_migrations` always has an `events` table (its constructor created every table it knew at
 * once): it is adopted, keeping every row.
 */
export function migratePartitionLog(storage: Pick<DurableObjectStorage, "sql" | "transactionSync">): MigrationResult {
  return migrate(storage, PARTITION_LOG_MIGRATIONS, (sql) => tableExists(sql, "events"));
}
