import { parsePartitionName, partitionName } from "../../sdk/partition-name";
import { formatSequence } from "../../shared/cloudevents";
import { joinMembers, type Member, utf8Length } from "../../shared/json";
import type { SqlMigration } from "../sql-migrations";
import { envelopeView } from "./delivery/envelope";
import type { OutboxWrites } from "./delivery/outbox";
import type { LogHost, PartitionId, PartitionLogSeams } from "./host";
import { type EventInput, type ExpectedVersion, versionMatches } from "./input";
import type { AppendMetrics } from "./metrics";
import type { Streams } from "./streams";
import type { AppendedEvent, AppendResult } from "./types";

/**
 * The commit capability: the log itself (`events`, one row per event, its stored bytes never
 * changing) and its idempotency record, which is the row: a (source, id) already stored inserts
 * nothing (the unique index), so the record lives exactly as long as the event. Every append is
 * one SQLite transaction (the caller's transactionSync), so a call's events are stored all
 * together or not at all.
 */

export const eventsMigration: SqlMigration = {
  id: 1,
  name: "events and meta",
  up: ({ sql }) => {
    sql.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS events (
      sequence    INTEGER PRIMARY KEY,
      source      TEXT NOT NULL,
      id          TEXT NOT NULL,
      hash        TEXT NOT NULL,
      type        TEXT NOT NULL,
      subject     TEXT,
      traceparent TEXT NOT NULL,
      received_at INTEGER NOT NULL,
      body        TEXT NOT NULL
    )`);
    sql.exec(`CREATE UNIQUE INDEX IF NOT EXISTS events_source_id ON events (source, id)`);
  },
};

/** Thrown inside the append transaction to roll it back: a known (source, id) with other content. */
export class ConflictAbort extends Error {
  constructor(
    readonly source: string,
    readonly id: string,
    readonly sequence: number,
  ) {
    super("duplicate id with different content");
  }
}

export interface CommitDeps {
  streams: Pick<Streams, "state" | "record">;
  metrics: Pick<AppendMetrics, "count">;
  seams: Pick<PartitionLogSeams, "metricsOn">;
}

export class EventLog {
  /**
   * Highest sequence ever assigned. Not written on every commit: rows are only ever appended,
   * so at startup it is max(meta 'head', MAX(sequence)). Anything that deletes events (trimming)
   * MUST first persist the head to meta 'head', in the same transaction as the delete (see
   * trimThrough), or trimming the newest rows would let their numbers be assigned again.
   */
  head: number;
  /** partitionName(topic, partition) of what this object serves, recorded by its first append. */
  private name: string | undefined;

  constructor(
    private readonly host: Pick<LogHost, "sql" | "now">,
    private readonly deps: CommitDeps,
  ) {
    const { sql } = host;
    const row = sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = 'head'`).toArray()[0];
    const last = sql.exec<{ s: number | null }>(`SELECT MAX(sequence) AS s FROM events`).one().s ?? 0;
    this.head = Math.max(row ? Number(row.value) : 0, last);
    this.name = sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = 'name'`).toArray()[0]?.value;
  }

  /** `name` parsed, kept while `name` is the same (every reschedule after an append asks for it). */
  private parsedName: { name: string; id: Readonly<PartitionId> | undefined } | undefined;

  /** The (topic, partition) served, from the recorded name; undefined before the first append. */
  identity(): Readonly<PartitionId> | undefined {
    if (this.name === undefined) return undefined;
    if (this.parsedName?.name !== this.name) {
      const id = parsePartitionName(this.name);
      this.parsedName = { name: this.name, id: id === undefined ? undefined : Object.freeze(id) };
    }
    return this.parsedName.id;
  }

  /** After an append's transaction committed (a rollback leaves the in-memory name untouched). */
  committed(topic: string, partition: number): void {
    this.name = partitionName(topic, partition);
  }

  firstSequence(): number {
    return this.host.sql.exec<{ s: number | null }>(`SELECT MIN(sequence) AS s FROM events`).one().s ?? 0;
  }

  /** Commit time of a sequence still held in the log, undefined when it is not. */
  receivedAt(sequence: number): number | undefined {
    return this.host.sql.exec<{ received_at: number }>(`SELECT received_at FROM events WHERE sequence = ?`, sequence).toArray()[0]
      ?.received_at;
  }

  /**
   * Removes events up to `through`, in one transaction with persisting the head (so sequences are
   * never reused) and `beforeDelete` (streams index what leaves). Returns the rows removed.
   */
  trimThrough(storage: Pick<DurableObjectStorage, "transactionSync">, through: number, beforeDelete: () => void): number {
    return storage.transactionSync(() => {
      this.host.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('head', ?)`, String(this.head));
      beforeDelete();
      return this.host.sql.exec(`DELETE FROM events WHERE sequence <= ?`, through).rowsWritten;
    });
  }

  /** Where an event (source, id) is stored, if it is. */
  find(source: string, id: string): { sequence: number; streamVersion: number | null; body: string } | null {
    const row = this.host.sql
      .exec<{ sequence: number; stream_version: number | null; body: string }>(
        `SELECT sequence, stream_version, body FROM events WHERE source = ? AND id = ?`,
        source,
        id,
      )
      .toArray()[0];
    return row === undefined ? null : { sequence: row.sequence, streamVersion: row.stream_version, body: row.body };
  }

  /**
   * Inside the append transaction: dedupe by (source, id), assign sequences, insert, add outbox
   * rows, move stream versions and metrics counters. Throws ConflictAbort (rolling it back) for a
   * known id with other content.
   */
  commit(
    topic: string,
    partition: number,
    events: EventInput[],
    outbox: OutboxWrites | undefined,
    expect: { subject: string; version: ExpectedVersion } | undefined,
  ): AppendResult {
    this.assertIdentity(topic, partition);
    if (expect !== undefined) {
      const verdict = this.checkExpectation(expect, events);
      if (verdict !== undefined) return verdict;
    }
    /** Stream versions as this transaction moves them (subject → version, last sequence). */
    const streams = new Map<string, { version: number; lastSequence: number }>();
    let head = this.head;
    const out: AppendedEvent[] = [];
    const receivedAt = this.host.now();
    // The server attributes, as canonical members in key order: partition < receivedtime < sequence.
    const partitionMember: Member = ["partition", JSON.stringify(partition)];
    const receivedMember: Member = ["receivedtime", JSON.stringify(new Date(receivedAt).toISOString())];
    let queued = 0;
    // Metrics counters (EVENTLINE_METRICS): bytes stored and duplicates answered by this call.
    let bytes = 0;
    let duplicates = 0;
    // The server members of the event at hand (sequence and streamversion change per event).
    const sequenceMember: Member = ["sequence", ""];
    const serverMembers: Member[] = [partitionMember, receivedMember, sequenceMember];
    const streamServerMembers: Member[] = [...serverMembers, ["streamversion", ""]];
    const streamVersionMember = streamServerMembers[3] as Member;
    for (const { source, id, type, subject, traceparent, hash, members, stream } of events) {
      const sequence = head + 1;
      // A zero-padded decimal: its JSON text is the digits in quotes.
      sequenceMember[1] = `"${formatSequence(sequence)}"`;
      let streamVersion: number | null = null;
      if (stream === true && subject !== undefined) {
        const current = streams.get(subject) ?? this.deps.streams.state(subject);
        streamVersion = current.version + 1;
        streamVersionMember[1] = String(streamVersion);
      }
      // canonicalJson({ ...event, partition, sequence, receivedtime[, streamversion] }), from the event's members.
      const body = joinMembers(members, streamVersion === null ? serverMembers : streamServerMembers);
      // The idempotency check is the unique index: a (source, id) already stored inserts nothing.
      const inserted =
        this.host.sql.exec(
          `INSERT INTO events (sequence, source, id, hash, type, subject, traceparent, received_at, body, stream_version)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, id) DO NOTHING`,
          sequence,
          source,
          id,
          hash,
          type,
          subject ?? null,
          traceparent,
          receivedAt,
          body,
          streamVersion,
        ).rowsWritten > 0;
      if (!inserted) {
        const existing = this.existing(source, id);
        if (existing.hash !== hash) throw new ConflictAbort(source, id, existing.sequence);
        duplicates++;
        out.push({
          id,
          source,
          sequence: existing.sequence,
          duplicate: true,
          ...(existing.stream_version !== null && { streamVersion: existing.stream_version }),
        });
        continue;
      }
      head = sequence;
      if (this.deps.seams.metricsOn) bytes += utf8Length(body);
      if (streamVersion !== null && subject !== undefined) streams.set(subject, { version: streamVersion, lastSequence: sequence });
      // Filters see the event exactly as stored.
      if (outbox !== undefined) {
        queued += outbox.add(
          sequence,
          () => JSON.parse(body) as Record<string, unknown>,
          // The same values as in `body` (membersAgree checked them), without parsing it.
          () => envelopeView(id, source, type, subject, streamVersion),
        );
      }
      out.push({ id, source, sequence, duplicate: false, ...(streamVersion !== null && { streamVersion }) });
    }
    outbox?.finish();
    this.deps.streams.record(streams, receivedAt);
    // The call's metrics counters, in its transaction (see AppendMetrics.count).
    if (this.deps.seams.metricsOn) this.deps.metrics.count(bytes, duplicates);
    // Only after every statement succeeded; a throw above rolls the transaction back and
    // leaves the in-memory head untouched.
    this.head = head;
    return { ok: true, events: out, head, queued };
  }

  private existing(source: string, id: string) {
    return this.host.sql
      .exec<{ sequence: number; hash: string; stream_version: number | null }>(
        `SELECT sequence, hash, stream_version FROM events WHERE source = ? AND id = ?`,
        source,
        id,
      )
      .one();
  }

  /**
   * Inside the append transaction, before anything is written: undefined when the append may go
   * ahead, else its answer. Re-sending an append that already committed (every event stored, the
   * first where the expectation put it) is answered as duplicates, not as a conflict.
   */
  private checkExpectation(expect: { subject: string; version: ExpectedVersion }, events: EventInput[]): AppendResult | undefined {
    const current = this.deps.streams.state(expect.subject).version;
    const stored = events.map((e) => {
      const row = this.host.sql
        .exec<{ sequence: number; hash: string; stream_version: number | null; subject: string | null }>(
          `SELECT sequence, hash, stream_version, subject FROM events WHERE source = ? AND id = ?`,
          e.source,
          e.id,
        )
        .toArray()[0];
      if (row !== undefined && row.hash !== e.hash) throw new ConflictAbort(e.source, e.id, row.sequence);
      return row;
    });
    const first = stored[0];
    const replayed =
      first?.stream_version != null &&
      first.subject === expect.subject &&
      stored.every(
        (row, i) => row !== undefined && row.subject === expect.subject && row.stream_version === (first.stream_version ?? 0) + i,
      ) &&
      versionMatches(expect.version, first.stream_version - 1);
    if (replayed) return undefined; // the insert loop reports each event as a duplicate at its original position
    if (versionMatches(expect.version, current)) return undefined;
    const wanted = typeof expect.version === "number" ? `version ${expect.version}` : JSON.stringify(expect.version);
    return {
      ok: false,
      code: "version_conflict",
      detail: `stream ${JSON.stringify(expect.subject)} is at version ${current}; the append expected ${wanted}`,
      subject: expect.subject,
      expected: expect.version,
      currentVersion: current,
    };
  }

  /** A partition object serves exactly one (topic, partition) for its whole life. */
  private assertIdentity(topic: string, partition: number): void {
    const name = partitionName(topic, partition);
    if (this.name === undefined) {
      // Part of the append transaction; `name` is kept by committed() once it committed.
      this.host.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('name', ?)`, name);
    } else if (this.name !== name) {
      throw new Error(`partition object for ${this.name} was called as ${name}`);
    }
  }
}
