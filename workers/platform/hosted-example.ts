import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Consumer } from "../../sdk";
import type { AnyAggregate } from "../../shared/aggregate";
import type { EventlineConfig } from "../../shared/config";
import type { AppEnv } from "./context";

/**
 * What the platform Worker hosts beside its own routes and consumers: applications built on it
 * (the examples under workers/examples/), each with HTTP routes to mount, consumers by
 * subscription name and event-sourced aggregates. The platform's code names none of them:
 * hosting.ts lists them, the config decides which subscription's queue a hosted consumer takes
 * (`consumer: "platform"`), and the Worker's entry registers the aggregates for the partition logs.
 */
export interface HostedExample {
  name: string;
  routes?: (config: EventlineConfig) => OpenAPIHono<AppEnv>;
  consumers?: Readonly<Record<string, Consumer<Env>>>;
  /** Event-sourced aggregates whose commands the partition logs run (ADR 0040), each by its name. */
  aggregates?: readonly AnyAggregate[];
}
