import { z } from "zod";
import config from "../../eventline.config";
import { DEFAULT_REDELIVERY_SECONDS, WEBHOOK_BACKOFF } from "../../shared/config";
import { compileFilter, type FilterPattern, patternKeys } from "../../shared/filter";
import { processorRoutes } from "../../shared/processor-routes";
import { compileRoutes, type Route } from "../../shared/subscriptions";
import type { SqlMigration } from "../sql-migrations";
import type { LogHost } from "./host";

/**
 * The routes capability: where a committed event goes. Configured subscriptions come from the
 * config; runtime (webhook) ones are pushed by the Worker and kept in `runtime_routes`, compiled
 * once. Filters are evaluated at commit time, so a route applies to events committed after it.
 */

/** The configured subscriptions' routes and processors' feeds, filters compiled once per isolate. */
const CONFIGURED = compileRoutes(config.subscriptions);
const PROCESSOR_ROUTES = processorRoutes(config.processors);
for (const [topic, routes] of PROCESSOR_ROUTES) CONFIGURED.set(topic, [...(CONFIGURED.get(topic) ?? []), ...routes]);
const routesFor = (topic: string): Route[] => CONFIGURED.get(topic) ?? [];

/** Runtime (webhook) subscriptions of this partition's topic, pushed by the Worker. */
export const runtimeRoutesSchema = z
  .array(z.object({ name: z.string().min(1), filter: z.record(z.string(), z.unknown()).nullable() }))
  .max(1000);
export type RuntimeRoutes = z.input<typeof runtimeRoutesSchema>;
/** Every runtime subscription is delivered through the shared webhook queue. */
const RUNTIME_ROUTE_QUEUE = "WEBHOOK_DELIVERY";

/**
 * Routes of subscriptions without a filter: every event matches them (compileFilter(undefined)),
 * so the commit path needn't parse the stored event for them. Configured ones are found here,
 * runtime ones are added as they are compiled.
 */
const UNFILTERED = new WeakSet<Route>([
  ...config.subscriptions.flatMap((s) => (s.filter === undefined ? routesFor(s.topic).filter((r) => r.name === s.name) : [])),
  // A processor's feed is unfiltered when its input declares no filter (and always from its internal topic).
  ...[...PROCESSOR_ROUTES.values()].flat().filter((r) => r.keys === undefined),
]);
export const isUnfiltered = (route: Route) => UNFILTERED.has(route);

export const runtimeRoutesMigration: SqlMigration = {
  id: 6,
  name: "runtime routes",
  up: ({ sql }) => sql.exec(`CREATE TABLE IF NOT EXISTS runtime_routes (name TEXT PRIMARY KEY, filter TEXT)`),
};

export class Routes {
  /** Webhook subscriptions created at runtime, compiled; persisted in `runtime_routes`. */
  private runtime: Route[];

  constructor(private readonly host: Pick<LogHost, "sql" | "storage">) {
    this.runtime = compile(
      host.sql.exec<{ name: string; filter: string | null }>(`SELECT name, filter FROM runtime_routes ORDER BY name`).toArray(),
    );
  }

  /** Configured subscriptions of the topic, then runtime (webhook) ones. */
  of(topic: string): Route[] {
    return this.runtime.length === 0 ? routesFor(topic) : [...routesFor(topic), ...this.runtime];
  }

  /**
   * A subscription's route as configured now. Looked up on every use, not snapshotted: a
   * subscription created while a relay runs must not have its fresh rows taken for a removed one's.
   */
  find(topic: string, subscription: string): Route | undefined {
    return [...routesFor(topic), ...this.runtime].find((r) => r.name === subscription);
  }

  /** Replaces the runtime routes (already parsed); returns how many there are now. */
  replace(routes: z.output<typeof runtimeRoutesSchema>): number {
    const rows = routes.map((r) => ({ name: r.name, filter: r.filter === null ? null : JSON.stringify(r.filter) }));
    const compiled = compile(rows);
    this.host.storage.transactionSync(() => {
      this.host.sql.exec(`DELETE FROM runtime_routes`);
      for (const r of rows) this.host.sql.exec(`INSERT INTO runtime_routes (name, filter) VALUES (?, ?)`, r.name, r.filter);
    });
    this.runtime = compiled;
    return compiled.length;
  }
}

function compile(rows: { name: string; filter: string | null }[]): Route[] {
  return rows.map((r) => {
    const pattern = r.filter === null ? undefined : (JSON.parse(r.filter) as FilterPattern);
    const route: Route = {
      name: r.name,
      queue: RUNTIME_ROUTE_QUEUE,
      matches: compileFilter(pattern),
      redeliveryMs: DEFAULT_REDELIVERY_SECONDS * 1000,
      retryCapMs: WEBHOOK_BACKOFF.capSeconds * 1000,
      ...(pattern === undefined ? {} : { keys: patternKeys(pattern) }),
    };
    if (r.filter === null) UNFILTERED.add(route);
    return route;
  });
}
