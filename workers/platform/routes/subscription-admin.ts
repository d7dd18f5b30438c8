import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { problemResponse, SubscriptionNameParam } from "../../../shared/api-schemas";
import { type EventlineConfig, SUBSCRIPTION_NAME } from "../../../shared/config";
import { EventlineError } from "../../../shared/errors";
import { redactUrl } from "../../../shared/redact-url";
import { generateWebhookSecret, isValidWebhookSecret } from "../../../shared/webhook-signature";
import { webhookAllowOf, webhookTargetRefusal } from "../../../shared/webhook-target";
import { access, bodyTopic, subscriptionResource, subscriptionTopic } from "../auth/access";
import type { AppEnv } from "../context";
import { partitionStub } from "../ingest/append";
import { isConfigSubscription, WEBHOOK_MAX_RETRIES, webhookRoutesOf } from "../subscription-registry";
import { requireValidFilter } from "../validation";

const CreateSubscriptionSchema = z
  .object({
    name: z.string().regex(SUBSCRIPTION_NAME, "name must be 1-48 chars of a-z, 0-9, '-', starting with a letter"),
    topic: z.string().min(1),
    filter: z.record(z.string(), z.unknown()).optional().openapi({ description: "Content-based filter (EventBridge-style pattern)" }),
    ordering: z.enum(["none", "partition"]).default("none"),
    maxRetries: z.number().int().min(0).max(WEBHOOK_MAX_RETRIES).default(5),
    webhook: z
      .object({
        url: z.url({ protocol: /^https?$/, error: "webhook.url must be an absolute http(s) URL" }),
        secret: z.string().optional().openapi({ description: "whsec_<base64 of 24-64 bytes>; generated (and returned once) when absent" }),
      })
      .strict(),
  })
  .strict()
  .openapi("CreateSubscription");

const createRoute_ = createRoute({
  method: "post",
  path: "/v1/subscriptions",
  middleware: [access({ group: "admin", action: "admin", topic: bodyTopic, audit: "subscriptions.create" })] as const,
  tags: ["Subscriptions"],
  summary: "Create a webhook subscription at runtime",
  description:
    "Events committed from now on whose attributes match `filter` are POSTed to `webhook.url` as structured CloudEvents, signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`). 2xx = delivered; anything else or a timeout is retried with backoff, then dead-lettered (see the DLQ routes).",
  request: { body: { required: true, content: { "application/json": { schema: CreateSubscriptionSchema } } } },
  responses: {
    201: {
      description: "Created. `webhook.secret` is returned only here.",
      content: {
        "application/json": {
          schema: z.object({ name: z.string(), topic: z.string(), webhook: z.object({ url: z.string(), secret: z.string() }) }),
        },
      },
    },
    400: problemResponse(
      "Invalid body, URL or secret, or a webhook target that is not public (loopback, private, link-local, internal names) and not allowed by EVENTLINE_WEBHOOK_ALLOW",
    ),
    409: problemResponse("A subscription with this name exists"),
    422: problemResponse("Unknown topic or invalid filter"),
    503: problemResponse("Stored, but not every partition could be told; delete the subscription and create it again"),
  },
});

const deleteRoute = createRoute({
  method: "delete",
  path: "/v1/subscriptions/{name}",
  middleware: [
    access({ group: "admin", action: "admin", topic: subscriptionTopic, audit: "subscriptions.delete", resource: subscriptionResource }),
  ] as const,
  tags: ["Subscriptions"],
  summary: "Delete a webhook subscription",
  request: {
    params: z.object({ name: SubscriptionNameParam }),
  },
  responses: {
    204: { description: "Deleted; events committed from now on are not routed to it" },
    404: problemResponse("Unknown subscription"),
    409: problemResponse("The subscription is declared in eventline.config.ts and cannot be deleted at runtime"),
    503: problemResponse("Deleted, but not every partition could be told"),
  },
});

/**
 * Refuses a webhook target that is not public (loopback, private, link-local, internal names…)
 * unless EVENTLINE_WEBHOOK_ALLOW allows it: an `admin` of one topic must not be able to make the
 * platform POST signed requests into its own network (SSRF). Delivery checks again.
 */
function requirePublicTarget(url: string, allowVar: string | undefined): void {
  const refusal = webhookTargetRefusal(url, webhookAllowOf(allowVar));
  if (refusal === undefined) return;
  throw new EventlineError(
    "invalid_parameter",
    `webhook.url must be a public target: ${refusal} (EVENTLINE_WEBHOOK_ALLOW does not allow it; see docs/security.md)`,
    { issues: [{ path: "/webhook/url", message: refusal }] },
  );
}

/** Tells every partition of the topic its current runtime routes. */
async function pushRoutes(env: Env, config: EventlineConfig, topic: string): Promise<number[]> {
  const routes = await webhookRoutesOf(env.DB, topic);
  const partitions = config.topics.find((t) => t.name === topic)?.partitions ?? 0;
  const results = await Promise.allSettled(
    Array.from({ length: partitions }, (_, p) => partitionStub(env, topic, p).setRuntimeRoutes(routes)),
  );
  return results.flatMap((r, p) => (r.status === "rejected" ? [p] : []));
}

export function subscriptionAdminRoutes(config: EventlineConfig) {
  return new OpenAPIHono<AppEnv>()
    .openapi(createRoute_, async (c) => {
      const body = c.req.valid("json");
      if (!config.topics.some((t) => t.name === body.topic)) {
        throw new EventlineError("unprocessable_request", `topic ${JSON.stringify(body.topic)} does not exist`, {
          issues: [{ path: "/topic", message: "unknown topic" }],
        });
      }
      requireValidFilter(body.filter);
      if (body.webhook.secret !== undefined && !isValidWebhookSecret(body.webhook.secret)) {
        throw new EventlineError("invalid_parameter", "webhook.secret must be whsec_ followed by the base64 of 24 to 64 random bytes", {
          issues: [{ path: "/webhook/secret", message: "not a Standard Webhooks secret" }],
        });
      }
      if (isConfigSubscription(body.name)) {
        throw new EventlineError("conflict", `subscription ${body.name} is declared in eventline.config.ts`);
      }
      const target = redactUrl(body.webhook.url);
      c.set("auditDetails", { target });
      requirePublicTarget(body.webhook.url, c.env.EVENTLINE_WEBHOOK_ALLOW);
      const secret = body.webhook.secret ?? generateWebhookSecret();
      const inserted = await c.env.DB.prepare(
        `INSERT INTO webhook_subscriptions (name, topic, filter, ordering, max_retries, url, secret, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`,
      )
        .bind(
          body.name,
          body.topic,
          body.filter === undefined ? null : JSON.stringify(body.filter),
          body.ordering,
          body.maxRetries,
          body.webhook.url,
          secret,
          Date.now(),
        )
        .run();
      if (inserted.meta.changes === 0) throw new EventlineError("conflict", `subscription ${body.name} already exists`);
      const failed = await pushRoutes(c.env, config, body.topic);
      c.get("log").info("subscription created", {
        subscription: body.name,
        topic: body.topic,
        target,
        failedPartitions: failed,
      });
      if (failed.length > 0) {
        throw new EventlineError(
          "unavailable",
          `subscription stored, but partitions ${failed.join(", ")} were not reached; delete and create it again`,
          {
            retryAfter: 1,
          },
        );
      }
      return c.json({ name: body.name, topic: body.topic, webhook: { url: body.webhook.url, secret } }, 201, {
        "cache-control": "no-store",
      });
    })
    .openapi(deleteRoute, async (c) => {
      const { name } = c.req.valid("param");
      if (isConfigSubscription(name)) {
        throw new EventlineError("conflict", `subscription ${name} is declared in eventline.config.ts; remove it there`);
      }
      const row = await c.env.DB.prepare("DELETE FROM webhook_subscriptions WHERE name = ? RETURNING topic")
        .bind(name)
        .first<{ topic: string }>();
      if (row === null) throw new EventlineError("not_found", `subscription ${JSON.stringify(name)} does not exist`);
      const failed = await pushRoutes(c.env, config, row.topic);
      c.get("log").info("subscription deleted", { subscription: name, topic: row.topic, failedPartitions: failed });
      if (failed.length > 0) {
        throw new EventlineError(
          "unavailable",
          `subscription deleted, but partitions ${failed.join(", ")} were not reached and may still route to it`,
          {
            retryAfter: 1,
          },
        );
      }
      return c.body(null, 204);
    });
}
