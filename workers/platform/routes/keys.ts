import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { problemResponse } from "../../../shared/api-schemas";
import type { EventlineConfig } from "../../../shared/config";
import { EventlineError } from "../../../shared/errors";
import { deniedBy, type Grant, implies, parseGrant, patternCovers, patternsOverlap } from "../../../shared/security/grants";
import { access } from "../auth/access";
import { type ApiKeyRecord, createApiKey, getApiKey, listApiKeys, revokeApiKey } from "../auth/api-keys";
import type { AppEnv } from "../context";

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
    expiresInDays: z.number().int().min(1).max(3650).optional().openapi({ description: "Default: never expires" }),
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
  })
  .openapi("ApiKey");

const CreatedKeySchema = ApiKeySchema.extend({
  key: z.string().openapi({ description: "The key itself. Shown only in this response; only its hash is stored." }),
}).openapi("CreatedApiKey");

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
    400: problemResponse("Invalid name, grant or expiry"),
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
  summary: "Revoke an API key (idempotent)",
  description: "The key stops working at once in this isolate and within `security.apiKeys.cacheSeconds` (default 10 s) everywhere else.",
  request: { params: z.object({ id: KeyIdParam }) },
  responses: {
    200: { description: "The revoked key", content: { "application/json": { schema: ApiKeySchema } } },
    404: problemResponse("No such key"),
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
  };
}

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
      const { record, key } = await createApiKey(c.env.DB, {
        name: body.name,
        grants: body.grants,
        tenant: body.tenant,
        expiresAt: body.expiresInDays === undefined ? undefined : new Date(Date.now() + body.expiresInDays * 86_400_000),
        createdBy: c.get("principal").id,
      });
      c.set("auditDetails", { keyId: record.id, name: record.name, grants: record.grants, tenant: record.tenant });
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
      const record = await revokeApiKey(c.env.DB, id, c.get("principal").id);
      if (record === undefined) throw new EventlineError("not_found", `no API key ${id}`);
      c.set("auditDetails", { keyId: id });
      return c.json(view(record), 200);
    });
}
