import type { z } from "zod";
import type { TopicConfig } from "./config";
import type { Decider } from "./decider";

/**
 * An event-sourced aggregate as the platform hosts it: which topic its streams live on, its pure
 * decider, how its commands are parsed and its events read back, and how its state is
 * snapshotted. Declared by an application (the orders example), registered with the platform
 * Worker (workers/platform/hosting.ts), and run by the partition log that holds a stream
 * (durable-objects/partition-log/commands/, ADR 0040). Nothing here does I/O.
 */
export interface Aggregate<Command, Event extends { type: string; data: unknown }, State> {
  /** The registry key: a command names its aggregate, and the partition log looks it up by this. */
  name: string;
  topic: TopicConfig;
  /** CloudEvents `source` of the events written for `subject`. */
  source(subject: string): string;
  decider: Decider<Command, Event, State>;
  /** A command as it crosses into the partition log (RPC arguments are parsed, not trusted). */
  commandSchema: z.ZodType<Command>;
  /** Format of the serialized state; snapshots of another format are ignored. */
  snapshotSchema: number;
  serialize(state: State): string;
  /** Throws on a snapshot it cannot read (the stream is then replayed from the start). */
  deserialize(text: string): State;
  /** A stored event of the stream as a domain event. */
  parse(stored: Record<string, unknown>): Event;
}

/**
 * Any aggregate, its types erased: what a registry holds. Sound in use because a hosted aggregate
 * only ever meets its own values: its command parsed by its own schema, its state folded by its
 * own decider.
 */
export type AnyAggregate = Aggregate<unknown, { type: string; data: unknown }, unknown>;
