import type { Context } from "hono";
import type { z } from "zod";
import type { Logger } from "../../sdk/logger";
import { type actorSchema, auditTallyName, type TallyInput } from "../../shared/audit-tally";
import type { AppEnv } from "./context";

/**
 * Audit records for things that happen per request but are worth one record per window, not one
 * per request (a flood must not fill the audit log): decrypting reads, requests refused to a
 * locked-out client address, uses of a rotated-out API key secret. One record per (action, actor,
 * resource) and window, across all isolates, written by that triple's AuditTally object when the
 * window closes (ADR 0031).
 *
 * The request never waits for this: the isolate gathers the counts of a triple for GATHER_MS, then
 * the request that started the gathering sends them from its `waitUntil` to the object (later
 * requests only add numbers, so no request waits on another's I/O). The object sums what every
 * isolate sends into one durable window.
 */

/** How long an isolate gathers before sending: at most one RPC per triple and isolate per this. */
export const GATHER_MS = 2_000;

export interface WindowedCount {
  action: string;
  actor: z.input<typeof actorSchema>;
  resource: string;
  /** The window's length, from the first count that reaches the object. */
  windowSeconds: number;
  /** Amounts to add, e.g. `{ count: 1 }` or `{ reads: 1, fields: 4 }`. */
  counts: Record<string, number>;
  /** What the record says besides its counts, as the window's first count gave it (outcome default `success`). */
  outcome?: "success" | "failure" | "denied";
  status?: number;
  reason?: string;
  ip?: string;
  details?: Record<string, string | number | boolean | null>;
}

/** Counts gathered in this isolate, by tally name, until their request sends them. */
const gathering = new Map<string, TallyInput & { counts: Record<string, number> }>();

/** Counts one occurrence into the window of (action, actor, resource); never throws, never waits. */
export function countInWindow(c: Context<AppEnv>, count: WindowedCount): void {
  const name = auditTallyName(count.action, count.actor.id, count.resource);
  const gathered = gathering.get(name);
  if (gathered !== undefined) {
    for (const [key, n] of Object.entries(count.counts)) gathered.counts[key] = (gathered.counts[key] ?? 0) + n;
    return;
  }
  const input = { ...count, counts: { ...count.counts }, requestId: c.get("requestId") };
  gathering.set(name, input);
  // Only this request's context does I/O for the batch; later requests add plain numbers to it.
  c.executionCtx.waitUntil(sendLater(c.env, name, input, c.get("log")));
}

async function sendLater(env: Env, name: string, input: TallyInput, log: Logger): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, GATHER_MS));
  gathering.delete(name);
  try {
    await env.AUDIT_TALLY.getByName(name).add(input);
  } catch (err) {
    // The counts are in the log at least.
    log.error("audit counts not sent to their window; they are not in the audit log", {
      error: err,
      action: input.action,
      resource: input.resource,
      counts: input.counts,
    });
  }
}
