import { z } from "zod";
import type { ErrorCode, ProblemIssue } from "../../../shared/errors";
import type { ExpectedVersion } from "../input";
import { subjectSchema } from "../input";

/** What PartitionLog.command() accepts across the RPC boundary and what it answers. */

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

export const commandInputSchema = z
  .object({
    /** The registered aggregate (AggregateRegistry) whose decider judges the command. */
    aggregate: z.string().min(1).max(128),
    topic: z.string().min(1),
    partition: z.number().int().nonnegative(),
    /** The aggregate's stream. */
    subject: subjectSchema,
    /** Parsed by the aggregate's own commandSchema once the aggregate is known. */
    command: z.unknown(),
    /** Event ids become `<key>.<i>`: a re-sent command finds its first result (same rule as the HTTP header). */
    idempotencyKey: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,128}$/)
      .optional(),
    /** Carried by every event the command writes (`correlationid`). */
    correlationId: z.string().min(1).max(256),
    traceparent: z.string().regex(TRACEPARENT),
    /** The command request's origin: the events' `dataschema` URIs are built on it (ADR 0051). */
    origin: z.string().regex(/^https?:\/\/[^/?#\s]+$/, "an origin such as https://eventline.example"),
  })
  .strict();
export type CommandInput = z.input<typeof commandInputSchema>;

export interface CommandEvent {
  id: string;
  type: string;
  streamVersion: number;
  sequence: number;
}

/**
 * A command's answer. `ok: false` outcomes changed nothing; the Worker turns each into the
 * problem+json answer of the HTTP contract (workers/platform/commands/execute.ts).
 */
export type CommandOutcome =
  | {
      ok: true;
      /** The stream's version after the command (that of its last event). */
      version: number;
      /** Partition sequence of the command's last event (0 when it recorded nothing). */
      sequence: number;
      events: CommandEvent[];
      /** Times the command was decided again because an outside writer moved the stream meanwhile. */
      conflictRetries: number;
      /** The stored result of an earlier command with the same idempotency key. */
      replayed: boolean;
    }
  /** decide refused the command (DomainError): not_found → 404, the others → 422 with `reason`. */
  | { ok: false; code: "rejected"; reason: "not_found" | "already_exists" | "rejected"; detail: string }
  /** Outside writers kept moving the stream for every attempt. */
  | { ok: false; code: "version_conflict"; detail: string; currentVersion: number; expectedVersion: ExpectedVersion; attempts: number }
  | { ok: false; code: "overloaded"; detail: string; retryAfter: number }
  /** The decided events broke a topic rule (schema, size) or an id was reused with other content. */
  | {
      ok: false;
      code: "problem";
      problem: { code: ErrorCode; detail: string; issues?: ProblemIssue[]; extensions?: Record<string, unknown> };
    };
