import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { readSettlement, type SettlementTarget, type WatchRow } from "../../durable-objects/replay/settlement";

/**
 * How a replay job counts what it watched (ADR 0035), from the settlement records the consumer SDK
 * writes in D1: handled after the job reached it, already handled before, dead-lettered — and, for
 * a `replays: "always"` webhook, an event it had counts only once its re-delivery has ended.
 */

const SUB = "settle-watch";
const TOPIC = "events";

async function settled(partition: number, sequence: number, outcome: string, at: number) {
  await env.DB.prepare(
    `INSERT INTO processed_events (subscription, source, event_id, topic, partition, sequence, prev, outcome, processed_at)
     VALUES (?, '/t', ?, ?, ?, ?, -1, ?, ?)`,
  )
    .bind(SUB, `${partition}-${sequence}`, TOPIC, partition, sequence, outcome, at)
    .run();
}

async function attempted(partition: number, sequence: number, outcome: string, at: number) {
  await env.DB.prepare(
    `INSERT INTO delivery_attempts (subscription, topic, partition, sequence, attempt, outcome, error, at, sent_at)
     VALUES (?, ?, ?, ?, 1, ?, NULL, ?, NULL)`,
  )
    .bind(SUB, TOPIC, partition, sequence, outcome, at)
    .run();
}

const row = (partition: number, sequence: number, at: number, kind: WatchRow["kind"] = "sent"): WatchRow => ({
  partition,
  sequence,
  kind,
  at,
});
const target = (overrides: Partial<SettlementTarget> = {}): SettlementTarget => ({
  subscription: SUB,
  topic: TOPIC,
  replays: "once",
  attempts: true,
  ...overrides,
});

describe("replay settlement", () => {
  it("counts per event: handled after the job reached it, already handled before, dead-lettered; unsettled ones are left", async () => {
    const t = 1_000_000;
    await settled(1, 1, "handled", t + 5); // applied by the replay
    await settled(1, 2, "handled", t - 5); // the consumer had it
    await settled(1, 3, "duplicate_id", t + 5); // its id was handled at another position
    await settled(1, 4, "dead_lettered", t + 5);
    await settled(2, 1, "handled", t + 1); // held: settled by the live delivery it was left to
    const rows = [row(1, 1, t), row(1, 2, t), row(1, 3, t), row(1, 4, t), row(1, 5, t), row(2, 1, t, "held")];
    const out = await readSettlement(env.DB, target(), rows);
    expect(out).toEqual([
      { partition: 1, sequence: 1, as: "handled" },
      { partition: 1, sequence: 2, as: "alreadyHandled" },
      { partition: 1, sequence: 3, as: "alreadyHandled" },
      { partition: 1, sequence: 4, as: "deadLettered" },
      { partition: 2, sequence: 1, as: "handled" },
    ]);
  });

  it("replays: always — an event the receiver had counts once its re-delivery ended; without attempt records, at once", async () => {
    const t = 2_000_000;
    await settled(3, 1, "handled", t - 100);
    await settled(3, 2, "handled", t - 100);
    await settled(3, 3, "handled", t - 100);
    await attempted(3, 1, "handled", t - 100); // the original delivery, not the replay's
    await attempted(3, 2, "handled", t + 10);
    await attempted(3, 3, "dead_lettered", t + 10);
    const rows = [row(3, 1, t), row(3, 2, t), row(3, 3, t)];
    expect(await readSettlement(env.DB, target({ replays: "always" }), rows)).toEqual([
      { partition: 3, sequence: 2, as: "alreadyHandled" },
      { partition: 3, sequence: 3, as: "deadLettered" },
    ]);
    expect(await readSettlement(env.DB, target({ replays: "always", attempts: false }), rows)).toEqual(
      rows.map((r) => ({ partition: 3, sequence: r.sequence, as: "alreadyHandled" })),
    );
  });

  it("reads more watched events than one statement binds", async () => {
    const t = 3_000_000;
    const rows = Array.from({ length: 200 }, (_, i) => row(4, i + 1, t));
    for (const r of rows.filter((r) => r.sequence % 2 === 0)) await settled(4, r.sequence, "handled", t + 1);
    const out = await readSettlement(env.DB, target(), rows);
    expect(out.map((o) => o.sequence)).toEqual(rows.filter((r) => r.sequence % 2 === 0).map((r) => r.sequence));
  });
});
