import type { Context } from "hono";
import { actorOf } from "./audit";
import { countInWindow } from "./audit-windows";
import type { AppEnv } from "./context";

/**
 * Reads that return plaintext of sensitive fields are audited per principal, topic and window
 * (ADR 0031), not per event or request: one `encryption.decrypt` record per window of
 * DECRYPT_AUDIT_WINDOW_SECONDS, opened by the principal's first decrypting read of the topic,
 * counting the reads, the events and fields decrypted, and the fields left undecryptable. The read
 * never waits for this (audit-windows.ts).
 */

export const DECRYPT_AUDIT_ACTION = "encryption.decrypt";
export const DECRYPT_AUDIT_WINDOW_SECONDS = 300;

export interface DecryptCounts {
  /** Events with at least one encrypted field. */
  events: number;
  /** Fields decrypted. */
  fields: number;
  /** Encrypted fields left as they were (key shredded or unknown, ciphertext moved or altered). */
  undecryptable: number;
}

/** Counts one decrypting read of `topic` by the request's principal. */
export function auditDecrypt(c: Context<AppEnv>, topic: string, counts: DecryptCounts): void {
  countInWindow(c, {
    action: DECRYPT_AUDIT_ACTION,
    actor: actorOf(c.get("principal")),
    resource: `topic:${topic}`,
    windowSeconds: DECRYPT_AUDIT_WINDOW_SECONDS,
    counts: { reads: 1, ...counts },
  });
}
