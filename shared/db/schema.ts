import { integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * D1 schema (drizzle-orm). `npm run db:generate` turns changes here into a migration in
 * `migrations/`, which `npm start`, `npm run db:migrate:local` and the tests apply.
 *
 * The consumer-side tables live here from the start so that the migration pipeline (drizzle-kit →
 * wrangler → tests) is exercised end to end: consumers record each handled event id in the same
 * `db.batch()` as their effects (exactly-once effects), and the highest contiguous sequence per
 * partition (lag = head − checkpoint).
 */

export const processedEvents = sqliteTable(
  "processed_events",
  {
    subscription: text("subscription").notNull(),
    source: text("source").notNull(),
    eventId: text("event_id").notNull(),
    topic: text("topic").notNull(),
    partition: integer("partition").notNull(),
    sequence: integer("sequence").notNull(),
    processedAt: integer("processed_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.subscription, t.source, t.eventId] })],
);

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
