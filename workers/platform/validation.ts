import { type EventlineConfig, findTopic, type TopicConfig } from "../../shared/config";
import { EventlineError } from "../../shared/errors";
import { compileFilter, FilterError } from "../../shared/filter";
import { jsonPointer } from "../../shared/json";

/** Checks the route groups share: parameters, page sizes, topics, filter patterns. */

/** zod issues of one part of the request (`query`, `param`, `json`…) as a 400 with JSON Pointers. */
export function invalidParameter(issues: readonly { path: PropertyKey[]; message: string }[], where: string): EventlineError {
  // `json` is the body to a client, not a format it got wrong (a body that is not JSON never gets here).
  return new EventlineError("invalid_parameter", where === "json" ? "invalid request body" : `invalid ${where}`, {
    issues: issues.map((i) => ({ path: jsonPointer(`/${where}`, i.path), message: i.message })),
  });
}

/** A read's page size: the default when absent, else 1…`read.maxLimit` (400 otherwise). */
export function readLimit(config: EventlineConfig, limit: number | undefined): number {
  const value = limit ?? config.read.defaultLimit;
  if (value < 1 || value > config.read.maxLimit) {
    throw new EventlineError("invalid_parameter", `limit must be between 1 and ${config.read.maxLimit}`, {
      issues: [{ path: "/query/limit", message: `${value} is outside 1-${config.read.maxLimit}` }],
    });
  }
  return value;
}

export function requireTopic(config: EventlineConfig, name: string): TopicConfig {
  const topic = findTopic(config, name);
  if (topic === undefined) throw new EventlineError("topic_not_found", `topic ${JSON.stringify(name)} does not exist`);
  return topic;
}

/** A partition of `topic` (the path parameter is already a non-negative integer): 404 past its last one. */
export function requirePartition(topic: TopicConfig, partition: number): void {
  if (partition >= topic.partitions) {
    throw new EventlineError(
      "not_found",
      `topic ${topic.name} has ${topic.partitions} partitions (0-${topic.partitions - 1}); there is no partition ${partition}`,
    );
  }
}

/** A filter from a request body: a 422 with `/filter/…` pointers when it does not compile. */
export function requireValidFilter(pattern: unknown): void {
  try {
    compileFilter(pattern);
  } catch (err) {
    if (err instanceof FilterError) {
      throw new EventlineError("unprocessable_request", err.message, {
        issues: err.issues.map((i) => ({ path: `/filter${i.path === "/" ? "" : i.path}`, message: i.message })),
      });
    }
    throw err;
  }
}
