import { z } from "zod";
import type { CircuitBreaker, CircuitBreakerConfig } from "./consumer-policy";
import type { Logger } from "./logger";
import type { Delivery } from "./messages";
import type { ReactionAttributes } from "./trace";

/**
 * The consumer SDK's public types: what `defineConsumer` takes (ConsumerOptions), what a handler
 * gets (HandleContext) and what it returns. Re-exported by sdk/consumer.ts, where consumers
 * import them from.
 */

export { ORDERING_DEFERRALS } from "./constants";

/** Throw this (or a ZodError) from `handle` for failures that retrying cannot fix. */
export class PermanentError extends Error {
  override readonly name: string = "PermanentError";
}

/**
 * An event of a pinned type (`schemaVersions`) whose `dataschema` names a version this consumer
 * does not read: permanent, so it is dead-lettered at once with reason `unsupported_schema_version`.
 */
export class UnsupportedSchemaVersionError extends PermanentError {
  override readonly name: string = "UnsupportedSchemaVersionError";
  constructor(
    readonly type: string,
    readonly version: number,
    readonly supported: readonly number[],
  ) {
    super(`${type} schema version ${version} is not one this consumer reads (${supported.join(", ")})`);
  }
}

/** Per event type, the data schema versions a consumer reads, e.g. `{ "orders.placed": [1, 2] }`. */
export type SchemaVersionPins = Readonly<Record<string, readonly number[]>>;

export const storedEventSchema = z.looseObject({ id: z.string(), source: z.string(), type: z.string() });
export type StoredEvent = Record<string, unknown> & { id: string; source: string; type: string; data?: unknown };

export interface HandleContext<Env> {
  env: Env;
  db: D1Database;
  delivery: Delivery;
  /** Delivery attempt, 1 for the first. */
  attempts: number;
  log: Logger;
  /**
   * The version of its type's data schema the event was validated against at ingest, read from its
   * `dataschema` (an Eventline schema URI of this topic and type); undefined for an event without
   * one (a type with no schema, or stored before events carried their schema).
   */
  schemaVersion: number | undefined;
  /**
   * The attributes to put on an event emitted in reaction to this one: `causationid` (this event's
   * id), `correlationid` (this event's, or its id) and `traceparent` (a child span of this event's
   * trace, `tracestate` kept). The same for every call within one attempt: events emitted together
   * are siblings under the span of this handling.
   */
  reactionAttributes(): ReactionAttributes;
}

export interface ConsumerOptions<Env, Data> {
  subscription: string;
  /** Where idempotency records, checkpoints and dead letters live (and the handler's effects). */
  db: (env: Env) => D1Database;
  /** Optional zod schema for `data`; a mismatch is permanent (straight to the dead letters). */
  schema?: z.ZodType<Data>;
  /**
   * The data schema versions this consumer reads, per event type (sdk/README.md "Pinning schema
   * versions"). An event of a listed type whose `dataschema` names another version fails with
   * UnsupportedSchemaVersionError, dead-lettered at once (reason `unsupported_schema_version`);
   * an event with no Eventline `dataschema` (stored before events carried one) is handled. Types
   * not listed are not checked.
   */
  schemaVersions?: SchemaVersionPins;
  /**
   * Applies one event. Return D1 statements to have them committed atomically with the
   * idempotency record (exactly-once effects); other side effects are at-least-once.
   */
  handle: (event: StoredEvent & { data: Data }, ctx: HandleContext<Env>) => Promise<D1PreparedStatement[] | undefined>;
  /**
   * Applies a set of events at once (optional): what it returns is committed with their idempotency
   * records in one batch. Given the events `queue()` settles together (see `settlement`), in chain
   * order per partition; if it throws, each event runs `handle` alone, so a poisoned event is
   * retried and dead-lettered by itself. `handle` stays required (and is what runs on every other path).
   */
  handleBatch?: (items: { event: StoredEvent & { data: Data }; ctx: HandleContext<Env> }[]) => Promise<D1PreparedStatement[] | undefined>;
  /**
   * `batch` (default): `queue()` settles every live, new, in-order event of a batch in one D1
   * batch (ADR 0036): two round trips per batch instead of one per event. A handler then sees D1
   * as it was when the batch began; one whose reads depend on the effects of an earlier event of
   * the same batch (read-modify-write in JavaScript) sets `event`: each event settles alone, its
   * reads see everything before it. Effects written as SQL (`UPDATE … SET n = n + 1`, upserts)
   * need no such care: the statements run in order.
   */
  settlement?: "batch" | "event";
  /** Deliveries after the first before dead-lettering; match wrangler.toml `max_retries`. */
  maxRetries: number;
  ordering?: "none" | "partition";
  backoff?: { baseSeconds: number; capSeconds: number };
  circuitBreaker?: CircuitBreakerConfig;
  /** Loads an event that travelled by reference (too large for a queue message). */
  resolveRef?: (delivery: Delivery, env: Env) => Promise<StoredEvent>;
  /** Seconds to wait when an event arrives before its predecessor (ordering `partition`). */
  gapRetrySeconds?: number;
  /**
   * The queue's `max_retries` (wrangler.toml). What it allows beyond `maxRetries` is what an ordered
   * subscription's message may spend waiting for its predecessor; a message still waiting then is
   * acked (`parked`) instead of being left for the queue to dead-letter, and the partition log
   * sends it again after the subscription's redelivery timeout (ADR 0030). So waiting for a
   * predecessor is bounded by redelivery, never ends in a dead letter. Default: `maxRetries` +
   * ORDERING_DEFERRALS for ordering `partition`.
   */
  queueMaxRetries?: number;
  /**
   * A replayed event this subscription already settled: `once` (default) acks it as a duplicate
   * (exactly-once effects); `always` runs `handle` again without re-settling (for at-least-once
   * side effects such as webhooks, whose receivers decide what a replay means).
   */
  replays?: "once" | "always";
  /**
   * Plaintext of sensitive fields for a consumer authorized to read them (its Worker can reach the
   * KeyVault): e.g. `decrypt: fieldDecryption((env) => env.KEY_VAULT)` from shared/security/fields.
   * Without it the handler sees the encrypted envelopes, as they are stored and queued. A field
   * whose key was shredded, or does not unwrap, stays an envelope.
   */
  decrypt?: (event: StoredEvent, ctx: { env: Env; topic: string }) => Promise<StoredEvent>;
}

export type Outcome = "handled" | "duplicate" | "retried" | "dead_lettered" | "deferred" | "skipped" | "parked";

export interface Consumer<Env> {
  queue(batch: MessageBatch<unknown>, env: Env, ctx?: ExecutionContext): Promise<void>;
  /** Processes one message and reports what happened (used by `queue`; handy in tests). */
  process(message: Message<unknown>, env: Env): Promise<Outcome>;
  readonly breaker: CircuitBreaker;
}
