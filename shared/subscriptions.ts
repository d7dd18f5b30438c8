import config from "../eventline.config";
import type { SubscriptionConfig } from "./config";
import { compileFilter, type Filter, patternKeys } from "./filter";

/** A subscription as the commit path needs it: where to send, and which events. */
export interface Route {
  name: string;
  queue: string;
  matches: Filter;
  /** The top-level attributes its filter reads (none: no filter). */
  keys?: ReadonlySet<string>;
}

const byTopic = new Map<string, Route[]>();
for (const sub of config.subscriptions) {
  const routes = byTopic.get(sub.topic) ?? [];
  routes.push({
    name: sub.name,
    queue: sub.queue,
    matches: compileFilter(sub.filter),
    ...(sub.filter === undefined ? {} : { keys: patternKeys(sub.filter) }),
  });
  byTopic.set(sub.topic, routes);
}

/** The configured subscriptions of a topic, filters compiled once per isolate. */
export function routesFor(topic: string): Route[] {
  return byTopic.get(topic) ?? [];
}

export function findSubscription(name: string): SubscriptionConfig | undefined {
  return config.subscriptions.find((s) => s.name === name);
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
 * Events a subscription has yet to handle in one partition. A filtered subscription never sees
 * some sequences: once its checkpoint reaches the last event routed to it, it is caught up
 * whatever the head; before that, head − checkpoint bounds the lag.
 */
export function lagEvents(checkpoint: number, head: number, routedThrough: number | undefined): number {
  return checkpoint >= (routedThrough ?? 0) ? 0 : Math.max(0, head - checkpoint);
}
