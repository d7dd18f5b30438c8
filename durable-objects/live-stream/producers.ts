import type { Producer } from "./types";

/**
 * Idempotent producers (Kafka-style): a producer id owns an epoch and a sequence. An append is
 * accepted when it carries the next sequence of the current epoch (or sequence 0 of a higher
 * epoch, which fences every older writer); a sequence already accepted is a duplicate, answered
 * as a success without writing anything; an older epoch is a zombie (403); a skipped sequence is a
 * gap (409). Pure: the object applies the verdict inside its append transaction.
 */
export type ProducerVerdict =
  | { kind: "accept" }
  | { kind: "duplicate"; highest: Producer }
  | { kind: "stale_epoch"; epoch: number }
  | { kind: "gap"; expected: number; received: number }
  | { kind: "bad_epoch_start" };

export function judgeProducer(known: Producer | undefined, incoming: Producer): ProducerVerdict {
  if (known === undefined) {
    return incoming.seq === 0 ? { kind: "accept" } : { kind: "gap", expected: 0, received: incoming.seq };
  }
  if (incoming.epoch < known.epoch) return { kind: "stale_epoch", epoch: known.epoch };
  if (incoming.epoch > known.epoch) return incoming.seq === 0 ? { kind: "accept" } : { kind: "bad_epoch_start" };
  if (incoming.seq <= known.seq) return { kind: "duplicate", highest: known };
  if (incoming.seq === known.seq + 1) return { kind: "accept" };
  return { kind: "gap", expected: known.seq + 1, received: incoming.seq };
}
