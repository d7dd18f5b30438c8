import type { Context } from "hono";
import { canonicalJson } from "../../shared/json";
import { createFieldProtector, ENCRYPTED_MARK } from "../../shared/security/fields";
import { isAllowed } from "../../shared/security/grants";
import type { AppEnv } from "./context";

const MARK = `"${ENCRYPTED_MARK}"`;

/**
 * Stored events (canonical JSON text) as the caller may see them: with a `decrypt` grant on the
 * topic, sensitive fields are decrypted (where their subject's key still exists); without it,
 * the encrypted envelopes are served as stored. Pages without envelopes pass through untouched.
 */
export async function revealForCaller(c: Context<AppEnv>, topic: string, stored: string[]): Promise<string[]> {
  if (!stored.some((e) => e.includes(MARK))) return stored;
  if (!isAllowed(c.get("principal").grants, "decrypt", topic)) return stored;
  const { events, undecryptable } = await createFieldProtector(c.env).reveal(
    topic,
    stored.map((e) => JSON.parse(e) as Record<string, unknown>),
  );
  if (undecryptable > 0) c.header("eventline-undecryptable", String(undecryptable));
  return events.map((e) => canonicalJson(e));
}
