import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { EventlineConfig } from "../../../shared/config";
import { latestCatalog } from "../asyncapi/catalog";
import { asyncApiDocument, type WebhookSubscription } from "../asyncapi/document";
import { access, canSee, may } from "../auth/access";
import type { Principal } from "../auth/principal";
import type { AppEnv } from "../context";
import { EVENTLINE_VERSION } from "../reference/page";
import { schemaCatalog } from "../schemas/catalog";
import { SCHEMA_CACHE_MS } from "../schemas/registry";
import { listSubscriptionViews } from "../subscription-registry";

const asyncApiRoute = createRoute({
  method: "get",
  path: "/asyncapi.json",
  middleware: [access({ group: "read", action: "list" })] as const,
  tags: ["Topics"],
  summary: "AsyncAPI 3.0 document of the topics, event types and subscriptions the caller may see",
  description: `Generated from the config and the schema registry (a version registered at runtime shows within ${SCHEMA_CACHE_MS / 1000} s): a channel per topic address (publish, partition read, live stream), a message per event type (the whole CloudEvent, \`data\` typed by the type's latest data schema), a send operation per writable topic and a receive operation per read address and per subscription (config and runtime webhooks, webhook targets by their origin only). Topics the caller holds no grant on, and subscriptions of topics it may not consume, are left out (docs/asyncapi.md).`,
  responses: {
    200: {
      description: "The AsyncAPI document",
      content: { "application/json": { schema: z.record(z.string(), z.unknown()).openapi("AsyncApiDocument") } },
    },
  },
});

/** The config as `principal` may see it: the topics it holds a grant on, the subscriptions of topics it may consume. */
function visibleConfig(config: EventlineConfig, principal: Principal): EventlineConfig {
  return {
    ...config,
    topics: config.topics.filter((t) => canSee(principal, t.name, config)),
    subscriptions: config.subscriptions.filter((s) => may(config, principal, "consume", s.topic)),
  };
}

export function asyncApiRoutes(config: EventlineConfig) {
  return new OpenAPIHono<AppEnv>().openapi(asyncApiRoute, async (c) => {
    const principal = c.get("principal");
    const origin = new URL(c.req.url).origin;
    const visible = visibleConfig(config, principal);
    const topics = new Set(visible.topics.map((t) => t.name));
    const webhooks: WebhookSubscription[] = [];
    for (const view of await listSubscriptionViews(c.env.DB)) {
      if (view.webhook === undefined || !topics.has(view.topic) || !may(config, principal, "consume", view.topic)) continue;
      webhooks.push({
        name: view.name,
        topic: view.topic,
        filter: view.filter,
        ordering: view.ordering,
        maxRetries: view.maxRetries,
        url: view.webhook.url,
      });
    }
    // The registry's latest version of each type of the visible topics (runtime ones within SCHEMA_CACHE_MS).
    const catalog = latestCatalog(await schemaCatalog(c.env.DB, visible), origin);
    // Per caller (grants decide what it shows) and changed by webhook subscriptions: not cached by shared caches.
    c.header("cache-control", "private, no-cache");
    return c.json(asyncApiDocument(visible, catalog, webhooks, origin, EVENTLINE_VERSION), 200);
  });
}
