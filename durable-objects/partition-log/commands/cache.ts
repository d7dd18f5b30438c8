/**
 * Aggregate states a partition log keeps in memory between commands: subject → the state folded
 * up to a stream version. An entry is only ever a fact ("the stream's events 1..version fold to
 * this state"): stream events never change and versions are never reused, so an entry cannot be
 * wrong, only behind. Whoever reads one compares its version with the stream's current version
 * (Commands.load) and folds what it lacks; that comparison, not a hook on each writer, is what
 * keeps every append (ingest, outside `expectedVersion` appends, other commands) visible.
 * Least recently used entries go first beyond `capacity`; memory is lost when the object is
 * evicted, and the next command loads from the snapshot and the stream (ADR 0040).
 */
export interface CachedAggregate {
  /** The aggregate whose decider folded `state` (a subject could be written by another one). */
  aggregate: string;
  version: number;
  state: unknown;
  /** The stream version of the newest snapshot this process knows of (0: none), for snapshotEvery. */
  snapshotVersion: number;
}

export class AggregateCache {
  /** A Map iterates in insertion order: re-inserting on use keeps the least recently used first. */
  private readonly entries = new Map<string, CachedAggregate>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`aggregate cache capacity must be a positive integer, not ${capacity}`);
  }

  get size(): number {
    return this.entries.size;
  }

  get(subject: string): CachedAggregate | undefined {
    const entry = this.entries.get(subject);
    if (entry === undefined) return undefined;
    this.entries.delete(subject);
    this.entries.set(subject, entry);
    return entry;
  }

  /** Keeps `entry` unless a newer version of the subject is kept already (concurrent loads settle on the newest). */
  offer(subject: string, entry: CachedAggregate): void {
    const held = this.entries.get(subject);
    if (held !== undefined && held.aggregate === entry.aggregate && held.version > entry.version) return;
    this.entries.delete(subject);
    this.entries.set(subject, entry);
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
  }

  delete(subject: string): void {
    this.entries.delete(subject);
  }
}
