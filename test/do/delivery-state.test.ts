import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { PartitionLog } from "../../durable-objects/partition-log";
import { sequencesOf } from "../../sdk/messages";
import { event, expectAccepted, partitionKeyFor, postBatch, topicConfig, waitFor } from "../helpers";

/**
 * The partition's delivery state (ADR 0030) is durable: what was sent and not acknowledged survives
 * a restart and is sent again by the alarm; state written before the columns existed still loads.
 */

const PARTITIONS = topicConfig("events").partitions;

const handled = async (ids: string[]) =>
  (
    await env.DB.prepare(
      `SELECT event_id FROM processed_events WHERE subscription = 'activity' AND outcome = 'handled' AND event_id IN (${ids.map(() => "?").join(",")})`,
    )
      .bind(...ids)
      .all<{ event_id: string }>()
  ).results.length;

describe("delivery state in the partition log", () => {
  it("messages lost before a restart are sent again by the alarm after it, from the persisted rows", async () => {
    const partition = 1;
    const stub = env.PARTITION_LOG.getByName(`events/${partition}`);
    const lost: number[] = [];
    await runInDurableObject(stub, (instance: PartitionLog) => {
      instance.testing.send = async (_binding, bodies) => {
        lost.push(...bodies.filter((b) => b.subscription === "activity").flatMap(sequencesOf));
      };
    });
    const key = partitionKeyFor(partition, PARTITIONS, "restart");
    const events = Array.from({ length: 5 }, (_, i) => event({ id: `restart-${i}`, type: "delivery.restart", partitionkey: key }));
    await expectAccepted(await postBatch("events", events));
    await waitFor(
      async () => lost.length,
      (n) => n >= 5,
      5_000,
    );
    // The process stops: the instance (and its seam) is gone, the rows and the alarm are not.
    await evictDurableObject(stub);
    expect((await stub.stats()).inTransit.activity ?? 0).toBeGreaterThanOrEqual(5);
    // As if the redelivery timeout had passed.
    await runInDurableObject(stub, (_instance, state) => {
      state.storage.sql.exec("UPDATE outbox SET due_at = ? WHERE subscription = 'activity' AND due_at IS NOT NULL", Date.now() - 1);
    });
    await runDurableObjectAlarm(stub);
    const ids = events.map((e) => String(e.id));
    expect(
      await waitFor(
        () => handled(ids),
        (n) => n === 5,
      ),
    ).toBe(5);
    expect((await stub.stats()).redelivered.activity ?? 0).toBeGreaterThanOrEqual(5);
  });

  it("an outbox written before delivery state existed loads, and its rows are sent as before", async () => {
    const partition = 2;
    const stub = env.PARTITION_LOG.getByName(`events/${partition}`);
    const key = partitionKeyFor(partition, PARTITIONS, "legacy");
    // Hold the relay so the rows stay unsent, then take the schema back to its previous shape.
    await runInDurableObject(stub, (instance: PartitionLog) => {
      instance.testing.send = async () => {
        throw new Error("queue held by the test");
      };
    });
    const events = Array.from({ length: 3 }, (_, i) => event({ id: `legacy-${i}`, type: "delivery.legacy", partitionkey: key }));
    await expectAccepted(await postBatch("events", events));
    await runInDurableObject(stub, (_instance, state) => {
      const sql = state.storage.sql;
      for (const index of ["outbox_unsent", "outbox_due", "outbox_resent"]) sql.exec(`DROP INDEX ${index}`);
      for (const column of ["sent_at", "due_at", "sends"]) sql.exec(`ALTER TABLE outbox DROP COLUMN ${column}`);
      sql.exec("ALTER TABLE routing DROP COLUMN redelivered");
      // Code of that time kept no migration record: the object is adopted (sql-migrations.ts).
      sql.exec("DROP TABLE _migrations");
    });
    await evictDurableObject(stub);
    // The new instance migrates in place; the rows, unsent, go out with the next relay (the alarm).
    const columns = await runInDurableObject(stub, (_instance, state) =>
      state.storage.sql
        .exec<{ name: string }>("PRAGMA table_info(outbox)")
        .toArray()
        .map((c) => c.name),
    );
    expect(columns).toEqual(expect.arrayContaining(["sent_at", "due_at", "sends"]));
    expect((await stub.stats()).outbox.activity ?? 0).toBeGreaterThanOrEqual(3);
    await runDurableObjectAlarm(stub);
    const ids = events.map((e) => String(e.id));
    expect(
      await waitFor(
        () => handled(ids),
        (n) => n === 3,
      ),
    ).toBe(3);
  });
});
