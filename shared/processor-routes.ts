import { DEFAULT_REDELIVERY_SECONDS } from "./config";
import { compileFilter, patternKeys } from "./filter";
import { type ProcessorConfig, processorRouteOf, repartitionTopicOf } from "./processors-config";
import type { Route } from "./subscriptions";

/**
 * A processor's two feeds as partition-log routes (ADR 0053), both direct (no queue): its input
 * topic → its internal topic (`repartition`, filtered by the processor's `input.filter`), and its
 * internal topic → its instances (`process`, every event). Both are named `processor:<name>`.
 */
export function processorRoutes(processors: readonly ProcessorConfig[]): Map<string, Route[]> {
  const byTopic = new Map<string, Route[]>();
  const add = (topic: string, route: Route) => byTopic.set(topic, [...(byTopic.get(topic) ?? []), route]);
  for (const p of processors) {
    const name = processorRouteOf(p.name);
    const common = { name, queue: "", redeliveryMs: DEFAULT_REDELIVERY_SECONDS * 1000, retryCapMs: 60_000 };
    add(p.input.topic, {
      ...common,
      matches: compileFilter(p.input.filter),
      direct: { processor: p.name, stage: "repartition" },
      ...(p.input.filter === undefined ? {} : { keys: patternKeys(p.input.filter) }),
    });
    add(repartitionTopicOf(p.name), { ...common, matches: compileFilter(undefined), direct: { processor: p.name, stage: "process" } });
  }
  return byTopic;
}
