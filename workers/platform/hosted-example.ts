import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Consumer } from "../../sdk";
import type { EventlineConfig } from "../../shared/config";
import type { AppEnv } from "./context";

/**
 * What the platform Worker hosts beside its own routes and consumers: applications built on it
 * (the examples under workers/examples/), each with HTTP routes to mount and consumers by
 * subscription name. The platform's code names none of them: hosting.ts lists them, and the
 * config decides which subscription's queue a hosted consumer takes (`consumer: "platform"`).
 */
export interface HostedExample {
  name: string;
  routes?: (config: EventlineConfig) => OpenAPIHono<AppEnv>;
  consumers?: Readonly<Record<string, Consumer<Env>>>;
}
