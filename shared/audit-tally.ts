import { z } from "zod";

/**
 * What the Worker sends to an AuditTally object (durable-objects/audit-tally.ts, ADR 0031) and how
 * it names one: kept apart from the object's module, which imports `cloudflare:workers`, so code
 * that also runs in Node (scripts/openapi.ts loads the app) can use it.
 */

export const actorSchema = z.object({ id: z.string().min(1), kind: z.string().min(1), tenant: z.string().optional() }).strict();

/**
 * What a window's record says besides its counts, taken from the add that opened it: the outcome
 * (default `success`), and for refusals the HTTP status, a reason and the client address, as a
 * per-request record of the same kind would carry them. Optional, so windows stored before these
 * members existed still read back (as successes).
 */
const recordFields = {
  outcome: z.enum(["success", "failure", "denied"]).optional(),
  status: z.number().int().min(100).max(599).optional(),
  reason: z.string().max(512).optional(),
  ip: z.string().max(512).optional(),
  /** Fixed facts of the window (e.g. a key's id); the counts and from/until are added to them. */
  details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])).optional(),
};

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
    ...recordFields,
  })
  .strict();

export type TallyInput = z.input<typeof tallyInputSchema>;

export const storedSchema = z.object({
  action: z.string(),
  resource: z.string(),
  actor: actorSchema,
  requestId: z.string(),
  counts: z.record(z.string(), z.number()),
  ...recordFields,
});

/** The open window of an object: what its record will say. */
export type TallyWindow = z.output<typeof storedSchema> & {
  /** Epoch ms: when the window opened (its first add) and when it closes. */
  from: number;
  until: number;
};

/** The object of one (action, actor, resource). */
export const auditTallyName = (action: string, actorId: string, resource: string) => JSON.stringify([action, actorId, resource]);
