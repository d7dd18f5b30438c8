import type { SqlMigration } from "../sql-migrations";
import type { Producer, StreamConfig, StreamStatus } from "./types";

/**
 * A stream's storage: `state` (one row: configuration, lifecycle, the tail) and `messages` (one row
 * per append, keyed by its start position; its bytes never change). An append is one SQLite
 * transaction (the caller's transactionSync) with the producer and state updates, so a retried
 * append is either fully there or not at all.
 */

export const liveStreamMigration: SqlMigration = {
  id: 1,
  name: "state, messages, producers",
  up: ({ sql }) => {
    sql.exec(`CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 1), value TEXT NOT NULL)`);
    sql.exec(`CREATE TABLE messages (start INTEGER PRIMARY KEY, end INTEGER NOT NULL, items INTEGER NOT NULL, data BLOB NOT NULL)`);
    sql.exec(`CREATE TABLE producers (id TEXT PRIMARY KEY, epoch INTEGER NOT NULL, seq INTEGER NOT NULL)`);
  },
};

export interface StreamState extends StreamConfig {
  /** Random per creation: ETags of a re-created stream never match the old one's. */
  incarnation: string;
  next: number;
  closed: boolean;
  /** The producer tuple whose append closed the stream (a retry of it is a duplicate). */
  closedBy: Producer | null;
  /** Last `Stream-Seq` accepted. */
  seq: string | null;
  /** When the stream expires (ms); TTL streams move it forward on use. */
  deadline: number | null;
  /** Forks created from this stream and not yet deleted. */
  forks: number;
  /** Deleted (or expired) while forks still hold it: every request answers 410. */
  deleted: boolean;
}

export interface StoredRow {
  start: number;
  end: number;
  items: number;
  data: Uint8Array;
}

export class StreamStore {
  constructor(private readonly sql: SqlStorage) {}

  load(): StreamState | undefined {
    const row = this.sql.exec<{ value: string }>(`SELECT value FROM state WHERE id = 1`).toArray()[0];
    return row === undefined ? undefined : (JSON.parse(row.value) as StreamState);
  }

  save(state: StreamState): void {
    this.sql.exec(`INSERT OR REPLACE INTO state (id, value) VALUES (1, ?)`, JSON.stringify(state));
  }

  insert(start: number, data: Uint8Array, items: number): number {
    const end = start + data.byteLength;
    this.sql.exec(`INSERT INTO messages (start, end, items, data) VALUES (?, ?, ?, ?)`, start, end, items, data);
    return end;
  }

  /** Appends from `from` on, whole, up to `maxBytes` (at least one). */
  rows(from: number, maxBytes: number, to = Number.MAX_SAFE_INTEGER): StoredRow[] {
    const out: StoredRow[] = [];
    let bytes = 0;
    const cursor = this.sql.exec<{ start: number; end: number; items: number; data: ArrayBuffer }>(
      `SELECT start, end, items, data FROM messages WHERE start >= ? AND end <= ? ORDER BY start`,
      from,
      to,
    );
    for (const row of cursor) {
      const size = row.end - row.start;
      if (out.length > 0 && bytes + size > maxBytes) break;
      out.push({ start: row.start, end: row.end, items: row.items, data: new Uint8Array(row.data) });
      bytes += size;
    }
    return out;
  }

  /** The append starting at `start`, if one does. */
  at(start: number): StoredRow | undefined {
    const row = this.sql
      .exec<{ start: number; end: number; items: number; data: ArrayBuffer }>(
        `SELECT start, end, items, data FROM messages WHERE start = ?`,
        start,
      )
      .toArray()[0];
    return row === undefined ? undefined : { ...row, data: new Uint8Array(row.data) };
  }

  /** Is `position` where an append starts or the tail (the only offsets ever handed out)? */
  isBoundary(position: number, next: number): boolean {
    if (position === 0 || position === next) return true;
    return this.sql.exec(`SELECT 1 FROM messages WHERE end = ?`, position).toArray().length > 0;
  }

  producer(id: string): Producer | undefined {
    return this.sql.exec<Producer>(`SELECT id, epoch, seq FROM producers WHERE id = ?`, id).toArray()[0];
  }

  saveProducer(p: Producer): void {
    this.sql.exec(`INSERT OR REPLACE INTO producers (id, epoch, seq) VALUES (?, ?, ?)`, p.id, p.epoch, p.seq);
  }
}

export function statusOf(state: StreamState): StreamStatus {
  return {
    contentType: state.contentType,
    next: state.next,
    closed: state.closed,
    ttlSeconds: state.ttlSeconds,
    expiresAt: state.expiresAt,
  };
}
