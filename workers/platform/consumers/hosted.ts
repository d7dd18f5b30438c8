import type { Consumer } from "../../../sdk";
import { activityConsumer } from "./activity";
import { customerSummaryConsumer, ordersViewConsumer } from "./orders-projections";

/**
 * The consumer implementations the platform Worker hosts, by subscription name. Which queue feeds
 * which of them is configuration (eventline.config.ts: a subscription with `consumer: "platform"`,
 * its queue `eventline-<name>`), not code: workers/platform/queue.ts looks them up, and a test
 * checks that every platform-consumed subscription has one here.
 */
export const hostedConsumers: Readonly<Record<string, Consumer<Env>>> = {
  activity: activityConsumer,
  "orders-view": ordersViewConsumer,
  "customer-summary": customerSummaryConsumer,
};
