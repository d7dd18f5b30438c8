import { base64ToBytes, bytesToBase64 } from "./cloudevents";

/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com): the secret is `whsec_` +
 * base64 key bytes; the signature is `v1,` + base64(HMAC-SHA256(key, `${id}.${timestamp}.${body}`)),
 * sent in `webhook-signature` next to `webhook-id` and `webhook-timestamp` (unix seconds).
 */

export const WEBHOOK_SECRET = /^whsec_(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Keys shorter than this are refused (the spec suggests 24 to 64 bytes). */
const MIN_KEY_BYTES = 24;

export function isValidWebhookSecret(secret: string): boolean {
  if (!WEBHOOK_SECRET.test(secret)) return false;
  const key = base64ToBytes(secret.slice("whsec_".length));
  return key.byteLength >= MIN_KEY_BYTES && key.byteLength <= 64;
}

export function generateWebhookSecret(): string {
  return `whsec_${bytesToBase64(crypto.getRandomValues(new Uint8Array(32)))}`;
}

async function hmac(secret: string, content: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", base64ToBytes(secret.slice("whsec_".length)), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return bytesToBase64(new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(content))));
}

/**
 * The Standard Webhooks headers of one delivery. With several secrets (a rotation's overlap: the
 * new one first) `webhook-signature` carries one space-separated `v1,<sig>` per secret, so a
 * receiver holding either secret verifies the delivery.
 */
export async function signWebhook(
  secrets: string | readonly string[],
  id: string,
  timestamp: number,
  body: string,
): Promise<Record<string, string>> {
  const content = `${id}.${timestamp}.${body}`;
  const signatures = await Promise.all(
    (typeof secrets === "string" ? [secrets] : secrets).map(async (s) => `v1,${await hmac(s, content)}`),
  );
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": signatures.join(" "),
  };
}

/** Receiver side (for consumers and tests): constant-time check of any `v1,` signature, with a timestamp tolerance. */
export async function verifyWebhook(
  secret: string,
  headers: Headers,
  body: string,
  toleranceSeconds = 300,
  now = Date.now(),
): Promise<boolean> {
  const id = headers.get("webhook-id");
  const timestamp = Number(headers.get("webhook-timestamp"));
  const signatures = (headers.get("webhook-signature") ?? "").split(" ");
  if (id === null || !Number.isInteger(timestamp) || Math.abs(now / 1000 - timestamp) > toleranceSeconds) return false;
  const expected = `v1,${await hmac(secret, `${id}.${timestamp}.${body}`)}`;
  let ok = false;
  for (const candidate of signatures) {
    if (candidate.length !== expected.length) continue;
    let diff = 0;
    for (let i = 0; i < expected.length; i++) diff |= expected.charCodeAt(i) ^ candidate.charCodeAt(i);
    ok ||= diff === 0;
  }
  return ok;
}
