import type { TopicConfig } from "../config";

/**
 * JSON Pointers (RFC 6901, plus `*` for every member or item) into an event's `data`: which values
 * a topic declares sensitive, where they are, and a copy with values replaced — what field
 * encryption (fields.ts) encrypts and decrypts in place.
 */

export function parsePointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw new TypeError(`"${pointer}" is not a JSON Pointer`);
  return pointer
    .slice(1)
    .split("/")
    .map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
}

export function formatPointer(segments: readonly string[]): string {
  return segments.map((s) => `/${s.replaceAll("~", "~0").replaceAll("/", "~1")}`).join("");
}

const ARRAY_INDEX = /^(0|[1-9][0-9]*)$/;

/** The members of `value` a pointer segment selects (`*`: all of them); values `undefined` count as absent. */
export function select(value: unknown, segment: string): [string, unknown][] {
  let found: [string, unknown][];
  if (Array.isArray(value)) {
    if (segment === "*") found = value.map((item, i) => [String(i), item]);
    else found = ARRAY_INDEX.test(segment) && Number(segment) < value.length ? [[segment, value[Number(segment)]]] : [];
  } else if (value !== null && typeof value === "object") {
    const record = value as Record<string, unknown>;
    if (segment === "*") found = Object.entries(record);
    else found = Object.hasOwn(record, segment) ? [[segment, record[segment]]] : [];
  } else {
    found = [];
  }
  return found.filter(([, item]) => item !== undefined);
}

/** A value selected in `data`, with its concrete pointer. */
export interface Selected {
  pointer: string;
  value: unknown;
}

/** Implements `expandPaths`, keeping the selected values. */
export function expand(data: unknown, pointers: readonly string[]): Selected[] {
  const found: { segments: string[]; value: unknown }[] = [];
  const walk = (value: unknown, pattern: readonly string[], at: number, path: string[]) => {
    const segment = pattern[at];
    if (segment === undefined) {
      found.push({ segments: path, value });
      return;
    }
    for (const [key, child] of select(value, segment)) walk(child, pattern, at + 1, [...path, key]);
  };
  for (const pointer of pointers) {
    const pattern = parsePointer(pointer);
    if (pattern.length > 0) walk(data, pattern, 0, []);
  }
  const all = new Set(found.map(({ segments }) => formatPointer(segments)));
  const taken = new Set<string>();
  const out: Selected[] = [];
  for (const { segments, value } of found) {
    const pointer = formatPointer(segments);
    if (taken.has(pointer)) continue;
    taken.add(pointer);
    let enclosed = false;
    for (let n = 1; n < segments.length && !enclosed; n++) enclosed = all.has(formatPointer(segments.slice(0, n)));
    if (!enclosed) out.push({ pointer, value });
  }
  return out;
}

/**
 * The concrete pointers of `data` that `pointers` (with `*` wildcards) select, in order, once
 * each; absent paths are skipped, and a pointer below another selected one is dropped (the
 * enclosing value is encrypted whole). The root pointer "" selects nothing.
 */
export function expandPaths(data: unknown, pointers: readonly string[]): string[] {
  return expand(data, pointers).map(({ pointer }) => pointer);
}

/** The sensitive pointers of an event type: those for every type (`*`) and those for the type. */
export function sensitivePointersFor(topic: Pick<TopicConfig, "sensitive">, type: string): string[] {
  // Own properties only: a type such as "constructor" must not find Object.prototype's.
  const own = (key: string) => (Object.hasOwn(topic.sensitive, key) ? (topic.sensitive[key] ?? []) : []);
  const pointers = [...own("*"), ...(type === "*" ? [] : own(type))];
  return [...new Set(pointers)];
}

/** A copy of `root` with the values at `replacements` (concrete pointer → value) replaced; `root` is not changed. */
export function replaceAt(root: unknown, replacements: ReadonlyMap<string, unknown>): unknown {
  type Node = { children: Map<string, Node>; leaf?: { value: unknown } };
  const trie: Node = { children: new Map() };
  for (const [pointer, value] of replacements) {
    let node = trie;
    for (const segment of parsePointer(pointer)) {
      let child = node.children.get(segment);
      if (child === undefined) {
        child = { children: new Map() };
        node.children.set(segment, child);
      }
      node = child;
    }
    node.leaf = { value };
  }
  const rebuild = (value: unknown, node: Node): unknown => {
    if (node.leaf !== undefined) return node.leaf.value;
    if (Array.isArray(value)) {
      const copy = value.slice();
      for (const [segment, child] of node.children) copy[Number(segment)] = rebuild(value[Number(segment)], child);
      return copy;
    }
    const record = value as Record<string, unknown>;
    const copy: Record<string, unknown> = { ...record };
    for (const [segment, child] of node.children) {
      // defineProperty, not assignment: a member named "__proto__" must stay a plain member.
      Object.defineProperty(copy, segment, {
        value: rebuild(record[segment], child),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return copy;
  };
  return replacements.size === 0 ? root : rebuild(root, trie);
}
