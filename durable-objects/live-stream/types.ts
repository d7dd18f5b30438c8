import { z } from "zod";

const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, "bytes");

/**
 * The LiveStream object's RPC arguments (parsed with zod on arrival: an RPC argument is a
 * boundary) and results. Results are plain discriminated unions the Worker turns into HTTP answers;
 * nothing is thrown across the RPC boundary for an expected refusal.
 */

export const producerSchema = z.object({
  id: z.string().min(1).max(256),
  epoch: z.number().int().min(0),
  seq: z.number().int().min(0),
});
export type Producer = z.infer<typeof producerSchema>;

export const forkSpecSchema = z.object({
  /** The source stream's name. */
  from: z.string().min(1),
  /** Position in the source; undefined: its tail. */
  offset: z.number().int().min(0).optional(),
  /** Bytes (JSON: values) of the source's append at `offset` carried into the fork. */
  subOffset: z.number().int().min(0),
});
export type ForkSpec = z.infer<typeof forkSpecSchema>;

export const createInputSchema = z.object({
  /** Undefined: the default (or, for a fork, the source's). */
  contentType: z.string().optional(),
  ttlSeconds: z.number().int().min(0).optional(),
  expiresAt: z.number().int().optional(),
  closed: z.boolean(),
  fork: forkSpecSchema.optional(),
  /** Initial body (an append) or undefined. JSON streams: the values, serialized. */
  body: bytes.optional(),
  /** JSON streams: the values in `body`. */
  items: z.number().int().min(0).optional(),
});
export type CreateInput = z.infer<typeof createInputSchema>;

export const appendInputSchema = z.object({
  contentType: z.string().optional(),
  body: bytes.optional(),
  /** JSON streams: the values in `body`. */
  items: z.number().int().min(0).optional(),
  close: z.boolean(),
  seq: z.string().optional(),
  producer: producerSchema.optional(),
});
export type AppendInput = z.infer<typeof appendInputSchema>;

/** The configuration a stream was created with (what an idempotent re-create must match). */
export interface StreamConfig {
  contentType: string;
  ttlSeconds: number | null;
  expiresAt: number | null;
  fork: { from: string; offset: number; subOffset: number } | null;
}

/** What every answer about an existing stream carries. */
export interface StreamStatus {
  contentType: string;
  next: number;
  closed: boolean;
  ttlSeconds: number | null;
  expiresAt: number | null;
}

export type Refusal =
  | { kind: "not_found" }
  | { kind: "gone" }
  | { kind: "bad_request"; detail: string }
  | { kind: "conflict"; detail: string; status?: StreamStatus };

export type CreateResult = ({ kind: "created" } & StreamStatus) | ({ kind: "exists" } & StreamStatus) | Refusal;

export type AppendResult =
  | ({ kind: "appended"; producer?: Producer } & StreamStatus)
  | ({ kind: "duplicate"; producer?: Producer } & StreamStatus)
  | ({ kind: "closed" } & StreamStatus)
  | ({ kind: "stale_epoch"; epoch: number } & StreamStatus)
  | ({ kind: "sequence_gap"; expected: number; received: number } & StreamStatus)
  | ({ kind: "seq_conflict"; detail: string } & StreamStatus)
  | Refusal;

export interface ReadChunk {
  /** The appends' bytes, concatenated (JSON: values joined by `,`, without brackets). */
  data: Uint8Array;
  /** Appends in `data`. */
  messages: number;
  from: number;
  next: number;
  upToDate: boolean;
  /** Identifies this incarnation of the stream (ETags differ across delete + re-create). */
  incarnation: string;
}

export type ReadResult = ({ kind: "read" } & StreamStatus & ReadChunk) | Refusal;

export type HeadResult = ({ kind: "head" } & StreamStatus) | Refusal;

export type DeleteResult = { kind: "deleted" } | Refusal;

/** What a source hands a fork being created: its configuration and the resolved fork point. */
export type ForkSourceResult =
  | {
      kind: "source";
      contentType: string;
      ttlSeconds: number | null;
      expiresAt: number | null;
      offset: number;
      prefix: { data: Uint8Array; items: number } | null;
    }
  | Refusal;

export interface ForkRows {
  rows: { start: number; end: number; items: number; data: Uint8Array }[];
}
