import type { CommandOutcome } from "../../../durable-objects/partition-log";
import type { Logger } from "../../../sdk/logger";
import type { Aggregate } from "../../../shared/aggregate";
import type { EventlineConfig } from "../../../shared/config";
import { EventlineError } from "../../../shared/errors";
import { streamPartition } from "../../../shared/partitioner";
import { flag, partitionStub, partitionUnavailable } from "../ingest/append";

/**
 * The command side of event sourcing, Worker half: one call to the partition log that holds the
 * aggregate's stream, which loads the aggregate (kept in memory there), decides, and appends at
 * the version it decided on, commands on one stream taking turns (ADR 0040). This turns its answer
 * into the HTTP contract's result or problem.
 */

export type { Aggregate } from "../../../shared/aggregate";

export interface CommandOptions {
  config: EventlineConfig;
  /** Client's idempotency key: a command re-sent with it returns its first result instead of running again. */
  idempotencyKey?: string | undefined;
  /** Carried by every event the command writes (`correlationid`). */
  correlationId: string;
  traceparent: string;
  /** The request's origin (`new URL(request.url).origin`): the events' `dataschema` URIs are built on it. */
  origin: string;
  log: Logger;
}

export interface CommandResult {
  subject: string;
  /** The stream's version after the command (that of its last event). */
  version: number;
  partition: number;
  /** Partition sequence of the command's last event: the position read-your-writes waits for. */
  sequence: number;
  events: { id: string; type: string; streamVersion: number; sequence: number }[];
  /** Times the command was decided again after an outside writer moved the stream. */
  conflictRetries: number;
  /** True when this is the stored result of an earlier request with the same idempotency key. */
  replayed: boolean;
}

/**
 * Runs one command against the stream `subject`. Throws EventlineError: `not_found` (404) or
 * `command_rejected` (422) when the state forbids the command, nothing appended;
 * `version_conflict` (409) when outside writers kept moving the stream for every retry; the
 * topic's rules on the decided events (422, 413); 503 when the partition is overloaded or the
 * call failed in transit (the command may have run: re-send it with its idempotency key).
 */
export async function executeCommand<Command, Event extends { type: string; data: unknown }, State>(
  env: Env,
  aggregate: Aggregate<Command, Event, State>,
  subject: string,
  command: Command,
  options: CommandOptions,
): Promise<CommandResult> {
  const { config, log } = options;
  const topic = aggregate.topic;
  const partition = streamPartition(subject, topic.partitions);
  const retryAfter = config.partitionLog.retryAfterSeconds;
  const started = Date.now();
  let outcome: CommandOutcome;
  try {
    outcome = await partitionStub(env, topic.name, partition).command({
      aggregate: aggregate.name,
      topic: topic.name,
      partition,
      subject,
      command,
      ...(options.idempotencyKey !== undefined && { idempotencyKey: options.idempotencyKey }),
      correlationId: options.correlationId,
      traceparent: options.traceparent,
      origin: options.origin,
    });
  } catch (err) {
    if (!flag(err, "overloaded") && !flag(err, "retryable")) throw err;
    log.warn("command call failed", { subject, partition, error: err });
    throw partitionUnavailable(err, "the command's partition call", retryAfter);
  }
  const durationMs = Date.now() - started;
  if (outcome.ok) {
    log.info("command", {
      topic: topic.name,
      partition,
      version: outcome.version,
      events: outcome.events.length,
      conflictRetries: outcome.conflictRetries,
      replayed: outcome.replayed,
      durationMs,
    });
    const { version, sequence, events, conflictRetries, replayed } = outcome;
    return { subject, partition, version, sequence, events, conflictRetries, replayed };
  }
  throw problemOf(outcome, subject, partition);
}

/** The HTTP contract's problem for a command that changed nothing. */
function problemOf(outcome: Exclude<CommandOutcome, { ok: true }>, subject: string, partition: number): EventlineError {
  switch (outcome.code) {
    case "rejected":
      if (outcome.reason === "not_found") return new EventlineError("not_found", outcome.detail);
      return new EventlineError("command_rejected", outcome.detail, { extensions: { reason: outcome.reason } });
    case "version_conflict":
      return new EventlineError("version_conflict", outcome.detail, {
        extensions: {
          subject,
          partition,
          currentVersion: outcome.currentVersion,
          expectedVersion: outcome.expectedVersion,
          attempts: outcome.attempts,
        },
      });
    case "overloaded":
      return new EventlineError("overloaded", `${outcome.detail}; retry after the Retry-After delay, it is safe`, {
        retryAfter: outcome.retryAfter,
      });
    case "problem": {
      const { code, detail, issues, extensions } = outcome.problem;
      return new EventlineError(code, detail, { ...(issues !== undefined && { issues }), ...(extensions !== undefined && { extensions }) });
    }
  }
}
