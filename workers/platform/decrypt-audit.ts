import type { Context } from "hono";
import { auditTallyName, type TallyInput } from "../../shared/audit-tally";
import type { Logger } from "../../shared/logger";
import { actorOf } from "./audit";
import type { AppEnv } from "./context";

/**
 * Reads that return plaintext of sensitive fields are audited per principal, topic and window
 * (ADR 0031), not per event or request: one `encryption.decrypt` record per window of
 * DECRYPT_AUDIT_WINDOW_SECONDS, opened by the principal's first decrypting read of the topic,
 * counting the reads, the events and fields decrypted, and the fields left undecryptable.
 *
 * The read itself never waits for this: the isolate gathers the counts of a principal and topic
 * for GATHER_MS, then the request that started the gathering sends them from its `waitUntil` to
 * the AuditTally object of that principal and topic, which owns the window and writes the record.
 */

export const DECRYPT_AUDIT_ACTION = "encryption.decrypt";
export const DECRYPT_AUDIT_WINDOW_SECONDS = 300;
/** How long an isolate gathers before sending: at most one RPC per principal, topic and isolate per this. */
export const GATHER_MS = 2_000;

export interface DecryptCounts {
  /** Events with at least one encrypted field. */
  events: number;
  /** Fields decrypted. */
  fields: number;
  /** Encrypted fields left as they were (key shredded or unknown, ciphertext moved or altered). */
  undecryptable: number;
}

/** Counts gathered in this isolate, by tally name, until their request sends them. */
const gathering = new Map<string, TallyInput & { counts: Record<keyof DecryptCounts | "reads", number> }>();

/** Counts one decrypting read of `topic` by the request's principal. */
export function auditDecrypt(c: Context<AppEnv>, topic: string, counts: DecryptCounts): void {
  const principal = c.get("principal");
  const resource = `topic:${topic}`;
  const name = auditTallyName(DECRYPT_AUDIT_ACTION, principal.id, resource);
  const gathered = gathering.get(name);
  if (gathered !== undefined) {
    gathered.counts.reads++;
    gathered.counts.events += counts.events;
    gathered.counts.fields += counts.fields;
    gathered.counts.undecryptable += counts.undecryptable;
    return;
  }
  const input = {
    action: DECRYPT_AUDIT_ACTION,
    resource,
    actor: actorOf(principal),
    requestId: c.get("requestId"),
    windowSeconds: DECRYPT_AUDIT_WINDOW_SECONDS,
    counts: { reads: 1, ...counts },
  };
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
    log.error("decrypting reads not counted in the audit log", { error: err, resource: input.resource, counts: input.counts });
  }
}
