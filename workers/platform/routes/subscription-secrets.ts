import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { problemResponse, SubscriptionNameParam } from "../../../shared/api-schemas";
import { EventlineError } from "../../../shared/errors";
import { generateWebhookSecret } from "../../../shared/webhook-signature";
import { access, subscriptionResource, subscriptionTopic } from "../auth/access";
import type { AppEnv } from "../context";
import { optionalJsonBody } from "../optional-body";
import { isConfigSubscription } from "../subscription-registry";

/**
 * Rotation of a webhook subscription's signing secret with an overlap window (docs/security.md
 * "Rotating a webhook signing secret"): a new secret is generated and returned once; until the
 * window ends every delivery is signed with both (Standard Webhooks allows several space-separated
 * signatures), so a receiver can switch to the new secret without a failed delivery.
 */

export const DEFAULT_OVERLAP_SECONDS = 24 * 3600;
export const MAX_OVERLAP_SECONDS = 7 * 24 * 3600;

const ROTATE_PATH = "/v1/subscriptions/{name}/secret:rotate";

const RotateSecretSchema = z
  .object({
    overlapSeconds: z
      .number()
      .int()
      .min(0)
      .max(MAX_OVERLAP_SECONDS)
      .optional()
      .openapi({
        description: `How long deliveries stay signed with the old secret too (default ${DEFAULT_OVERLAP_SECONDS} s = 24 h, at most ${MAX_OVERLAP_SECONDS} s = 7 days); 0 drops it at once (a leaked secret).`,
      }),
  })
  .strict()
  .openapi("RotateSubscriptionSecret");

const RotatedSecretSchema = z
  .object({
    name: z.string(),
    topic: z.string(),
    webhook: z.object({
      secret: z.string().openapi({ description: "The new signing secret (whsec_…), shown only in this response." }),
      previousSecretExpiresAt: z
        .string()
        .nullable()
        .openapi({ description: "Until when deliveries are also signed with the previous secret; null when it was dropped at once." }),
    }),
  })
  .openapi("RotatedSubscriptionSecret");

/**
 * Hono reads every `:` in a route path as the start of a parameter, so the literal custom-method
 * suffix `secret:rotate` would also match `secret` followed by anything (`secretx`). This makes
 * the match exact; it runs before the access check, so a near miss is a plain 404.
 */
const exactSuffix =
  (suffix: string): MiddlewareHandler<AppEnv> =>
  async (c, next) => {
    if (!c.req.path.endsWith(suffix)) return c.notFound();
    await next();
  };

const rotateRoute = createRoute({
  method: "post",
  path: ROTATE_PATH,
  middleware: [
    exactSuffix("/secret:rotate"),
    access({
      group: "admin",
      action: "admin",
      topic: subscriptionTopic,
      audit: "subscriptions.secret.rotate",
      resource: subscriptionResource,
    }),
    optionalJsonBody,
  ] as const,
  tags: ["Subscriptions"],
  summary: "Rotate a webhook subscription's signing secret, with an overlap window",
  description:
    "Generates a new signing secret and returns it once (`Cache-Control: no-store`). Until `previousSecretExpiresAt` every delivery carries two signatures in `webhook-signature` (`v1,<new> v1,<old>`), so receivers verifying with either secret accept it; afterwards only the new one. A rotation during an overlap ends the earlier overlap: the secret before the current one is dropped. Deliveries pick the change up within 5 s. Needs `admin` on the subscription's topic; audited as `subscriptions.secret.rotate` (never with a secret).",
  request: {
    params: z.object({ name: SubscriptionNameParam }),
    body: { required: false, content: { "application/json": { schema: RotateSecretSchema } } },
  },
  responses: {
    200: { description: "Rotated", content: { "application/json": { schema: RotatedSecretSchema } } },
    400: problemResponse("Invalid body (overlapSeconds not an integer from 0 to 604800)"),
    404: problemResponse("Unknown subscription"),
    409: problemResponse("The subscription is declared in eventline.config.ts (delivered to a Worker, no signing secret)"),
  },
});

const rotatedRow = z.object({ topic: z.string() });

export function subscriptionSecretRoutes() {
  return new OpenAPIHono<AppEnv>().openapi(rotateRoute, async (c) => {
    const { name } = c.req.valid("param");
    // Without a body (or without the member) the default overlap applies.
    const overlapSeconds = c.req.valid("json").overlapSeconds ?? DEFAULT_OVERLAP_SECONDS;
    if (isConfigSubscription(name)) {
      throw new EventlineError(
        "conflict",
        `subscription ${name} is declared in eventline.config.ts and delivered to a Worker: it has no signing secret`,
      );
    }
    const secret = generateWebhookSecret();
    const expiresAt = overlapSeconds === 0 ? null : Date.now() + overlapSeconds * 1000;
    // One statement, so concurrent rotations cannot interleave: the right-hand sides read the row
    // as it was, so the current secret becomes the previous one (or is dropped with no overlap).
    const raw = await c.env.DB.prepare(
      `UPDATE webhook_subscriptions
       SET previous_secret = CASE WHEN ?2 IS NULL THEN NULL ELSE secret END, previous_secret_expires_at = ?2, secret = ?3
       WHERE name = ?1 RETURNING topic`,
    )
      .bind(name, expiresAt, secret)
      .first();
    if (raw === null) throw new EventlineError("not_found", `subscription ${JSON.stringify(name)} does not exist`);
    const { topic } = rotatedRow.parse(raw);
    const previousSecretExpiresAt = expiresAt === null ? null : new Date(expiresAt).toISOString();
    c.set("auditDetails", { overlapSeconds, previousSecretExpiresAt });
    c.get("log").info("subscription secret rotated", { subscription: name, topic, overlapSeconds });
    return c.json({ name, topic, webhook: { secret, previousSecretExpiresAt } }, 200, { "cache-control": "no-store" });
  });
}
