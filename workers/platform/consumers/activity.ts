import { configuredConsumer } from "./configured";

/**
 * The built-in `activity` subscription: a read model of what flows through each topic, by event
 * type (count, last event, last seen), written with the consumer SDK like any user consumer.
 */

/** The projection's effects; a module object so tests can inject faults into it. */
export const activityProjection = {
  statements(db: D1Database, event: { topic: string; type: string; id: string; receivedAt: number }): D1PreparedStatement[] {
    return [
      db
        .prepare(
          `INSERT INTO event_type_activity (topic, type, events, last_event_id, last_seen_at) VALUES (?, ?, 1, ?, ?)
           ON CONFLICT (topic, type) DO UPDATE SET events = events + 1, last_event_id = excluded.last_event_id,
             last_seen_at = MAX(last_seen_at, excluded.last_seen_at)`,
        )
        .bind(event.topic, event.type, event.id, event.receivedAt),
    ];
  },
};

export const activityConsumer = configuredConsumer("activity", async (event, { env, delivery }) =>
  activityProjection.statements(env.DB, { topic: delivery.topic, type: event.type, id: event.id, receivedAt: delivery.committedAt }),
);
