import { type EventlineConfig, findTopic, type TopicConfig } from "../../shared/config";
import { EventlineError } from "../../shared/errors";
import { compileFilter, FilterError } from "../../shared/filter";

/** Checks the route groups share: a topic that exists, a filter pattern that compiles. */

export function requireTopic(config: EventlineConfig, name: string): TopicConfig {
  const topic = findTopic(config, name);
  if (topic === undefined) throw new EventlineError("topic_not_found", `topic ${JSON.stringify(name)} does not exist`);
  return topic;
}

/** A filter from a request body: a 422 with `/filter/…` pointers when it does not compile. */
export function requireValidFilter(pattern: unknown): void {
  try {
    compileFilter(pattern);
  } catch (err) {
    if (err instanceof FilterError) {
      throw new EventlineError("schema_violation", err.message, {
        issues: err.issues.map((i) => ({ path: `/filter${i.path === "/" ? "" : i.path}`, message: i.message })),
      });
    }
    throw err;
  }
}
