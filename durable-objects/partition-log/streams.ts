import config from "../../eventline.config";
import type { SqlMigration } from "../sql-migrations";
import type { LogHost } from "./host";
import { parseArgs, readInputSchema, readStreamSchema, snapshotInputSchema, subjectSchema } from "./input";
import type { LoadedStream, StreamInfo, StreamPage } from "./types";

/**
 * The streams capability (event sourcing): each stream event's version is in its row (and stored
 * body), and each stream's current version in `streams`, kept apart from the rows so a version
 * survives the trimming of old events; `stream_archive` says where trimmed stream events are (in
 * R2 segments), and `snapshots` keeps the latest snapshot per stream.
 */

export const streamsMigration: SqlMigration = {
  id: 2,
  name: "streams and snapshots",
  up: (db) => {
    db.addColumn("events", "stream_version", "INTEGER");
    db.sql.exec(`CREATE UNIQUE INDEX IF NOT EXISTS events_stream ON events (subject, stream_version) WHERE stream_version IS NOT NULL`);
    db.sql.exec(`CREATE TABLE IF NOT EXISTS streams (
      subject       TEXT PRIMARY KEY,
      version       INTEGER NOT NULL,
      last_sequence INTEGER NOT NULL,
      updated_at    INTEGER NOT NULL
    )`);
    db.sql.exec(`CREATE TABLE IF NOT EXISTS stream_archive (
      subject        TEXT NOT NULL,
      stream_version INTEGER NOT NULL,
      sequence       INTEGER NOT NULL,
      PRIMARY KEY (subject, stream_version)
    ) WITHOUT ROWID`);
    db.sql.exec(`CREATE TABLE IF NOT EXISTS snapshots (
      subject    TEXT PRIMARY KEY,
      version    INTEGER NOT NULL,
      schema     INTEGER NOT NULL,
      state      TEXT NOT NULL,
      created_at INTEGER NOT NULL
    )`);
  },
};

/** What streams read of the archive: the segment holding a sequence, and a segment's events. */
export interface SegmentReader {
  segmentHolding(sequence: number): { first: number; key: string } | undefined;
  lines(key: string): Promise<string[]>;
}

export class Streams {
  constructor(
    private readonly host: Pick<LogHost, "sql" | "now">,
    private readonly archive: SegmentReader,
  ) {}

  state(subject: string): { version: number; lastSequence: number } {
    const row = this.host.sql
      .exec<{ version: number; last_sequence: number }>(`SELECT version, last_sequence FROM streams WHERE subject = ?`, subject)
      .toArray()[0];
    return { version: row?.version ?? 0, lastSequence: row?.last_sequence ?? 0 };
  }

  /** Inside the append transaction: the streams' new versions. */
  record(versions: ReadonlyMap<string, { version: number; lastSequence: number }>, at: number): void {
    for (const [subject, { version, lastSequence }] of versions) {
      this.host.sql.exec(
        `INSERT INTO streams (subject, version, last_sequence, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (subject) DO UPDATE SET version = excluded.version, last_sequence = excluded.last_sequence, updated_at = excluded.updated_at`,
        subject,
        version,
        lastSequence,
        at,
      );
    }
  }

  /** Inside the trim transaction, before events up to `through` go: streams keep finding them, in the archive. */
  indexTrimmed(through: number): void {
    this.host.sql.exec(
      `INSERT OR IGNORE INTO stream_archive (subject, stream_version, sequence)
       SELECT subject, stream_version, sequence FROM events WHERE sequence <= ? AND stream_version IS NOT NULL`,
      through,
    );
  }

  /** A stream's current version (0 when it has no events). */
  info(subject: string): StreamInfo {
    const name = parseArgs(subjectSchema, subject, "subject");
    const row = this.host.sql
      .exec<{ version: number; last_sequence: number; updated_at: number }>(
        `SELECT version, last_sequence, updated_at FROM streams WHERE subject = ?`,
        name,
      )
      .toArray()[0];
    return { subject: name, version: row?.version ?? 0, lastSequence: row?.last_sequence ?? 0, updatedAt: row?.updated_at ?? null };
  }

  /** A stream's events from version `from`, in order, exactly as stored: trimmed ones from the archive. */
  async read(subject: string, from: number, limit: number): Promise<StreamPage> {
    const args = parseArgs(readStreamSchema, { subject, from, limit }, "stream read");
    const { sql } = this.host;
    // Both lookups before any await: a trim while segments are fetched must not open a gap.
    const archived = sql
      .exec<{ stream_version: number; sequence: number }>(
        `SELECT stream_version, sequence FROM stream_archive WHERE subject = ? AND stream_version >= ? ORDER BY stream_version LIMIT ?`,
        args.subject,
        args.from,
        args.limit,
      )
      .toArray();
    const local = sql
      .exec<{ stream_version: number; body: string }>(
        `SELECT stream_version, body FROM events WHERE subject = ? AND stream_version >= ? ORDER BY stream_version LIMIT ?`,
        args.subject,
        (archived.at(-1)?.stream_version ?? args.from - 1) + 1,
        args.limit - archived.length,
      )
      .toArray();
    const located = archived.map(({ stream_version, sequence }) => {
      const segment = this.archive.segmentHolding(sequence);
      if (segment === undefined)
        throw new Error(`stream ${args.subject} version ${stream_version}: sequence ${sequence} is in no archived segment`);
      return { stream_version, sequence, segment };
    });
    const version = this.state(args.subject).version;
    const events: string[] = [];
    for (const { sequence, segment } of located) {
      const line = (await this.archive.lines(segment.key))[sequence - segment.first];
      if (line === undefined) throw new Error(`archived segment ${segment.key} lacks sequence ${sequence}`);
      events.push(line);
    }
    events.push(...local.map((r) => r.body));
    const last = local.at(-1)?.stream_version ?? archived.at(-1)?.stream_version ?? null;
    return { events, version, last };
  }

  /**
   * What a command handler needs to rebuild a stream's state in one call: its latest snapshot
   * whose `schema` is `schema` (others are ignored), and the events after it.
   */
  async load(subject: string, schema: number, limit: number = config.read.maxLimit): Promise<LoadedStream> {
    const name = parseArgs(subjectSchema, subject, "subject");
    const max = parseArgs(readInputSchema.shape.limit, limit, "limit");
    const snapshot =
      this.host.sql
        .exec<{ version: number; schema: number; state: string }>(
          `SELECT version, schema, state FROM snapshots WHERE subject = ? AND schema = ?`,
          name,
          schema,
        )
        .toArray()[0] ?? null;
    const { version, lastSequence } = this.state(name);
    const start = (snapshot?.version ?? 0) + 1;
    // Capped at the version read above: appends while segments are fetched are not in this load.
    const page = await this.read(name, start, Math.max(1, Math.min(max, version - start + 1)));
    const firstVersion = page.events[0] === undefined ? null : (JSON.parse(page.events[0]) as { streamversion?: number }).streamversion;
    if (version >= start && firstVersion !== start) {
      // Folding from anywhere else would give a wrong state: refuse instead.
      throw new Error(`stream ${name}: version ${start} cannot be read (first found: ${firstVersion ?? "none"})`);
    }
    const events = page.last !== null && page.last > version ? page.events.slice(0, version - start + 1) : page.events;
    return { snapshot, events, version, lastSequence, complete: Math.min(page.last ?? 0, version) >= version || version < start };
  }

  /**
   * Keeps `state` as the stream's snapshot at `version` unless a newer one is kept already.
   * The caller folded the stream up to `version`; the version must exist.
   */
  saveSnapshot(input: { subject: string; version: number; schema: number; state: string }): boolean {
    const { subject, version, schema, state } = parseArgs(snapshotInputSchema, input, "snapshot");
    const current = this.state(subject).version;
    if (version > current) throw new TypeError(`invalid snapshot: stream ${subject} is at version ${current}, not ${version}`);
    return (
      this.host.sql.exec(
        `INSERT INTO snapshots (subject, version, schema, state, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (subject) DO UPDATE SET version = excluded.version, schema = excluded.schema, state = excluded.state,
           created_at = excluded.created_at
         WHERE excluded.version > snapshots.version OR excluded.schema <> snapshots.schema`,
        subject,
        version,
        schema,
        state,
        this.host.now(),
      ).rowsWritten > 0
    );
  }
}
