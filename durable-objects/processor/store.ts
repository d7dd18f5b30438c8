import { canonicalJson } from "../../shared/json";
import { createState, type EngineState, type ProcessorSpec, restoreState } from "../../shared/processing";
import { migrate, type SqlMigration } from "../sql-migrations";

/**
 * A processor instance's storage (ADR 0053): its engine state (which carries the per-input-partition
 * checkpoints), the internal-topic sequence it has applied through, and an outbox of what its steps
 * produced (results to append, late events to dead-letter, window rows to upsert). A step's state,
 * checkpoint and outputs are written in ONE transaction, so a crash either keeps all of a step or
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
];

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
      .exec<{ spec: string; json: string; applied: number }>(`SELECT spec, json, applied FROM state WHERE id = 1`)
      .toArray()[0];
    const wanted = canonicalJson(spec);
    if (row === undefined) return { state: createState(spec), applied: 0, specChanged: false };
    if (row.spec !== wanted) return { state: createState(spec), applied: 0, specChanged: true };
    return { state: restoreState(row.json), applied: row.applied, specChanged: false };
  }

  /**
   * One step, in one transaction: the state, the internal checkpoint and the step's outputs. A
   * state of 1,000 keys is ~240 KB of JSON: callers commit once per batch, not per event.
   */
  commit(state: EngineState, applied: number, outputs: { kind: OutputKind; body: unknown }[], now: number): void {
    const spec = canonicalJson(state.spec);
    const json = JSON.stringify(state);
    this.storage.transactionSync(() => {
      this.sql.exec(
        `INSERT INTO state (id, spec, json, applied, updated_at) VALUES (1, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, json = excluded.json, applied = excluded.applied, updated_at = excluded.updated_at`,
        spec,
        json,
        applied,
        now,
      );
      for (const o of outputs) this.sql.exec(`INSERT INTO outputs (kind, body) VALUES (?, ?)`, o.kind, JSON.stringify(o.body));
    });
  }

  /** Forgets the state and the checkpoint (a reset): the next steps rebuild from the internal topic's first event. */
  reset(spec: ProcessorSpec, now: number): EngineState {
    const state = createState(spec);
    this.storage.transactionSync(() => {
      this.sql.exec(`DELETE FROM outputs`);
      this.sql.exec(`DELETE FROM state`);
    });
    this.commit(state, 0, [], now);
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
