import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { problemResponse } from "../../../shared/api-schemas";
import type { EventlineConfig } from "../../../shared/config";
import { EventlineError } from "../../../shared/errors";
import { deniedBy, type Grant, implies, parseGrant, patternCovers, patternsOverlap } from "../../../shared/security/grants";
import { access } from "../auth/access";
import {
  type ApiKeyRecord,
  CreatorInactiveError,
  createApiKey,
  DEFAULT_ROTATION_GRACE_SECONDS,
  getApiKey,
  listApiKeys,
  MAX_ROTATION_GRACE_SECONDS,
  revokeApiKey,
  rotateApiKey,
} from "../auth/api-keys";
import type { Principal } from "../auth/principal";
import type { AppEnv } from "../context";
import { optionalJsonBody } from "../optional-body";

/** API key administration (global admins only; every change is audited). */

const KEY_ID = /^[a-z0-9]{12}$/;

const GrantString = z.string().min(3).max(200).openapi({ example: "produce:orders" });

const CreateKeySchema = z
  .object({
    name: z.string().min(1).max(100).openapi({ example: "checkout-service" }),
    grants: z
      .array(GrantString)
      .min(1)
      .openapi({ description: "`[!]action:topic-pattern`; actions produce, consume, replay, admin, decrypt (docs/security.md)" }),
    tenant: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/)
      .optional()
      .openapi({ description: "Recorded as the owner of what the key does and in audit records" }),
    expiresInDays: z.number().int().min(1).max(3650).optional().openapi({
      description:
        "Default: as long as allowed: never for the admin key, the creator's expiry for a key minted by a key (a key never outlives its creator), `security.apiKeys.jwtKeyMaxDays` for a JWT principal. Longer than that: 400.",
    }),
  })
  .strict()
  .openapi("CreateApiKey");

const ApiKeySchema = z
  .object({
    id: z.string().openapi({ example: "k3x9q0w2m4ab" }),
    prefix: z.string().openapi({ description: "How the key starts (`evl_<id>`), to recognise it" }),
    name: z.string(),
    grants: z.array(z.string()),
    tenant: z.string().nullable(),
    createdBy: z.string(),
    createdAt: z.string(),
    expiresAt: z.string().nullable(),
    revokedAt: z.string().nullable(),
    revokedBy: z.string().nullable(),
    rotatedAt: z.string().nullable().openapi({ description: "When the secret was last rotated" }),
    previousSecretExpiresAt: z
      .string()
      .nullable()
      .openapi({ description: "Until when the secret replaced by the last rotation still works (null: it does not)" }),
  })
  .openapi("ApiKey");

const CreatedKeySchema = ApiKeySchema.extend({
  key: z.string().openapi({ description: "The key itself. Shown only in this response; only its hash is stored." }),
}).openapi("CreatedApiKey");

const RevokedKeySchema = ApiKeySchema.extend({
  cascade: z.array(z.string()).openapi({ description: "Ids of the keys it minted (transitively) that this call revoked, oldest first" }),
}).openapi("RevokedApiKey");

const KeyIdParam = z
  .string()
  .regex(KEY_ID, "an API key id is 12 characters of a-z and 0-9")
  .openapi({ param: { name: "id", in: "path" }, example: "k3x9q0w2m4ab" });

const keyResource = (c: { req: { param: (n: string) => string | undefined } }) => `key:${c.req.param("id")}`;

const createKey = createRoute({
  method: "post",
  path: "/v1/keys",
  middleware: [access({ group: "admin", action: "global", audit: "keys.create", resource: () => "keys" })] as const,
  tags: ["Security"],
  summary: "Create an API key (shown once)",
  request: { body: { required: true, content: { "application/json": { schema: CreateKeySchema } } } },
  responses: {
    201: { description: "The key, with its secret; store it now", content: { "application/json": { schema: CreatedKeySchema } } },
    400: problemResponse("Invalid name, grant or expiry (also: an expiry after the creator's)"),
    401: problemResponse("The creating key was revoked or expired meanwhile"),
    403: problemResponse("A grant the creator does not hold"),
  },
});

const listKeys = createRoute({
  method: "get",
  path: "/v1/keys",
  middleware: [access({ group: "admin", action: "global" })] as const,
  tags: ["Security"],
  summary: "List API keys (never their secrets)",
  responses: {
    200: { description: "Newest first", content: { "application/json": { schema: z.object({ keys: z.array(ApiKeySchema) }) } } },
  },
});

const getKey = createRoute({
  method: "get",
  path: "/v1/keys/{id}",
  middleware: [access({ group: "admin", action: "global" })] as const,
  tags: ["Security"],
  summary: "One API key",
  request: { params: z.object({ id: KeyIdParam }) },
  responses: {
    200: { description: "The key (without its secret)", content: { "application/json": { schema: ApiKeySchema } } },
    404: problemResponse("No such key"),
  },
});

const revokeKey = createRoute({
  method: "delete",
  path: "/v1/keys/{id}",
  middleware: [access({ group: "admin", action: "global", audit: "keys.revoke", resource: keyResource })] as const,
  tags: ["Security"],
  summary: "Revoke an API key and every key it minted (idempotent)",
  description:
    "The key, and the keys it minted (transitively), stop working at once in this isolate and within `security.apiKeys.cacheSeconds` (default 10 s) everywhere else.",
  request: { params: z.object({ id: KeyIdParam }) },
  responses: {
    200: { description: "The revoked key", content: { "application/json": { schema: RevokedKeySchema } } },
    404: problemResponse("No such key"),
  },
});

const RotateKeySchema = z
  .object({
    graceSeconds: z
      .number()
      .int()
      .min(0)
      .max(MAX_ROTATION_GRACE_SECONDS)
      .optional()
      .openapi({
        description: `How long the replaced secret keeps working (default ${DEFAULT_ROTATION_GRACE_SECONDS}: 24 h; 0: stops at once)`,
      }),
  })
  .strict()
  .openapi("RotateApiKey");

const rotateKey = createRoute({
  method: "post",
  path: "/v1/keys/{id}/rotate",
  middleware: [access({ group: "admin", action: "global", audit: "keys.rotate", resource: keyResource }), optionalJsonBody] as const,
  tags: ["Security"],
  summary: "Rotate an API key's secret in place (the new key is shown once)",
  description:
    "A new secret for the same key id: grants, name, tenant, expiry and the keys it minted are unchanged. The replaced secret keeps working for `graceSeconds`, its uses audited (`keys.previous_secret_used`, one record per window with a count); a secret replaced earlier stops now.",
  request: {
    params: z.object({ id: KeyIdParam }),
    body: { required: false, content: { "application/json": { schema: RotateKeySchema } } },
  },
  responses: {
    200: { description: "The key with its new secret; store it now", content: { "application/json": { schema: CreatedKeySchema } } },
    400: problemResponse("Invalid id or grace period"),
    404: problemResponse("No such key"),
    409: problemResponse("The key is revoked or expired"),
  },
});

/**
 * Why the allow grant `grant` of a new key would give it more than its creator holds, or
 * undefined. The creator needs an allow grant covering it (admin implies produce, consume and
 * replay, never decrypt), and each of the creator's deny grants that bites on it must be carried
 * over by one of the new key's own deny grants — else a global admin without `decrypt`, or with
 * a deny, could mint a key without that limit.
 */
function exceedsCreator(creator: readonly Grant[], grant: Grant, keyDenies: readonly Grant[]): string | undefined {
  const allowed = creator.some((c) => c.effect === "allow" && implies(c.action, grant.action) && patternCovers(c.pattern, grant.pattern));
  if (!allowed) return "the creator does not hold this grant";
  for (const deny of creator) {
    if (deny.effect !== "deny" || !deniedBy(grant.action, deny.action) || !patternsOverlap(deny.pattern, grant.pattern)) continue;
    if (!keyDenies.some((k) => k.action === deny.action && patternCovers(k.pattern, deny.pattern))) {
      return `the creator is denied ${deny.action}:${deny.pattern}; add !${deny.action}:${deny.pattern} to the key's grants`;
    }
  }
  return undefined;
}

function view(record: ApiKeyRecord) {
  return {
    id: record.id,
    prefix: `evl_${record.id}`,
    name: record.name,
    grants: record.grants,
    tenant: record.tenant,
    createdBy: record.createdBy,
    createdAt: record.createdAt.toISOString(),
    expiresAt: record.expiresAt?.toISOString() ?? null,
    revokedAt: record.revokedAt?.toISOString() ?? null,
    revokedBy: record.revokedBy,
    rotatedAt: record.rotatedAt?.toISOString() ?? null,
    previousSecretExpiresAt: record.previousSecretExpiresAt?.toISOString() ?? null,
  };
}

const DAY_MS = 86_400_000;

/**
 * The latest expiry a key minted by `principal` may have, and why; undefined when unbounded (the
 * bootstrap admin key, or an API key that never expires). A key minted by a key ends no later
 * than it; one minted by a JWT principal within `jwtKeyMaxDays` (the token's `exp` ends a
 * session, not the identity, and a key bounded by it would be useless).
 */
function mintBound(principal: Principal, config: EventlineConfig, now: number): { until: Date; why: string } | undefined {
  if (principal.kind === "api-key" && principal.expiresAt !== undefined) {
    return { until: principal.expiresAt, why: `a key never outlives the key that creates it (${principal.id})` };
  }
  if (principal.kind === "jwt") {
    const days = config.security.apiKeys.jwtKeyMaxDays;
    return {
      until: new Date(now + days * DAY_MS),
      why: `a key created by a JWT principal lives at most ${days} days (security.apiKeys.jwtKeyMaxDays)`,
    };
  }
  return undefined;
}

/** The new key's expiry: the one asked for if within the creator's bound, the bound if none was asked for. */
function mintExpiry(principal: Principal, config: EventlineConfig, expiresInDays: number | undefined, now: number): Date | undefined {
  const asked = expiresInDays === undefined ? undefined : new Date(now + expiresInDays * DAY_MS);
  const bound = mintBound(principal, config, now);
  if (bound === undefined) return asked;
  if (asked === undefined) return bound.until;
  if (asked.getTime() <= bound.until.getTime()) return asked;
  throw new EventlineError("invalid_parameter", "the key would outlive its creator", {
    issues: [
      {
        path: "/expiresInDays",
        message: `the latest allowed expiry is ${bound.until.toISOString()}: ${bound.why}; omit expiresInDays to get it`,
      },
    ],
  });
}

/** Audit details name at most this many cascaded key ids (the count is always there). */
const MAX_AUDITED_CASCADE = 100;

export function keyRoutes(config: EventlineConfig) {
  return new OpenAPIHono<AppEnv>()
    .openapi(createKey, async (c) => {
      const body = c.req.valid("json");
      const issues: { path: string; message: string }[] = [];
      if (body.grants.length > config.security.apiKeys.maxGrants) {
        issues.push({ path: "/grants", message: `at most ${config.security.apiKeys.maxGrants} grants per key` });
      }
      const grants: Grant[] = [];
      body.grants.forEach((g, i) => {
        try {
          grants.push(parseGrant(g));
        } catch (err) {
          issues.push({ path: `/grants/${i}`, message: (err as Error).message });
        }
      });
      if (issues.length > 0) throw new EventlineError("invalid_parameter", "the key's grants are not valid", { issues });
      // A key never holds more than its creator: no privilege escalation by minting a key.
      const creator = c.get("principal").grants;
      const keyDenies = grants.filter((g) => g.effect === "deny");
      grants.forEach((g, i) => {
        const why = g.effect === "allow" ? exceedsCreator(creator, g, keyDenies) : undefined;
        if (why !== undefined)
          issues.push({ path: `/grants/${i}`, message: `grant "${body.grants[i]}" exceeds the creator's grants: ${why}` });
      });
      if (issues.length > 0) {
        throw new EventlineError("forbidden", "a key may not hold grants its creator does not hold", { issues });
      }
      const now = Date.now();
      const principal = c.get("principal");
      const expiresAt = mintExpiry(principal, config, body.expiresInDays, now);
      let created: Awaited<ReturnType<typeof createApiKey>>;
      try {
        created = await createApiKey(
          c.env.DB,
          { name: body.name, grants: body.grants, tenant: body.tenant, expiresAt, createdBy: principal.id },
          now,
        );
      } catch (err) {
        if (!(err instanceof CreatorInactiveError)) throw err;
        // The creator was revoked (or expired) after this isolate cached it as valid.
        throw new EventlineError("unauthorized", "API key revoked or expired: it can no longer create keys", {
          headers: {
            "www-authenticate": 'Bearer realm="eventline", error="invalid_token", error_description="API key revoked or expired"',
          },
        });
      }
      const { record, key } = created;
      c.set("auditDetails", {
        keyId: record.id,
        name: record.name,
        grants: record.grants,
        tenant: record.tenant,
        expiresAt: record.expiresAt?.toISOString() ?? null,
      });
      return c.json({ ...view(record), key }, 201, { "cache-control": "no-store", location: `/v1/keys/${record.id}` });
    })
    .openapi(listKeys, async (c) => c.json({ keys: (await listApiKeys(c.env.DB)).map(view) }, 200))
    .openapi(getKey, async (c) => {
      const { id } = c.req.valid("param");
      const record = await getApiKey(c.env.DB, id);
      if (record === undefined) throw new EventlineError("not_found", `no API key ${id}`);
      return c.json(view(record), 200);
    })
    .openapi(revokeKey, async (c) => {
      const { id } = c.req.valid("param");
      const revoked = await revokeApiKey(c.env.DB, id, c.get("principal").id);
      if (revoked === undefined) throw new EventlineError("not_found", `no API key ${id}`);
      const { record, cascade } = revoked;
      c.set("auditDetails", {
        keyId: id,
        cascade: cascade.slice(0, MAX_AUDITED_CASCADE),
        cascadeCount: cascade.length,
      });
      return c.json({ ...view(record), cascade }, 200);
    })
    .openapi(rotateKey, async (c) => {
      const { id } = c.req.valid("param");
      // The body is optional: without one (or without JSON), the default grace period applies.
      const graceSeconds =
        (c.req.valid("json") as z.infer<typeof RotateKeySchema> | undefined)?.graceSeconds ?? DEFAULT_ROTATION_GRACE_SECONDS;
      const rotated = await rotateApiKey(c.env.DB, id, graceSeconds);
      if (!rotated.ok) {
        if (rotated.reason === "not_found") throw new EventlineError("not_found", `no API key ${id}`);
        throw new EventlineError("key_inactive", `API key ${id} is ${rotated.reason}; only an active key can be rotated`);
      }
      const { record, key } = rotated;
      c.set("auditDetails", {
        keyId: id,
        graceSeconds,
        previousSecretExpiresAt: record.previousSecretExpiresAt?.toISOString() ?? null,
      });
      return c.json({ ...view(record), key }, 200, { "cache-control": "no-store" });
    });
}
