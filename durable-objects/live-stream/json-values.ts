/**
 * JSON streams store each append as its values, serialized and joined by `,` (no brackets), so a
 * read is `[` + the appends joined by `,` + `]` and positions count bytes of that serialization.
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The first `count` values of a stored JSON append, in the same form; undefined when it holds fewer. */
export function firstValues(stored: Uint8Array, count: number): { data: Uint8Array; items: number } | undefined {
  const values = JSON.parse(`[${decoder.decode(stored)}]`) as unknown[];
  if (count > values.length) return undefined;
  return {
    data: encoder.encode(
      values
        .slice(0, count)
        .map((v) => JSON.stringify(v))
        .join(","),
    ),
    items: count,
  };
}

/** Concatenates stored appends; JSON appends are joined by `,`. */
export function joinAppends(parts: readonly Uint8Array[], json: boolean): Uint8Array {
  const separator = json ? 1 : 0;
  const total = parts.reduce((n, p) => n + p.byteLength, 0) + Math.max(0, parts.length - 1) * separator;
  const out = new Uint8Array(total);
  let at = 0;
  parts.forEach((part, i) => {
    if (i > 0 && json) out[at++] = 0x2c;
    out.set(part, at);
    at += part.byteLength;
  });
  return out;
}
