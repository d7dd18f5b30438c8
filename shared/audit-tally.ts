import { z } from "zod";

/**
 * What the Worker sends to an AuditTally object (durable-objects/audit-tally.ts, ADR 0031) and how
 * it names one: kept apart from the object's module, which imports `cloudflare:workers`, so code
 * that also runs in Node (scripts/openapi.ts loads the app) can use it.
 */

export const actorSchema = z.object({ id: z.string().min(1), kind: z.string().min(1), tenant: z.string().optional() }).strict();

export const tallyInputSchema = z
  .object({
    action: z.string().regex(/^[a-z]+(\.[a-z_]+)+$/, "an audit action such as encryption.decrypt"),
    resource: z.string().min(1),
    actor: actorSchema,
    /** The first request counted: the record names it. */
    requestId: z.string().min(1),
    windowSeconds: z.number().int().min(1).max(86_400),
    /** Amounts to add, e.g. `{ reads: 2, events: 40, fields: 160 }`. */
    counts: z.record(z.string().regex(/^[a-zA-Z]+$/), z.number().int().nonnegative()),
  })
  .strict();

export type TallyInput = z.input<typeof tallyInputSchema>;

/** The open window of an object: what its record will say. */
export interface TallyWindow {
  action: string;
  resource: string;
  actor: z.output<typeof actorSchema>;
  requestId: string;
  /** Epoch ms: when the window opened (its first add) and when it closes. */
  from: number;
  until: number;
  counts: Record<string, number>;
}

export const storedSchema = z.object({
  action: z.string(),
  resource: z.string(),
  actor: actorSchema,
  requestId: z.string(),
  counts: z.record(z.string(), z.number()),
});

/** The object of one (action, actor, resource). */
export const auditTallyName = (action: string, actorId: string, resource: string) => JSON.stringify([action, actorId, resource]);
