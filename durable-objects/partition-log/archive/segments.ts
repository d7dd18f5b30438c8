import type { SqlMigration } from "../../sql-migrations";
import type { LogHost, PartitionLogSeams } from "../host";
import type { ArchiveRange } from "../types";
import {
  chainOf,
  GENESIS_CHAIN,
  gunzip,
  gzip,
  type Manifest,
  manifestKey,
  type Segment,
  segmentKey,
  segmentLines,
  segmentText,
  sha256Bytes,
  verifyArchive,
} from "./format";

/**
 * The archive's record in the partition: `segments` is the manifest as committed here (R2's
 * manifest.json is a copy written after it), and this store writes, adopts, verifies and reads
 * segments in R2. What to seal when, and trimming, are the archiver's (archiver.ts).
 */

export const segmentsMigration: SqlMigration = {
  id: 5,
  name: "archive segments",
  up: ({ sql }) =>
    sql.exec(`CREATE TABLE IF NOT EXISTS segments (
      first INTEGER PRIMARY KEY, last INTEGER NOT NULL, count INTEGER NOT NULL,
      first_received_at INTEGER NOT NULL, last_received_at INTEGER NOT NULL,
      bytes INTEGER NOT NULL, sha256 TEXT NOT NULL, chain TEXT NOT NULL, key TEXT NOT NULL
    )`),
};

const hex = (buffer: ArrayBuffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");

/** An event as a segment holds it. */
export type SegmentRow = {
  sequence: number;
  received_at: number;
  body: string;
};

export type HeldSegment = {
  first: number;
  last: number;
  key: string;
  last_received_at: number;
};

export class SegmentStore {
  /** Highest sequence archived and verified in R2 (0: none). */
  archivedThrough: number;
  /** Decompressed segments recently read, by key (reads of archived ranges page through them). */
  private readonly cache = new Map<string, string[]>();

  constructor(
    private readonly host: Pick<LogHost, "sql" | "storage" | "identity">,
    private readonly bucket: R2Bucket,
    private readonly seams: Pick<PartitionLogSeams, "afterSegmentPut">,
  ) {
    this.archivedThrough = host.sql.exec<{ s: number | null }>(`SELECT MAX(last) AS s FROM segments`).one().s ?? 0;
  }

  /** A segment's events as stored, from R2 (a small LRU keeps the last few). */
  async lines(key: string): Promise<string[]> {
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    const object = await this.bucket.get(key);
    if (object === null) throw new Error(`archived segment ${key} is missing from R2`);
    const lines = segmentLines(await gunzip(await object.arrayBuffer()));
    this.cache.set(key, lines);
    // A small LRU: reads of an archived range page through a few segments at a time.
    if (this.cache.size > 8) this.cache.delete(this.cache.keys().next().value as string);
    return lines;
  }

  /** The archived segment holding `sequence` if it is archived: the last one starting at or before it. */
  segmentHolding(sequence: number): HeldSegment | undefined {
    return this.host.sql
      .exec<HeldSegment>(`SELECT first, last, key, last_received_at FROM segments WHERE first <= ? ORDER BY first DESC LIMIT 1`, sequence)
      .toArray()[0];
  }

  /** Up to `limit` segments ending at or after `sequence`, in order. */
  segmentsFrom(sequence: number, limit: number): { first: number; last: number; key: string }[] {
    return this.host.sql
      .exec<{ first: number; last: number; key: string }>(
        `SELECT first, last, key FROM segments WHERE last >= ? ORDER BY first LIMIT ?`,
        sequence,
        limit,
      )
      .toArray();
  }

  /** The first segment holding an event committed at or after `timeMs`. */
  segmentSince(timeMs: number): { first: number; key: string } | undefined {
    return this.host.sql
      .exec<{ first: number; key: string }>(`SELECT first, key FROM segments WHERE last_received_at >= ? ORDER BY first LIMIT 1`, timeMs)
      .toArray()[0];
  }

  /** The last sequence of segments from the one starting at `first` on whose newest event is older than `cutoff`. */
  oldThrough(first: number, cutoff: number): number | null {
    return this.host.sql
      .exec<{ s: number | null }>(`SELECT MAX(last) AS s FROM segments WHERE first >= ? AND last_received_at < ?`, first, cutoff)
      .one().s;
  }

  /** Lowest archived sequence, null when nothing is archived. */
  firstArchived(): number | null {
    return this.host.sql.exec<{ s: number | null }>(`SELECT MIN(first) AS s FROM segments`).one().s;
  }

  range(): ArchiveRange | null {
    const row = this.host.sql
      .exec<{ first: number | null; last: number | null; n: number; bytes: number | null }>(
        `SELECT MIN(first) AS first, MAX(last) AS last, COUNT(*) AS n, SUM(bytes) AS bytes FROM segments`,
      )
      .one();
    if (row.first === null || row.last === null) return null;
    return { first: row.first, last: row.last, segments: row.n, bytes: row.bytes ?? 0 };
  }

  /** A range chosen for sealing but not committed yet (a crash after the R2 put): sealed again as the same range. */
  pendingRange(): { first: number; last: number } | undefined {
    const pending = this.host.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = 'pending_segment'`).toArray()[0];
    return pending === undefined ? undefined : (JSON.parse(pending.value) as { first: number; last: number });
  }

  choose(range: { first: number; last: number }): void {
    this.host.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('pending_segment', ?)`, JSON.stringify(range));
  }

  /**
   * Writes one segment to R2 (or adopts the identical one already there), verifies it, commits it.
   * `read`: the range's rows when the caller has just read them (else they are read here).
   */
  async seal(topic: string, partition: number, range: { first: number; last: number }, read?: SegmentRow[]): Promise<Segment> {
    const rows =
      read ??
      this.host.sql
        .exec<SegmentRow>(
          `SELECT sequence, received_at, body FROM events WHERE sequence BETWEEN ? AND ? ORDER BY sequence`,
          range.first,
          range.last,
        )
        .toArray();
    if (rows.length !== range.last - range.first + 1 || rows[0]?.sequence !== range.first) {
      throw new Error(`partition ${topic}/${partition} cannot seal ${range.first}-${range.last}: events missing from the log`);
    }
    const text = segmentText(rows.map((r) => r.body));
    const key = segmentKey(topic, partition, range.first, range.last);
    // A head (no body) first: the object exists only after a crash, rarely.
    const existing = (await this.bucket.head(key)) === null ? null : await this.bucket.get(key);
    let size: number;
    let sha256: string;
    if (existing !== null) {
      // Put before a crash: adopt it only if it holds exactly these events (read back in full).
      const bytes = new Uint8Array(await existing.arrayBuffer());
      if ((await gunzip(bytes)) !== text) throw new Error(`archive object ${key} exists with other content; refusing to overwrite it`);
      size = bytes.byteLength;
      sha256 = await sha256Bytes(bytes);
    } else {
      const gz = await gzip(text);
      sha256 = await sha256Bytes(gz);
      // Verified by checksum: R2 refuses the put unless the bytes it stored hash to `sha256`;
      // then the object's metadata must say so too.
      const put = await this.bucket.put(key, gz, {
        sha256,
        httpMetadata: { contentType: "application/x-ndjson", contentEncoding: "gzip" },
        customMetadata: { first: String(range.first), last: String(range.last), count: String(rows.length) },
      });
      await this.seams.afterSegmentPut(key);
      const storedSha = put?.checksums.sha256;
      if (put === null || put.size !== gz.byteLength || (storedSha !== undefined && hex(storedSha) !== sha256)) {
        throw new Error(`archive object ${key} does not match what was written (size ${put?.size ?? "missing"} of ${gz.byteLength})`);
      }
      size = gz.byteLength;
    }
    const previous =
      this.host.sql.exec<{ chain: string }>(`SELECT chain FROM segments ORDER BY first DESC LIMIT 1`).toArray()[0]?.chain ?? GENESIS_CHAIN;
    const segment: Segment = {
      first: range.first,
      last: range.last,
      count: rows.length,
      firstReceivedAt: rows[0]?.received_at ?? 0,
      // The newest, not the last: trimming judges a segment's age by it (see trim()).
      lastReceivedAt: rows.reduce((newest, r) => Math.max(newest, r.received_at), 0),
      bytes: size,
      sha256,
      chain: await chainOf(previous, sha256),
      key,
    };
    this.host.storage.transactionSync(() => {
      this.host.sql.exec(
        `INSERT INTO segments (first, last, count, first_received_at, last_received_at, bytes, sha256, chain, key)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        segment.first,
        segment.last,
        segment.count,
        segment.firstReceivedAt,
        segment.lastReceivedAt,
        segment.bytes,
        segment.sha256,
        segment.chain,
        segment.key,
      );
      this.host.sql.exec(`DELETE FROM meta WHERE key = 'pending_segment'`);
    });
    this.archivedThrough = segment.last;
    return segment;
  }

  /** The manifest as this object holds it. */
  manifest(): Manifest | null {
    const id = this.host.identity();
    if (id === undefined) return null;
    const segments = this.host.sql
      .exec<{
        first: number;
        last: number;
        count: number;
        first_received_at: number;
        last_received_at: number;
        bytes: number;
        sha256: string;
        chain: string;
        key: string;
      }>(`SELECT * FROM segments ORDER BY first`)
      .toArray()
      .map((r) => ({
        first: r.first,
        last: r.last,
        count: r.count,
        firstReceivedAt: r.first_received_at,
        lastReceivedAt: r.last_received_at,
        bytes: r.bytes,
        sha256: r.sha256,
        chain: r.chain,
        key: r.key,
      }));
    return { v: 1, topic: id.topic, partition: id.partition, segments, updatedAt: new Date().toISOString() };
  }

  async writeManifest(topic: string, partition: number): Promise<void> {
    const manifest = this.manifest();
    if (manifest === null) return;
    await this.bucket.put(manifestKey(topic, partition), JSON.stringify(manifest, null, 1), {
      httpMetadata: { contentType: "application/json" },
    });
    const chain = manifest.segments.at(-1)?.chain;
    if (chain !== undefined) this.host.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('manifest_chain', ?)`, chain);
  }

  /** True when R2's manifest.json was last written before the newest segment was committed. */
  manifestBehind(): boolean {
    const newest = this.host.sql.exec<{ chain: string }>(`SELECT chain FROM segments ORDER BY first DESC LIMIT 1`).toArray()[0]?.chain;
    const written = this.host.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = 'manifest_chain'`).toArray()[0]?.value;
    return newest !== undefined && newest !== written;
  }

  /**
   * Checks R2 against the manifest there (and that one against this object's): every segment
   * present, unaltered, contiguous, its chain intact.
   */
  async verify(): Promise<{ ok: boolean; segments: number; problems: { key: string; problem: string }[] }> {
    const id = this.host.identity();
    if (id === undefined) return { ok: true, segments: 0, problems: [] };
    const key = manifestKey(id.topic, id.partition);
    const own = this.manifest();
    const stored = await this.bucket.get(key);
    if (stored === null) {
      return own === null || own.segments.length === 0
        ? { ok: true, segments: 0, problems: [] }
        : {
            ok: false,
            segments: own.segments.length,
            problems: [{ key, problem: "manifest missing from R2" }],
          };
    }
    const manifest = JSON.parse(await stored.text()) as Manifest;
    const result = await verifyArchive(this.bucket, manifest);
    const lastChain = own?.segments.at(-1)?.chain;
    if (lastChain !== undefined && manifest.segments.at(-1)?.chain !== lastChain) {
      result.problems.push({ key, problem: "manifest in R2 differs from the partition's record" });
      result.ok = false;
    }
    return result;
  }
}
