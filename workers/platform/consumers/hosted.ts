import type { Consumer } from "../../../sdk";
import { hostedExamples } from "../hosting";
import { activityConsumer } from "./activity";

/**
 * The consumer implementations the platform Worker hosts, by subscription name: its own
 * (`activity`) and those of the applications it hosts (workers/platform/hosting.ts). Which queue feeds
 * which of them is configuration (eventline.config.ts: a subscription with `consumer: "platform"`,
 * its queue `eventline-<name>`), not code: workers/platform/queue.ts looks them up, and a test
 * checks that every platform-consumed subscription has one here.
 */
export const hostedConsumers: Readonly<Record<string, Consumer<Env>>> = {
  activity: activityConsumer,
  ...Object.assign({}, ...hostedExamples.map((example) => example.consumers ?? {})),
};
