/**
 * The partition log's schema as the code before numbered migrations (ADR 0037) left it in an
 * object's storage: a frozen copy of that constructor's DDL, for the tests that load such an
 * object with today's code. Never edit it to follow the current schema: it is history.
 */

/** What the last pre-migration constructor created: every table, every column, no `_migrations`. */
export function createPreMigrationTables(sql: SqlStorage): void {
  createOldestTables(sql);
  sql.exec(`ALTER TABLE events ADD COLUMN stream_version INTEGER`);
  sql.exec(`CREATE UNIQUE INDEX IF NOT EXISTS events_stream ON events (subject, stream_version) WHERE stream_version IS NOT NULL`);
  sql.exec(
    `CREATE TABLE IF NOT EXISTS streams (subject TEXT PRIMARY KEY, version INTEGER NOT NULL, last_sequence INTEGER NOT NULL, updated_at INTEGER NOT NULL)`,
  );
  sql.exec(`CREATE TABLE IF NOT EXISTS stream_archive (
    subject TEXT NOT NULL, stream_version INTEGER NOT NULL, sequence INTEGER NOT NULL, PRIMARY KEY (subject, stream_version)
  ) WITHOUT ROWID`);
  sql.exec(`CREATE TABLE IF NOT EXISTS snapshots (
    subject TEXT PRIMARY KEY, version INTEGER NOT NULL, schema INTEGER NOT NULL, state TEXT NOT NULL, created_at INTEGER NOT NULL
  )`);
  sql.exec(`ALTER TABLE outbox ADD COLUMN sent_at INTEGER`);
  sql.exec(`ALTER TABLE outbox ADD COLUMN due_at INTEGER`);
  sql.exec(`ALTER TABLE outbox ADD COLUMN sends INTEGER NOT NULL DEFAULT 0`);
  sql.exec(`CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (subscription, sequence) WHERE sent_at IS NULL`);
  sql.exec(`CREATE INDEX IF NOT EXISTS outbox_due ON outbox (subscription, due_at) WHERE due_at IS NOT NULL`);
  sql.exec(`CREATE INDEX IF NOT EXISTS outbox_resent ON outbox (subscription, due_at) WHERE sends > 1`);
  sql.exec(`ALTER TABLE routing ADD COLUMN redelivered INTEGER NOT NULL DEFAULT 0`);
  sql.exec(`CREATE TABLE IF NOT EXISTS segments (
    first INTEGER PRIMARY KEY, last INTEGER NOT NULL, count INTEGER NOT NULL,
    first_received_at INTEGER NOT NULL, last_received_at INTEGER NOT NULL,
    bytes INTEGER NOT NULL, sha256 TEXT NOT NULL, chain TEXT NOT NULL, key TEXT NOT NULL
  )`);
  sql.exec(`CREATE TABLE IF NOT EXISTS runtime_routes (name TEXT PRIMARY KEY, filter TEXT)`);
  sql.exec(`CREATE TABLE IF NOT EXISTS append_metrics (
    id INTEGER PRIMARY KEY CHECK (id = 1), bytes INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0, latency TEXT
  )`);
  sql.exec(`INSERT OR IGNORE INTO append_metrics (id) VALUES (1)`);
}

/** An early object: the log and its outbox only, before streams, delivery state, the archive and metrics. */
export function createOldestTables(sql: SqlStorage): void {
  sql.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
  sql.exec(`CREATE TABLE IF NOT EXISTS events (
    sequence INTEGER PRIMARY KEY, source TEXT NOT NULL, id TEXT NOT NULL, hash TEXT NOT NULL, type TEXT NOT NULL,
    subject TEXT, traceparent TEXT NOT NULL, received_at INTEGER NOT NULL, body TEXT NOT NULL
  )`);
  sql.exec(`CREATE UNIQUE INDEX IF NOT EXISTS events_source_id ON events (source, id)`);
  sql.exec(`CREATE TABLE IF NOT EXISTS outbox (
    subscription TEXT NOT NULL, sequence INTEGER NOT NULL, prev INTEGER NOT NULL, PRIMARY KEY (subscription, sequence)
  )`);
  sql.exec(`CREATE TABLE IF NOT EXISTS routing (subscription TEXT PRIMARY KEY, last_sequence INTEGER NOT NULL)`);
}

/** Empties an object's storage (every table the current code made), so a test can lay down an old one. */
export function dropAllTables(sql: SqlStorage): void {
  const tables = sql
    .exec<{ name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'`)
    .toArray();
  for (const { name } of tables) sql.exec(`DROP TABLE "${name}"`);
}
