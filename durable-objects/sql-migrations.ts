/**
 * Numbered schema migrations for a Durable Object's SQLite storage (after cloudflare/actors'
 * `sql-schema-migrations.ts`). Each migration is a function, applied once, in order, and recorded
 * in `_migrations`; the constructor runs `migrate()` inside `blockConcurrencyWhile`, so no call
 * sees a half-migrated object. Every pending migration and its record go in ONE transaction: an
 * object is at one version or the next, never between.
 *
 * Objects created before their class kept `_migrations` (their schema grew through
 * `CREATE … IF NOT EXISTS` and `PRAGMA table_info` + `ALTER` checks at every start) are adopted
 * once: `isLegacy` recognises them, and their first run applies every migration in adopting mode,
 * where tables and indexes are created only if missing and `addColumn` adds only missing columns.
 * From then on the record says what is applied, and nothing inspects the schema again.
 */

export interface SqlMigration {
  /** 1, 2, 3, …: strictly increasing; a migration keeps its id (and meaning) forever. */
  id: number;
  /** What it does, recorded beside its id. */
  name: string;
  up(db: MigrationContext): void;
}

export interface MigrationContext {
  sql: SqlStorage;
  /**
   * `ALTER TABLE table ADD COLUMN column declaration`. When adopting a legacy object the column
   * may exist already (its old code added it): then nothing is done.
   */
  addColumn(table: string, column: string, declaration: string): void;
}

export interface MigrationResult {
  /** Ids applied by this call, in order (empty: the object was current). */
  applied: number[];
  /** True when the object predates `_migrations` and was adopted by this call. */
  adopted: boolean;
}

type Storage = Pick<DurableObjectStorage, "sql" | "transactionSync">;

export function tableExists(sql: SqlStorage, table: string): boolean {
  return sql.exec(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`, table).toArray().length > 0;
}

function columnsOf(sql: SqlStorage, table: string): Set<string> {
  return new Set(
    sql
      .exec<{ name: string }>(`PRAGMA table_info(${table})`)
      .toArray()
      .map((c) => c.name),
  );
}

/**
 * Brings the storage to the last of `migrations`. `isLegacy(sql)` is asked only when the storage
 * has no `_migrations` table yet: true when it holds state of the class's pre-migration code.
 */
export function migrate(storage: Storage, migrations: readonly SqlMigration[], isLegacy: (sql: SqlStorage) => boolean): MigrationResult {
  migrations.forEach((m, i) => {
    const previous = migrations[i - 1];
    if (!Number.isInteger(m.id) || m.id < 1 || (previous !== undefined && m.id <= previous.id)) {
      throw new Error(`migration ids must be increasing positive integers (${m.name}: ${m.id})`);
    }
  });
  const { sql } = storage;
  const tracked = tableExists(sql, "_migrations");
  const adopted = !tracked && isLegacy(sql);
  const done = new Set(
    tracked
      ? sql
          .exec<{ id: number }>(`SELECT id FROM _migrations`)
          .toArray()
          .map((r) => r.id)
      : [],
  );
  const pending = migrations.filter((m) => !done.has(m.id));
  if (pending.length === 0) return { applied: [], adopted: false };
  const context: MigrationContext = {
    sql,
    addColumn(table, column, declaration) {
      if (adopted && columnsOf(sql, table).has(column)) return;
      sql.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${declaration}`);
    },
  };
  storage.transactionSync(() => {
    sql.exec(`CREATE TABLE IF NOT EXISTS _migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
    const now = Date.now();
    for (const m of pending) {
      m.up(context);
      sql.exec(`INSERT INTO _migrations (id, name, applied_at) VALUES (?, ?, ?)`, m.id, m.name, now);
    }
  });
  return { applied: pending.map((m) => m.id), adopted };
}
