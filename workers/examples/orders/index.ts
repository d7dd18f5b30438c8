import type { HostedExample } from "../../platform/hosted-example";
import { ordersAggregate } from "./aggregate";
import { customerSummaryConsumer, ordersViewConsumer } from "./projections";
import { orderRoutes } from "./routes";

/**
 * The orders demo (event sourcing and CQRS on Eventline): the `orders` aggregate's commands
 * (aggregate.ts over the pure decide/evolve of domain.ts), its event schemas (schemas.ts, which the
 * `orders` topic registers in eventline.config.ts), two projections into D1 read models
 * (projections.ts) and the HTTP routes of its commands and queries (routes.ts). The platform hosts
 * it through workers/platform/hosting.ts: its routes are mounted and its consumers take the batches
 * of the subscriptions of the same names that the config gives to the platform.
 */
export const ordersExample: HostedExample = {
  name: "orders",
  routes: orderRoutes,
  aggregates: [ordersAggregate],
  consumers: { "orders-view": ordersViewConsumer, "customer-summary": customerSummaryConsumer },
};
