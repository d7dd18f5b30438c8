import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { REPLAY_JOB_MIGRATIONS } from "../../durable-objects/replay-job";
import { migrate, tableExists } from "../../durable-objects/sql-migrations";

/**
 * ReplayJob's schema as numbered migrations: a job object from before them (its tables created
 * at start, the counter columns and the watch table added by PRAGMA checks, no `_migrations`) is
 * adopted once with its rows intact; a current one is left alone.
 */

const columnsOf = (sql: SqlStorage, table: string) =>
  sql
    .exec<{ name: string }>(`PRAGMA table_info(${table})`)
    .toArray()
    .map((c) => c.name);

describe("ReplayJob migrations", () => {
  it("a fresh job object is at the last migration, and running them again changes nothing", async () => {
    await runInDurableObject(env.REPLAY_JOB.getByName("rpl_migrations_fresh"), (_job, { storage }) => {
      const ids = storage.sql
        .exec<{ id: number }>("SELECT id FROM _migrations ORDER BY id")
        .toArray()
        .map((r) => r.id);
      expect(ids).toEqual(REPLAY_JOB_MIGRATIONS.map((m) => m.id));
      expect(migrate(storage, REPLAY_JOB_MIGRATIONS, (sql) => tableExists(sql, "job"))).toEqual({ applied: [], adopted: false });
    });
  });

  it("an object from before the migrations (no counters, no watch, no record) is adopted with its rows", async () => {
    await runInDurableObject(env.REPLAY_JOB.getByName("rpl_migrations_legacy"), (_job, { storage }) => {
      const { sql } = storage;
      // Lay the storage out as the job's first code did.
      for (const table of ["_migrations", "watch", "positions"]) sql.exec(`DROP TABLE IF EXISTS ${table}`);
      sql.exec(`CREATE TABLE positions (
        partition INTEGER PRIMARY KEY, from_seq INTEGER NOT NULL, to_seq INTEGER NOT NULL,
        position INTEGER NOT NULL, prev INTEGER NOT NULL, scanned INTEGER NOT NULL, sent INTEGER NOT NULL,
        pending_to INTEGER, pending_sent INTEGER
      )`);
      sql.exec("INSERT INTO positions (partition, from_seq, to_seq, position, prev, scanned, sent) VALUES (2, 1, 50, 20, 19, 20, 7)");

      expect(migrate(storage, REPLAY_JOB_MIGRATIONS, (s) => tableExists(s, "job"))).toEqual({ applied: [1, 2], adopted: true });
      expect(columnsOf(sql, "positions")).toEqual(expect.arrayContaining(["handled", "already_handled", "dead_lettered", "held"]));
      expect(tableExists(sql, "watch")).toBe(true);
      expect(sql.exec("SELECT partition, position, sent, handled, held FROM positions").toArray()).toEqual([
        { partition: 2, position: 20, sent: 7, handled: 0, held: 0 },
      ]);
      expect(migrate(storage, REPLAY_JOB_MIGRATIONS, (s) => tableExists(s, "job"))).toEqual({ applied: [], adopted: false });
    });
  });
});
