import { configuredConsumer } from "./configured";

/**
 * The built-in `activity` subscription: a read model of what flows through each topic, by event
 * type (count, last event, last seen), written with the consumer SDK like any user consumer.
 */

export interface ActivityEvent {
  topic: string;
  type: string;
  id: string;
  receivedAt: number;
}

const UPSERT = `INSERT INTO event_type_activity (topic, type, events, last_event_id, last_seen_at) VALUES (?, ?, ?, ?, ?)
  ON CONFLICT (topic, type) DO UPDATE SET events = events + excluded.events, last_event_id = excluded.last_event_id,
    last_seen_at = MAX(last_seen_at, excluded.last_seen_at)`;

/** The projection's effects; a module object so tests can inject faults into it. */
export const activityProjection = {
  /**
   * One upsert per (topic, type) of `events`, taken in the order given: the same row as one upsert
   * per event in that order would leave (count added, the last event's id, the latest time), for
   * a fraction of the statements — D1 CPU grows with statements, not rows (bench/profile.mjs).
   */
  statements(db: D1Database, events: readonly ActivityEvent[]): D1PreparedStatement[] {
    const rows = new Map<string, { topic: string; type: string; events: number; lastId: string; lastSeen: number }>();
    for (const e of events) {
      const key = JSON.stringify([e.topic, e.type]);
      const row = rows.get(key);
      if (row === undefined) rows.set(key, { topic: e.topic, type: e.type, events: 1, lastId: e.id, lastSeen: e.receivedAt });
      else {
        row.events++;
        row.lastId = e.id;
        row.lastSeen = Math.max(row.lastSeen, e.receivedAt);
      }
    }
    return [...rows.values()].map((r) => db.prepare(UPSERT).bind(r.topic, r.type, r.events, r.lastId, r.lastSeen));
  },
};

export const activityConsumer = configuredConsumer(
  "activity",
  async (event, { env, delivery }) =>
    activityProjection.statements(env.DB, [{ topic: delivery.topic, type: event.type, id: event.id, receivedAt: delivery.committedAt }]),
  {
    // A batch's events in one call: the SDK commits them together anyway, in this order. If it
    // throws (one event the projection refuses), each event runs the handler above alone.
    handleBatch: async (items) => {
      const db = items[0]?.ctx.db;
      return db === undefined
        ? []
        : activityProjection.statements(
            db,
            items.map(({ event, ctx }) => ({
              topic: ctx.delivery.topic,
              type: event.type,
              id: event.id,
              receivedAt: ctx.delivery.committedAt,
            })),
          );
    },
  },
);
