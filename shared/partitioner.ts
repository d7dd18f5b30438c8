/**
 * The partitioner, stable across releases and languages so producers can predict placement:
 *
 *   key       = partitionkey ?? subject ?? id        (CloudEvents attributes, as strings)
 *   hash      = FNV-1a 32-bit over the UTF-8 bytes of key
 *               (offset basis 0x811c9dc5, prime 0x01000193, arithmetic mod 2^32)
 *   partition = hash mod partitionCount
 *
 * Changing any of this re-homes existing keys and breaks per-key ordering: don't.
 */

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const encoder = new TextEncoder();

export function fnv1a32(key: string): number {
  let hash = FNV_OFFSET_BASIS;
  // An ASCII key is its own UTF-8: hashed from its char codes, without encoding it first.
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c >= 0x80) return fnv1a32Utf8(key);
    hash ^= c;
    hash = Math.imul(hash, FNV_PRIME) >>> 0;
  }
  return hash >>> 0;
}

function fnv1a32Utf8(key: string): number {
  let hash = FNV_OFFSET_BASIS;
  for (const byte of encoder.encode(key)) {
    hash ^= byte;
    hash = Math.imul(hash, FNV_PRIME) >>> 0;
  }
  return hash >>> 0;
}

export interface PartitionKeySource {
  id: string;
  subject?: string | undefined;
  partitionkey?: string | undefined;
}

export function partitionKeyOf(event: PartitionKeySource): string {
  return event.partitionkey ?? event.subject ?? event.id;
}

export function partitionFor(event: PartitionKeySource, partitionCount: number): number {
  if (!Number.isInteger(partitionCount) || partitionCount < 1) {
    throw new RangeError(`partition count must be a positive integer, got ${partitionCount}`);
  }
  return fnv1a32(partitionKeyOf(event)) % partitionCount;
}

/** The partition a stream (the events of one subject, partitioned by it) lives in. */
export function streamPartition(subject: string, partitionCount: number): number {
  return partitionFor({ id: subject, subject }, partitionCount);
}
