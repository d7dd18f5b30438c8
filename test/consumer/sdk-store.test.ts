import { env } from "cloudflare:workers";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CHECKPOINT_WALK, checkpointWalkStatements, readCheckpoint } from "../../sdk/consumer-store";
import { createEffectsTable, resetConsumerState } from "./helpers";

/**
 * The checkpoint walk runs in every settle batch. Its cost must not grow with the records a
 * subscription has settled: each step looks up one record by (subscription, topic, partition, prev).
 */

const at = { subscription: "test-sub", topic: "walk", partition: 0 };

/** Settled records for sequences `from`…`to` of `at`'s partition, chained by prev (one statement). */
async function settled(from: number, to: number): Promise<void> {
  const rows = Array.from({ length: to - from + 1 }, (_, i) => from + i);
  await env.DB.prepare(
    `INSERT INTO processed_events (subscription, source, event_id, topic, partition, sequence, prev, outcome, processed_at)
     SELECT ?1, '/walk', 'e' || j.value, ?2, ?3, j.value, j.value - 1, 'handled', 0 FROM json_each(?4) j`,
  )
    .bind(at.subscription, at.topic, at.partition, JSON.stringify(rows))
    .run();
}

beforeAll(createEffectsTable);
beforeEach(resetConsumerState);

describe("checkpoint walk", () => {
  it("looks each step up by prev in processed_events_chain, never scanning the partition's records", async () => {
    const { results } = await env.DB.prepare(`EXPLAIN QUERY PLAN ${CHECKPOINT_WALK}`)
      .bind(at.subscription, at.topic, at.partition, 0)
      .all<{ detail: string }>();
    const details = results.map((r) => r.detail);
    expect(details).toContain("SEARCH p USING INDEX processed_events_chain (subscription=? AND topic=? AND partition=? AND prev=?)");
    expect(details.filter((d) => /processed_events|\bp\b/.test(d) && d.startsWith("SCAN"))).toEqual([]);
  });

  it("moves along the chain of settled records up to its first gap, over a long history, and never back", async () => {
    await settled(1, 3000);
    await settled(3002, 3010); // 3001 is not settled yet
    await env.DB.batch(checkpointWalkStatements(env.DB, at));
    expect(await readCheckpoint(env.DB, at)).toBe(3000);

    await settled(3001, 3001);
    await env.DB.batch(checkpointWalkStatements(env.DB, at));
    expect(await readCheckpoint(env.DB, at)).toBe(3010);

    // A record settled behind the checkpoint (a redriven letter) does not move it back.
    await env.DB.prepare("UPDATE checkpoints SET sequence = 3010 WHERE subscription = ?").bind(at.subscription).run();
    await env.DB.batch(checkpointWalkStatements(env.DB, at));
    expect(await readCheckpoint(env.DB, at)).toBe(3010);
  });
});
