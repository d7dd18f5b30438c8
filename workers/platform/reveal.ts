import type { Context } from "hono";
import { canonicalJson } from "../../shared/json";
import { createFieldProtector, ENCRYPTED_MARK, isEncryptedValue } from "../../shared/security/fields";
import { isAllowed } from "../../shared/security/grants";
import type { AppEnv } from "./context";
import { auditDecrypt } from "./decrypt-audit";

const MARK = `"${ENCRYPTED_MARK}"`;

/**
 * Stored events (canonical JSON text) as the caller may see them: with a `decrypt` grant on the
 * topic, sensitive fields are decrypted (where their subject's key still exists); without it,
 * the encrypted envelopes are served as stored. Pages without envelopes pass through untouched.
 * A read that decrypts is counted in the principal's `encryption.decrypt` audit window.
 */
export async function revealForCaller(c: Context<AppEnv>, topic: string, stored: string[]): Promise<string[]> {
  if (!stored.some((e) => e.includes(MARK))) return stored;
  if (!isAllowed(c.get("principal").grants, "decrypt", topic)) return stored;
  const parsed = stored.map((e) => JSON.parse(e) as Record<string, unknown>);
  const { events, undecryptable } = await createFieldProtector(c.env).reveal(topic, parsed);
  if (undecryptable > 0) c.header("eventline-undecryptable", String(undecryptable));
  const envelopes = parsed.map((e) => envelopesIn(e.data));
  const fields = envelopes.reduce((sum, n) => sum + n, 0);
  // The mark may be plain text in a value: a page with no envelope decrypted nothing.
  if (fields > 0) auditDecrypt(c, topic, { events: envelopes.filter((n) => n > 0).length, fields: fields - undecryptable, undecryptable });
  return events.map((e) => canonicalJson(e));
}

/** Encrypted fields in `value` (an envelope is counted, not searched). */
function envelopesIn(value: unknown): number {
  if (isEncryptedValue(value)) return 1;
  if (value === null || typeof value !== "object") return 0;
  return (Array.isArray(value) ? value : Object.values(value)).reduce((sum: number, v) => sum + envelopesIn(v), 0);
}
