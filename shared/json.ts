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

const ARRAY_INDEX = /^(0|[1-9][0-9]*)$/;

/**
 * The value an RFC 6901 JSON Pointer (`""`, `/a/0/b~1c`) selects in `root`: own object members and
 * array elements by canonical index only; undefined when the pointer is malformed or selects nothing.
 */
export function resolveJsonPointer(root: unknown, pointer: string): unknown {
  if (pointer === "") return root;
  if (!pointer.startsWith("/")) return undefined;
  let at: unknown = root;
  for (const raw of pointer.slice(1).split("/")) {
    const token = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (Array.isArray(at)) {
      if (!ARRAY_INDEX.test(token)) return undefined;
      at = at[Number(token)];
    } else if (at !== null && typeof at === "object" && Object.hasOwn(at, token)) {
      at = (at as Record<string, unknown>)[token];
    } else {
      return undefined;
    }
  }
  return at;
}

/** Object members plus array elements one event may hold: bounds the CPU any later walk of it costs. */
export const MAX_JSON_MEMBERS = 10_000;

/** True when `value` holds more than `max` object members and array elements in all (stops counting there). */
export function exceedsJsonMembers(value: unknown, max = MAX_JSON_MEMBERS): boolean {
  let budget = max;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== "object") continue;
    const items = Array.isArray(v) ? v : Object.values(v);
    budget -= items.length;
    if (budget < 0) return true;
    for (const item of items) if (item !== null && typeof item === "object") stack.push(item);
  }
  return false;
}

/** Throws `JsonDepthError` with the JSON Pointer of the first value nested beyond `max`. */
export function assertJsonDepth(value: unknown, max = MAX_JSON_DEPTH, path = "", depth = 0): void {
  // Checked without building paths; only a value that is too deep is walked again for its pointer.
  if (nestsBeyond(value, max - depth)) findTooDeep(value, max, path, depth);
}

/** True when an object or array sits `remaining` or more levels below `value` (or is `value`, at 0). */
function nestsBeyond(value: unknown, remaining: number): boolean {
  if (value === null || typeof value !== "object") return false;
  if (remaining <= 0) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (nestsBeyond(value[i], remaining - 1)) return true;
    return false;
  }
  for (const item of Object.values(value)) if (nestsBeyond(item, remaining - 1)) return true;
  return false;
}

function findTooDeep(value: unknown, max: number, path: string, depth: number): void {
  if (value === null || typeof value !== "object") return;
  if (depth >= max) throw new JsonDepthError(path);
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) findTooDeep(item, max, `${path}/${i}`, depth + 1);
    return;
  }
  for (const [key, item] of Object.entries(value)) {
    findTooDeep(item, max, `${path}/${escapePointer(key)}`, depth + 1);
  }
}

/**
 * The JSON Pointer of the first member name or string in `value` that is not well-formed Unicode
 * (a lone UTF-16 surrogate, which a JSON `\uD800`–`\uDFFF` escape can carry), or undefined when
 * there is none. Such a string has no UTF-8 form: SQLite and D1 store bytes that read back as a
 * different string, and TextEncoder turns it into U+FFFD, so it must never become a key
 * (docs/security.md, "Well-formed Unicode"). Call it on values already bounded in depth.
 */
export function illFormedStringAt(value: unknown, path = ""): string | undefined {
  if (typeof value === "string") return value.isWellFormed() ? undefined : path || "/";
  if (value === null || typeof value !== "object") return undefined;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = illFormedStringAt(item, `${path}/${i}`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  for (const [key, item] of Object.entries(value)) {
    const at = `${path}/${escapePointer(key)}`;
    if (!key.isWellFormed()) return at;
    const found = illFormedStringAt(item, at);
    if (found !== undefined) return found;
  }
  return undefined;
}

export function canonicalJson(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("non-finite number has no JSON form");
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) {
        let out = "[";
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          out += i === 0 ? canonicalJson(item === undefined ? null : item) : `,${canonicalJson(item === undefined ? null : item)}`;
        }
        return `${out}]`;
      }
      const record = value as Record<string, unknown>;
      // Array.prototype.sort without a comparator orders strings by UTF-16 code units.
      const keys = Object.keys(record).sort();
      let out = "{";
      for (const key of keys) {
        const item = record[key];
        if (item === undefined) continue;
        out += `${out.length === 1 ? "" : ","}${JSON.stringify(key)}:${canonicalJson(item)}`;
      }
      return `${out}}`;
    }
    default:
      throw new TypeError(`${typeof value} has no JSON form`);
  }
}

/**
 * An object's top-level members in canonical form: `[key, canonicalJson(value)]`, sorted by key
 * (UTF-16 code units), members whose value is `undefined` left out. Serializing the members of
 * an event once lets the ingest path derive its size, its content hash and its stored bytes
 * without serializing it again; `joinMembers(canonicalMembers(v)) === canonicalJson(v)`.
 */
export type Member = [key: string, text: string];

export function canonicalMembers(value: Readonly<Record<string, unknown>>): Member[] {
  const keys = Object.keys(value).sort();
  const out: Member[] = [];
  for (const key of keys) {
    const item = value[key];
    if (item !== undefined) out.push([key, canonicalJson(item)]);
  }
  return out;
}

/**
 * The canonical JSON text of an object given as sorted members, with `extra` (also sorted)
 * merged in at their sorted positions; on a shared key the `extra` member wins, as in
 * `{ ...object, ...extra }`. So `joinMembers(canonicalMembers(a), canonicalMembers(b))` is
 * `canonicalJson({ ...a, ...b })`.
 */
export function joinMembers(members: readonly Member[], extra: readonly Member[] = []): string {
  let out = "{";
  let first = true;
  let j = 0;
  for (const [key, text] of members) {
    let next = extra[j];
    while (next !== undefined && next[0] < key) {
      out += `${first ? "" : ","}${JSON.stringify(next[0])}:${next[1]}`;
      first = false;
      next = extra[++j];
    }
    if (next !== undefined && next[0] === key) continue; // replaced by the extra member
    out += `${first ? "" : ","}${JSON.stringify(key)}:${text}`;
    first = false;
  }
  for (; j < extra.length; j++) {
    const next = extra[j] as Member;
    out += `${first ? "" : ","}${JSON.stringify(next[0])}:${next[1]}`;
    first = false;
  }
  return `${out}}`;
}

/** Sorted `members` with the sorted `extra` merged in: the members of `{ ...object, ...extra }`. */
export function mergeMembers(members: readonly Member[], extra: readonly Member[]): Member[] {
  const out: Member[] = [];
  let j = 0;
  for (const member of members) {
    let next = extra[j];
    while (next !== undefined && next[0] < member[0]) {
      out.push(next);
      next = extra[++j];
    }
    if (next !== undefined && next[0] === member[0]) continue; // replaced by the extra member
    out.push(member);
  }
  for (; j < extra.length; j++) out.push(extra[j] as Member);
  return out;
}

/** UTF-8 byte length of `joinMembers(members)`, without building it. */
export function membersUtf8Length(members: readonly Member[]): number {
  // "{" "}" and the commas; JSON text never splits a surrogate pair, so lengths add up.
  let n = 2 + Math.max(0, members.length - 1);
  for (const [key, text] of members) n += utf8Length(JSON.stringify(key)) + 1 + utf8Length(text);
  return n;
}

const NON_ASCII = /[\u0080-\uffff]/;

/** UTF-8 byte length of `text` as `TextEncoder` would encode it (a lone surrogate becomes U+FFFD). */
export function utf8Length(text: string): number {
  // Mostly ASCII (canonical JSON of typical events): one native scan instead of a loop.
  if (!NON_ASCII.test(text)) return text.length;
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      n += 1;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      // A surrogate pair: two UTF-16 units, four bytes.
      n += 2;
      i++;
    } else {
      n += 2;
    }
  }
  return n;
}

export { sha256Hex, sha256HexOfBytes } from "../sdk/hash";

/** Without `{ stream: true }`, each decode() starts afresh (Encoding spec), so one instance serves every call. */
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** A UTF-8 decoder that throws on malformed input instead of inserting U+FFFD. */
export function strictUtf8(bytes: Uint8Array): string {
  return strictDecoder.decode(bytes);
}
