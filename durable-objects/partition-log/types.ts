import type { Histogram } from "../../shared/metrics";
import type { Segment } from "./archive/format";
import type { Unacknowledged } from "./delivery/state";
import type { ExpectedVersion } from "./input";

/** What the partition log's RPC methods answer (the Worker and the replay job read these). */

export interface AppendedEvent {
  id: string;
  source: string;
  sequence: number;
  duplicate: boolean;
  /** Position in its subject's stream, for stream events. */
  streamVersion?: number;
}

export type AppendResult =
  | { ok: true; events: AppendedEvent[]; head: number; queued: number }
  | { ok: false; code: "version_conflict"; detail: string; subject: string; expected: ExpectedVersion; currentVersion: number }
  | { ok: false; code: "duplicate_conflict"; detail: string; source: string; id: string; sequence: number }
  | { ok: false; code: "overloaded"; detail: string; retryAfter: number };

export interface ReadResult {
  /** Stored events, exactly as committed (canonical JSON text), from the archive or the log. */
  events: string[];
  head: number;
  /** Lowest sequence that can be read, archived or local (0 when empty). */
  first: number;
  /** Sequence of the last event returned, null when none was. */
  last: number | null;
}

export interface StreamInfo {
  subject: string;
  /** Current version: the number of events in the stream (0: no stream). */
  version: number;
  /** Partition sequence of the stream's last event (0: none). */
  lastSequence: number;
  /** When the last event was committed (ms since epoch), null when none. */
  updatedAt: number | null;
}

export interface StreamPage {
  /** Stored events, exactly as committed, in stream-version order. */
  events: string[];
  version: number;
  /** Stream version of the last event returned, null when none was. */
  last: number | null;
}

export interface Snapshot {
  /** The stream version the state was folded up to (inclusive). */
  version: number;
  /** The snapshot format, so code that changes the state's shape can ignore older snapshots. */
  schema: number;
  /** The folded state, serialized by its aggregate. */
  state: string;
}

/** A stream as a command handler loads it: the latest snapshot, and the events after it. */
export interface LoadedStream {
  snapshot: Snapshot | null;
  /** Stored events after the snapshot (or from version 1), at most `limit`. */
  events: string[];
  version: number;
  lastSequence: number;
  /** False when more events follow than were returned: page on with readStream(). */
  complete: boolean;
}

export interface ArchiveRange {
  first: number;
  last: number;
  segments: number;
  /** Compressed bytes in R2. */
  bytes: number;
}

export interface ArchiveResult {
  sealed: Segment[];
  /** Highest sequence archived and verified (0: none). */
  archivedThrough: number;
  /** Events removed from the partition log by this call (archived and past retention). */
  trimmed: number;
}

export interface PartitionStats {
  head: number;
  /** Events held in the partition log itself (not counting archived-only ones). */
  count: number;
  /** Lowest sequence held in the partition log (0 when none). */
  first: number;
  /** What is in R2, null when nothing is archived yet. */
  archived: ArchiveRange | null;
  /** Committed events not yet handed to each subscription's queue. */
  outbox: Record<string, number>;
  /** Events sent to each subscription and not yet acknowledged by it (as of the last redelivery check). */
  inTransit: Record<string, number>;
  /** Events this partition sent again to each subscription because they went unacknowledged. */
  redelivered: Record<string, number>;
  /** For each subscription whose checkpoint the caller gave: what is routed to it above the checkpoint, not acknowledged. */
  unacknowledged: Record<string, Unacknowledged>;
  /** Last sequence routed to each subscription (what it will have seen once caught up). */
  routed: Record<string, number>;
}

/** What GET /v1/metrics reads from a partition (PartitionLog.metrics). */
export interface PartitionMetrics {
  head: number;
  /** UTF-8 bytes of the events appended, as stored (duplicates excluded). */
  bytes: number;
  /** Events sent again with the same content (answered `duplicate: true`, nothing stored). */
  duplicates: number;
  /** Time inside append(), from parsing the input to the commit being durable, per successful call. */
  appendLatency: Histogram;
  archived: ArchiveRange | null;
  /** Last sequence routed to each subscription. */
  routed: Record<string, number>;
  /** Commit time (ms since epoch) of each sequence asked for; null when there is no such event. */
  committedAt: Record<number, number | null>;
  /** As in PartitionStats, for the checkpoints given. */
  unacknowledged: Record<string, Unacknowledged>;
}
