import { canonicalJson } from "../../shared/json";
import { createState, type EngineState, type ProcessorSpec, restoreState } from "../../shared/processing";
import { migrate, type SqlMigration } from "../sql-migrations";
import { type Backfill, backfillSchema } from "./backfill";

/**
 * A processor instance's storage (ADR 0053): its engine state (which carries the per-input-partition
 * checkpoints), the internal-topic sequence it has applied through, its backfill's position (ADR
 * 0058), and an outbox of what its steps produced (results to append, late and skipped inputs to
 * dead-letter, window rows to upsert). A step's state, checkpoints and outputs are written in ONE
 * transaction, so a crash either keeps all of a step or
 * none of it; outputs leave the outbox only after they were appended (idempotently, by id).
 */

const MIGRATIONS: readonly SqlMigration[] = [
  {
    id: 1,
    name: "processor state and outbox",
    up: ({ sql }) => {
      sql.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
      sql.exec(
        `CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 1), spec TEXT NOT NULL, json TEXT NOT NULL, applied INTEGER NOT NULL, updated_at INTEGER NOT NULL)`,
      );
      sql.exec(`CREATE TABLE outputs (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, body TEXT NOT NULL)`);
    },
  },
  {
    id: 2,
    name: "backfill position",
    // NULL: no backfill under way (states written before backfills had none either).
    up: (db) => db.addColumn("state", "backfill", "TEXT"),
  },
];

/** `skipped`: an input event a backfill found unusable (no key, too far ahead), a dead letter as the re-partition step records it. */
export type OutputKind = "result" | "late" | "skipped";

export type Output = {
  seq: number;
  kind: OutputKind;
  body: string;
};

export interface Loaded {
  state: EngineState;
  /** The internal topic's sequence applied through (0: nothing yet). */
  applied: number;
  /** True when a stored state was dropped because the configured spec changed (a rebuild follows). */
  specChanged: boolean;
  /** False when there is no state for the spec yet: the instance starts with a backfill. */
  started: boolean;
  /** The backfill under way, if any. */
  backfill: Backfill | null;
}

export class ProcessorStore {
  constructor(private readonly storage: DurableObjectStorage) {
    migrate(storage, MIGRATIONS, () => false);
  }

  private get sql(): SqlStorage {
    return this.storage.sql;
  }

  meta(key: string): string | undefined {
    return this.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = ?`, key).toArray()[0]?.value;
  }

  setMeta(key: string, value: string): void {
    this.sql.exec(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value);
  }

  /** The stored state if it was made for `spec`; a fresh one otherwise (then `specChanged` says whether one was dropped). */
  load(spec: ProcessorSpec): Loaded {
    const row = this.sql
      .exec<{ spec: string; json: string; applied: number; backfill: string | null }>(
        `SELECT spec, json, applied, backfill FROM state WHERE id = 1`,
      )
      .toArray()[0];
    const wanted = canonicalJson(spec);
    const fresh = { state: createState(spec), applied: 0, started: false, backfill: null };
    if (row === undefined) return { ...fresh, specChanged: false };
    if (row.spec !== wanted) return { ...fresh, specChanged: true };
    const backfill = row.backfill === null ? null : backfillSchema.parse(JSON.parse(row.backfill));
    return { state: restoreState(row.json), applied: row.applied, specChanged: false, started: true, backfill };
  }

  /**
   * One step, in one transaction: the state, the internal checkpoint and the step's outputs. A
   * state of 1,000 keys is ~240 KB of JSON: callers commit once per batch, not per event.
   */
  commit(
    state: EngineState,
    applied: number,
    backfill: Backfill | null,
    outputs: { kind: OutputKind; body: unknown }[],
    now: number,
  ): void {
    this.storage.transactionSync(() => {
      this.writeState(state, applied, backfill, now);
      for (const o of outputs) this.sql.exec(`INSERT INTO outputs (kind, body) VALUES (?, ?)`, o.kind, JSON.stringify(o.body));
    });
  }

  private writeState(state: EngineState, applied: number, backfill: Backfill | null, now: number): void {
    this.sql.exec(
      `INSERT INTO state (id, spec, json, applied, backfill, updated_at) VALUES (1, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, json = excluded.json, applied = excluded.applied,
         backfill = excluded.backfill, updated_at = excluded.updated_at`,
      canonicalJson(state.spec),
      JSON.stringify(state),
      applied,
      backfill === null ? null : JSON.stringify(backfill),
      now,
    );
  }

  /**
   * Starts over (a new instance, a reset, a changed spec): a fresh state and no unsent outputs, the
   * internal topic taken from `applied` on, after the backfill (ADR 0058).
   */
  start(spec: ProcessorSpec, applied: number, backfill: Backfill | null, now: number): EngineState {
    const state = createState(spec);
    this.storage.transactionSync(() => {
      this.sql.exec(`DELETE FROM outputs`);
      this.writeState(state, applied, backfill, now);
    });
    return state;
  }

  pending(limit: number): Output[] {
    return this.sql.exec<Output>(`SELECT seq, kind, body FROM outputs ORDER BY seq LIMIT ?`, limit).toArray();
  }

  pendingCount(): number {
    return this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM outputs`).one().n;
  }

  done(throughSeq: number): void {
    this.sql.exec(`DELETE FROM outputs WHERE seq <= ?`, throughSeq);
  }
}
