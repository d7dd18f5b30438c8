import type { SubscriptionConfig } from "./config";
import { compileFilter, type Filter, patternKeys } from "./filter";

/**
 * A route delivered by a direct call instead of a queue (a processor's feed, ADR 0053): the call
 * returns once the other side committed, so its success is the acknowledgement.
 */
export interface DirectTarget {
  processor: string;
  /** `repartition`: input topic → the processor's internal topic; `process`: internal topic → processor instance. */
  stage: "repartition" | "process";
}

/** A subscription as the commit path needs it: where to send, and which events. */
export interface Route {
  name: string;
  /** The queue binding ("" for a direct route). */
  queue: string;
  direct?: DirectTarget;
  matches: Filter;
  /** The top-level attributes its filter reads (none: no filter). */
  keys?: ReadonlySet<string>;
  /** How long a sent event may go unsettled before the log sends it again (redeliverySeconds). */
  redeliveryMs: number;
  /** The longest delay between two of the queue's retries of a failing event (backoff capSeconds). */
  retryCapMs: number;
}

/**
 * The configured subscriptions' routes by topic, filters compiled (once per caller: the partition
 * log compiles the config it is given). Pure: shared/ never imports the application's config.
 */
export function compileRoutes(subscriptions: readonly SubscriptionConfig[]): Map<string, Route[]> {
  const byTopic = new Map<string, Route[]>();
  for (const sub of subscriptions) {
    const routes = byTopic.get(sub.topic) ?? [];
    routes.push({
      name: sub.name,
      queue: sub.queue,
      matches: compileFilter(sub.filter),
      redeliveryMs: sub.redeliverySeconds * 1000,
      retryCapMs: sub.backoff.capSeconds * 1000,
      ...(sub.filter === undefined ? {} : { keys: patternKeys(sub.filter) }),
    });
    byTopic.set(sub.topic, routes);
  }
  return byTopic;
}

/** Queue producer bindings are looked up by name; checked, not cast. */
export function queueBinding(env: Env, binding: string): Queue {
  const q: unknown = Reflect.get(env, binding);
  if (typeof q !== "object" || q === null || typeof (q as { sendBatch?: unknown }).sendBatch !== "function") {
    throw new Error(`queue binding ${binding} is missing from wrangler.toml`);
  }
  return q as Queue;
}

/**
 * Events a subscription has yet to handle in one partition: those routed to it above its
 * checkpoint that it has not acknowledged (`unacknowledged`, counted by the partition log), so
 * sequences routed elsewhere never count. Without that count (a partition that did not keep
 * delivery state), head − checkpoint bounds it until the checkpoint reaches the last routed event.
 */
export function lagEvents(checkpoint: number, head: number, routedThrough: number | undefined, unacknowledged?: number): number {
  if (checkpoint >= (routedThrough ?? 0)) return 0;
  return unacknowledged ?? Math.max(0, head - checkpoint);
}
