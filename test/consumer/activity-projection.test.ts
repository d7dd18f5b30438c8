import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { type ActivityEvent, activityProjection } from "../../workers/platform/consumers/activity";

/**
 * The activity projection writes a batch's events as one upsert per (topic, type) (its
 * handleBatch). That must leave the read model exactly as one upsert per event in the same order.
 */

const rows = async (topics: string[]) =>
  (
    await env.DB.prepare(
      `SELECT topic, type, events, last_event_id, last_seen_at FROM event_type_activity
       WHERE topic IN (${topics.map(() => "?").join(", ")}) ORDER BY topic, type`,
    )
      .bind(...topics)
      .all()
  ).results;

beforeEach(async () => {
  await env.DB.prepare("DELETE FROM event_type_activity WHERE topic LIKE 'proj-%'").run();
});

describe("activity projection", () => {
  it("one upsert per (topic, type) of a set leaves the rows that one upsert per event leaves", async () => {
    const events = (topic: string): ActivityEvent[] =>
      // Two types interleaved, times out of order (the latest is not the last), a row that exists before.
      [5, 9, 7, 7, 3, 8].map((t, i) => ({ topic, type: i % 2 === 0 ? "a" : "b", id: `${topic}-${i}`, receivedAt: 1_000 + t }));
    for (const topic of ["proj-one", "proj-set"]) {
      await env.DB.batch(activityProjection.statements(env.DB, [{ topic, type: "a", id: "before", receivedAt: 1_006 }]));
    }
    await env.DB.batch(events("proj-one").flatMap((e) => activityProjection.statements(env.DB, [e])));
    const set = activityProjection.statements(env.DB, events("proj-set"));
    expect(set).toHaveLength(2);
    await env.DB.batch(set);

    const one = await rows(["proj-one"]);
    expect(one).toEqual([
      { topic: "proj-one", type: "a", events: 4, last_event_id: "proj-one-4", last_seen_at: 1_007 },
      { topic: "proj-one", type: "b", events: 3, last_event_id: "proj-one-5", last_seen_at: 1_009 },
    ]);
    const other = (await rows(["proj-set"])).map((r) => ({
      ...r,
      topic: "proj-one",
      last_event_id: String(r.last_event_id).replace("proj-set", "proj-one"),
    }));
    expect(other).toEqual(one);
  });

  it("writes nothing for no events", () => {
    expect(activityProjection.statements(env.DB, [])).toEqual([]);
  });
});
