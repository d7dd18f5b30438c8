import type { AnyAggregate } from "../../../shared/aggregate";

/**
 * The aggregates whose commands partition logs run, by name. The platform Worker's entry fills it
 * once, at module load, from the applications it hosts (workers/platform/index.ts over
 * hosting.ts), before any object of the script handles a call; the partition log only looks names
 * up. It lives apart from both so neither the object nor the platform's durable-objects code
 * imports an application (test/docs/boundaries.test.ts), and no import cycle runs through the
 * applications' routes.
 */
export class AggregateRegistry {
  private readonly byName = new Map<string, AnyAggregate>();

  /** Adds aggregates; a name registered twice (by another aggregate) is refused. */
  register(aggregates: readonly AnyAggregate[]): void {
    for (const aggregate of aggregates) {
      const known = this.byName.get(aggregate.name);
      if (known !== undefined && known !== aggregate) throw new Error(`two aggregates are named ${JSON.stringify(aggregate.name)}`);
      if (Object.keys(aggregate.topic.sensitive).length > 0) {
        // Commands run inside the partition log, which holds no field protector (docs/security.md).
        throw new Error(`aggregate ${aggregate.name}: topic ${aggregate.topic.name} has sensitive fields; commands cannot encrypt them`);
      }
      this.byName.set(aggregate.name, aggregate);
    }
  }

  get(name: string): AnyAggregate | undefined {
    return this.byName.get(name);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }
}

/** The script's registry (filled by the Worker's entry, read by every PartitionLog of the isolate). */
export const hostedAggregates = new AggregateRegistry();
