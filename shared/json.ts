/**
 * Canonical JSON: object keys sorted by UTF-16 code units (as in RFC 8785), no insignificant
 * whitespace, strings and numbers as `JSON.stringify` writes them. It is written by hand rather
 * than with `JSON.stringify(sortedCopy)` because JS objects always put integer-like keys first,
 * which would make the order depend on the key's shape instead of its text.
 *
 * Events are stored in this form, so the stored bytes are a pure function of the event.
 */

/** Nesting deeper than this is rejected before anything recursive touches the value. */
export const MAX_JSON_DEPTH = 64;

export class JsonDepthError extends Error {
  override readonly name = "JsonDepthError";
  constructor(readonly path: string) {
    super(`JSON nested deeper than ${MAX_JSON_DEPTH} levels at ${path || "/"}`);
  }
}

function escapePointer(key: string): string {
  return key.replaceAll("~", "~0").replaceAll("/", "~1");
}

/** RFC 6901 JSON Pointer of `path` below the pointer `base` (e.g. `/3` + ["data", "a/b"] → `/3/data/a~1b`). */
export function jsonPointer(base: string, path: readonly PropertyKey[]): string {
  return base + path.map((p) => `/${escapePointer(String(p))}`).join("");
}

/** Throws `JsonDepthError` with the JSON Pointer of the first value nested beyond `max`. */
export function assertJsonDepth(value: unknown, max = MAX_JSON_DEPTH, path = "", depth = 0): void {
  if (value === null || typeof value !== "object") return;
  if (depth >= max) throw new JsonDepthError(path);
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) assertJsonDepth(item, max, `${path}/${i}`, depth + 1);
    return;
  }
  for (const [key, item] of Object.entries(value)) {
    assertJsonDepth(item, max, `${path}/${escapePointer(key)}`, depth + 1);
  }
}

export function canonicalJson(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("non-finite number has no JSON form");
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(",")}]`;
      const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
    }
    default:
      throw new TypeError(`${typeof value} has no JSON form`);
  }
}

export function utf8Length(text: string): number {
  return new TextEncoder().encode(text).byteLength;
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A UTF-8 decoder that throws on malformed input instead of inserting U+FFFD. */
export function strictUtf8(bytes: Uint8Array): string {
  return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
}
