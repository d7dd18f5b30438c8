import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { problemResponse, SubjectParam } from "../../../shared/api-schemas";
import { EventlineError } from "../../../shared/errors";
import { createFieldProtector } from "../../../shared/security/fields";
import { KEY_VAULT_SHARDS } from "../../../shared/security/keyring";
import { access } from "../auth/access";
import type { AppEnv } from "../context";
import { collectEncryptionStatus, vaultShards, workerKeyring } from "../encryption-status";

/**
 * Field encryption administration (global admins; audited): erasing a subject by destroying its
 * data key (crypto-shredding), the vault's state and the KEK rotation's progress, and re-wrapping
 * data keys by hand (the KeyVault's alarm does it by itself: durable-objects/key-rotation.ts).
 */

const VaultStatusSchema = z.object({
  keys: z.number().int().openapi({ description: "Active data keys" }),
  shredded: z.number().int(),
  byKekVersion: z.record(z.string(), z.number().int()).openapi({ description: "Active keys per KEK version wrapping them" }),
});

const RotationStateSchema = z.enum(["rewrapping", "complete", "stalled"]);

const RotationSchema = z
  .object({
    state: RotationStateSchema.openapi({
      description:
        "`rewrapping` (automatic, in progress), `complete` (every active key is under the current KEK) or `stalled` (see `errors`)",
    }),
    remaining: z.number().int().openapi({ description: "Active data keys not yet wrapped by the current KEK" }),
    rewrapped: z.number().int().openapi({ description: "Data keys rewrapped to the current KEK so far" }),
    progress: z.number().openapi({ description: "rewrapped ÷ (rewrapped + remaining), 0..1" }),
    removable: z
      .array(z.string())
      .openapi({ description: "Older KEK versions that wrap no active data key: they can leave EVENTLINE_KEKS" }),
    shards: z.object({ rewrapping: z.number().int(), complete: z.number().int(), stalled: z.number().int() }),
    startedAt: z.string().nullable(),
    completedAt: z.string().nullable(),
    errors: z.array(z.object({ shard: z.string(), error: z.string() })),
  })
  .openapi("KekRotation");

/** The body of GET /v1/encryption, also the `encryption` member of GET /v1/metrics. */
export const EncryptionStatusSchema = z
  .object({
    kek: z.object({ current: z.string(), versions: z.array(z.string()) }),
    dataKeys: VaultStatusSchema,
    rotationComplete: z.boolean().openapi({ description: "Every active data key is wrapped by the current KEK" }),
    rotation: RotationSchema,
  })
  .openapi("EncryptionStatus");

const shredRoute = createRoute({
  method: "delete",
  path: "/v1/subjects/{subject}/keys",
  middleware: [
    access({ group: "admin", action: "global", audit: "subjects.shred", resource: (c) => `subject:${c.req.param("subject")}` }),
  ] as const,
  tags: ["Security"],
  summary: "Erase a subject: destroy its data key (crypto-shredding)",
  description:
    "The subject's sensitive fields become unreadable everywhere they are stored or sent — partition logs, the R2 archive, queue messages, replays — while the log itself stays intact and ordered. Irreversible. A later event for the subject gets a new key. Idempotent: `destroyed` is 0 the second time.",
  request: { params: z.object({ subject: SubjectParam }) },
  responses: {
    200: {
      description: "Keys destroyed",
      content: { "application/json": { schema: z.object({ subject: z.string(), destroyed: z.number().int(), erasedAt: z.string() }) } },
    },
  },
});

const statusRoute = createRoute({
  method: "get",
  path: "/v1/encryption",
  middleware: [access({ group: "admin", action: "global" })] as const,
  tags: ["Security"],
  summary: "Field encryption: KEK versions, data keys per KEK version, the KEK rotation's progress",
  description:
    "After a new KEK version is put first in EVENTLINE_KEKS and deployed, every KeyVault shard rewraps its data keys under it by itself (its alarm, a bounded chunk per run; the cron trigger wakes shards nothing else calls, and this call does too). `rotation.removable` lists the older versions no active key needs any more.",
  responses: {
    200: {
      description: "The key-encryption keys configured (versions only) and the vault's data keys",
      content: {
        "application/json": {
          schema: EncryptionStatusSchema,
        },
      },
    },
    503: problemResponse("EVENTLINE_KEKS is missing or malformed"),
  },
});

const RewrapBody = z.object({ limit: z.number().int().min(1).max(10_000).optional() }).strict();

const rewrapRoute = createRoute({
  method: "post",
  path: "/v1/encryption/rewrap",
  middleware: [access({ group: "admin", action: "global", audit: "keys.rewrap", resource: () => "kek" })] as const,
  tags: ["Security"],
  summary: "Re-wrap data keys under the current KEK (one step of a rotation, by hand)",
  description:
    "The KeyVault rewraps by itself after a new KEK is deployed (see GET /v1/encryption); this step does the same at once, e.g. to finish sooner. Call until `remaining` is 0; then the old version can be removed. Events are not re-encrypted: only the data keys are re-wrapped.",
  request: {
    body: {
      required: false,
      content: { "application/json": { schema: RewrapBody } },
    },
  },
  responses: {
    200: {
      description: "Progress of this step",
      content: {
        "application/json": { schema: z.object({ rewrapped: z.number().int(), remaining: z.number().int(), current: z.string() }) },
      },
    },
    503: problemResponse("EVENTLINE_KEKS is missing or malformed"),
  },
});

export function encryptionRoutes() {
  return new OpenAPIHono<AppEnv>()
    .openapi(shredRoute, async (c) => {
      const { subject } = c.req.valid("param");
      const { destroyed } = await createFieldProtector(c.env).shred(subject);
      c.set("auditDetails", { destroyed });
      return c.json({ subject, destroyed, erasedAt: new Date().toISOString() }, 200);
    })
    .openapi(statusRoute, async (c) => c.json(await collectEncryptionStatus(c.env), 200))
    .openapi(rewrapRoute, async (c) => {
      const ring = workerKeyring(c.env);
      // The body is optional (and validated by the route when it is JSON); chunked bodies count too.
      const text = await c.req.text();
      let limit: number | undefined;
      if (text.trim() !== "") {
        let body: unknown = null;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: RewrapBody rejects the null below with the same message as a wrong shape
        }
        const parsed = RewrapBody.safeParse(body);
        if (!parsed.success) throw new EventlineError("malformed_request", 'the body, when given, is {"limit": 1-10000}');
        limit = parsed.data.limit;
      }
      const perShard = Math.max(1, Math.ceil((limit ?? 5000) / KEY_VAULT_SHARDS));
      // Every shard is asked (each step is its own transaction); what the others did still counts.
      const settled = await Promise.allSettled(vaultShards(c.env).map(({ stub }) => stub.rewrap(perShard)));
      const results = settled.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
      const rewrapped = results.reduce((n, r) => n + r.rewrapped, 0);
      const failures = settled.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
      if (failures.length > 0) {
        // A key wrapped under a KEK version EVENTLINE_KEKS no longer holds (KeyringError, its name kept
        // across RPC): the documented 503 with what to do, not an opaque 500. Anything else stays a 500.
        const keyring = failures.find((e): e is Error => e instanceof Error && e.name === "KeyringError");
        if (keyring === undefined) throw failures[0];
        c.set("auditDetails", { rewrapped, current: ring.current });
        throw new EventlineError(
          "unavailable",
          `${rewrapped} data key(s) rewrapped, then: ${keyring.message}; put that KEK version back in EVENTLINE_KEKS and call again`,
          { retryAfter: 60 },
        );
      }
      const remaining = results.reduce((n, r) => n + r.remaining, 0);
      c.set("auditDetails", { rewrapped, remaining, current: ring.current });
      return c.json({ rewrapped, remaining, current: ring.current }, 200);
    });
}
