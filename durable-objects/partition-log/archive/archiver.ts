import config from "../../../eventline.config";
import { findTopic } from "../../../shared/config";
import type { AlarmClient, LogHost, PartitionLogSeams } from "../host";
import type { ArchiveResult } from "../types";
import type { Segment } from "./format";
import type { SegmentRow, SegmentStore } from "./segments";

/** A segment's stored text stops growing past this (a few MiB, gzipped to far less). */
const SEGMENT_MAX_CHARS = 8 * 1024 * 1024;

export interface ArchiverDeps {
  segments: SegmentStore;
  /** The log being archived (its head, its first local sequence, commit times). */
  log: { readonly head: number; firstSequence(): number; receivedAt(sequence: number): number | undefined };
  /** The lowest sequence a subscription has not acknowledged (null: none): nothing from it on may go. */
  firstHeld(): number | null;
  /** Learns what subscriptions acknowledged since the last check (one D1 read). */
  acknowledgeCheckpoints(): Promise<void>;
  /** Removes events up to `through` from the log, in one transaction; returns how many went. */
  trimThrough(through: number): number;
  seams: Pick<PartitionLogSeams, "segmentEvents" | "segmentMaxChars" | "retentionMs">;
}

/**
 * The archive capability: seals the log into R2 segments when one is full or its oldest event is
 * old enough, writes the manifest, and trims from the log what is archived, past retention and
 * acknowledged by every subscription. It runs from the object's alarm, one pass at a time, with
 * its own backoff after failures, which no other run time brings forward.
 */
export class Archiver implements AlarmClient {
  /** Failed archive passes in a row, and when the next may run. */
  private failures = 0;
  private retryAt = 0;
  /** The running archive pass, if any (one at a time). */
  private archiving: Promise<ArchiveResult> | undefined;
  /**
   * Commit time of the oldest unarchived event (`sequence`: archivedThrough + 1), which every
   * append's reschedule asks for: a row's commit time never changes, so it is read once per segment.
   */
  private oldestUnarchived: { sequence: number; receivedAt: number } | undefined;

  constructor(
    private readonly host: LogHost,
    private readonly deps: ArchiverDeps,
  ) {}

  private get segments(): SegmentStore {
    return this.deps.segments;
  }

  /** When the next segment is due (full, or its oldest event old enough), or the next trim. */
  nextRunAt(now: number): number | null {
    const topic = this.topicConfig();
    if (topic === undefined) return null;
    const { segmentSeconds } = topic.archive;
    const segmentEvents = this.deps.seams.segmentEvents ?? topic.archive.segmentEvents;
    const { head } = this.deps.log;
    const archivedThrough = this.segments.archivedThrough;
    // After failures, nothing brings the next pass forward of its backoff.
    const at = (due: number) => Math.max(now, due, this.retryAt);
    if (head > archivedThrough) {
      if (head - archivedThrough >= segmentEvents) return at(now);
      const oldest = this.oldestUnarchivedAt(archivedThrough + 1);
      if (oldest !== undefined) return at(oldest + segmentSeconds * 1000);
    }
    // Archived events still in the log leave it once past retention, unless a subscription has not
    // acknowledged them yet (they may have to be sent again; the relay's own alarm comes first then).
    const held = this.deps.firstHeld();
    const trimmable = Math.min(archivedThrough, held === null ? archivedThrough : held - 1);
    // trim() takes whole segments once their newest event is past retention: the first local
    // event's segment says when the next trim is due.
    const first = this.deps.log.firstSequence();
    if (first === 0 || first > trimmable) return null;
    const segment = this.segments.segmentHolding(first);
    return segment === undefined ? null : at(segment.last_received_at + this.retention(topic));
  }

  private oldestUnarchivedAt(sequence: number): number | undefined {
    if (this.oldestUnarchived?.sequence === sequence) return this.oldestUnarchived.receivedAt;
    const receivedAt = this.deps.log.receivedAt(sequence);
    if (receivedAt !== undefined) this.oldestUnarchived = { sequence, receivedAt };
    return receivedAt;
  }

  /** From the alarm: a pass unless backing off after failures. */
  async run(now: number): Promise<void> {
    if (now < this.retryAt) return;
    try {
      await this.archive(false);
      this.failures = 0;
      this.retryAt = 0;
    } catch (err) {
      this.failures++;
      const retryMs = Math.min(10 * 60_000, 30_000 * 2 ** (this.failures - 1));
      this.retryAt = this.host.now() + retryMs;
      this.host.log.warn("archiving failed; retrying later", { ...this.host.identity(), failures: this.failures, retryMs, error: err });
    }
  }

  /** One archive pass at a time; a second call waits for the running one and then runs its own. */
  async archive(force: boolean): Promise<ArchiveResult> {
    while (this.archiving !== undefined) await this.archiving.catch(() => undefined);
    this.archiving = this.pass(force);
    try {
      return await this.archiving;
    } finally {
      this.archiving = undefined;
    }
  }

  private async pass(force: boolean): Promise<ArchiveResult> {
    const started = this.host.now();
    const topic = this.topicConfig();
    const id = this.host.identity();
    if (topic === undefined || id === undefined) return { sealed: [], archivedThrough: this.segments.archivedThrough, trimmed: 0 };
    const { partition } = id;
    const { segmentSeconds } = topic.archive;
    const segmentEvents = this.deps.seams.segmentEvents ?? topic.archive.segmentEvents;
    const sealed: Segment[] = [];
    for (;;) {
      // A range chosen earlier but not committed (a crash after the R2 put) is sealed again as
      // the same range, so its key, and so its object, is the same: no duplicate segments.
      let range = this.segments.pendingRange();
      // The rows of a range chosen now, read once for both choosing and sealing it.
      let rows: SegmentRow[] | undefined;
      if (range === undefined) {
        const unarchived = this.deps.log.head - this.segments.archivedThrough;
        if (unarchived <= 0) break;
        const oldest = this.deps.log.receivedAt(this.segments.archivedThrough + 1);
        if (oldest === undefined) throw new Error(`event ${this.segments.archivedThrough + 1} is missing from the log`);
        if (!force && unarchived < segmentEvents && this.host.now() - oldest < segmentSeconds * 1000) break;
        rows = this.nextSegmentRows(segmentEvents);
        range = { first: this.segments.archivedThrough + 1, last: rows.at(-1)?.sequence ?? this.segments.archivedThrough + 1 };
        this.segments.choose(range);
      }
      sealed.push(await this.segments.seal(topic.name, partition, range, rows));
    }
    // Also when an earlier pass stopped between committing a segment and writing the manifest.
    if (sealed.length > 0 || this.segments.manifestBehind()) await this.segments.writeManifest(topic.name, partition);
    // Only events every subscription acknowledged may go: learn the latest checkpoints first.
    if (this.trimBlockedByOutbox(topic)) await this.deps.acknowledgeCheckpoints();
    const trimmed = this.trim(topic);
    if (sealed.length > 0 || trimmed > 0) {
      this.host.log.info("archived", {
        topic: topic.name,
        partition,
        segments: sealed.length,
        first: sealed[0]?.first ?? null,
        last: sealed.at(-1)?.last ?? null,
        archivedThrough: this.segments.archivedThrough,
        trimmed,
        durationMs: this.host.now() - started,
      });
    }
    return { sealed, archivedThrough: this.segments.archivedThrough, trimmed };
  }

  /**
   * The events of the next segment: at most `segmentEvents` and about SEGMENT_MAX_CHARS of stored
   * text (UTF-16 units), so a segment of large events stays well within the object's memory. Read
   * through the cursor, which stops there, and kept for seal() (one read of each row, not two).
   */
  private nextSegmentRows(segmentEvents: number): SegmentRow[] {
    const first = this.segments.archivedThrough + 1;
    const cursor = this.host.sql.exec<SegmentRow>(
      `SELECT sequence, received_at, body FROM events WHERE sequence >= ? ORDER BY sequence LIMIT ?`,
      first,
      segmentEvents,
    );
    const max = this.deps.seams.segmentMaxChars ?? SEGMENT_MAX_CHARS;
    const rows: SegmentRow[] = [];
    let total = 0;
    for (const row of cursor) {
      total += row.body.length;
      if (total > max && rows.length > 0) break;
      rows.push(row);
    }
    return rows;
  }
  /**
   * True when events are past retention and archived, so trimmable but for an outbox row at or below
   * them: only then is it worth a D1 read to learn what was acknowledged since the last check.
   */
  private trimBlockedByOutbox(topic: { retentionHours: number }): boolean {
    const old = this.retainedThrough(topic);
    if (old === null) return false;
    const held = this.deps.firstHeld();
    return held !== null && held <= Math.min(old, this.segments.archivedThrough);
  }

  /** The last archived sequence past retention, judged by whole segments (null: none local). */
  private retainedThrough(topic: { retentionHours: number }): number | null {
    const first = this.deps.log.firstSequence();
    if (first === 0 || first > this.segments.archivedThrough) return null;
    return this.segments.oldThrough(this.segments.segmentHolding(first)?.first ?? 0, this.host.now() - this.retention(topic));
  }

  /**
   * Removes events from the log that are archived and verified, older than retention, and
   * acknowledged by every subscription they were routed to (no outbox row: neither unsent nor in
   * transit, so a redelivery can always read them). The head is persisted in the same transaction,
   * so sequences are never reused however many rows go.
   *
   * Age is judged per segment, by its newest event: a segment's events leave together once all
   * of them are past retention (like a Kafka log segment), so finding them reads the segments
   * table from the oldest local segment on, never the events table (which would be a scan of
   * every archived row on every pass).
   */
  private trim(topic: { retentionHours: number }): number {
    const first = this.deps.log.firstSequence();
    const old = this.retainedThrough(topic);
    if (old === null) return 0;
    const held = this.deps.firstHeld();
    const through = Math.min(old, this.segments.archivedThrough, held === null ? old : held - 1);
    if (through < first) return 0;
    return this.deps.trimThrough(through);
  }

  private retention(topic: { retentionHours: number }): number {
    return this.deps.seams.retentionMs ?? topic.retentionHours * 3_600_000;
  }

  private topicConfig() {
    const id = this.host.identity();
    return id === undefined ? undefined : findTopic(config, id.topic);
  }
}
