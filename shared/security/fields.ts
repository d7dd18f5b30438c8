import { isJsonMediaType } from "../cloudevents";
import type { TopicConfig } from "../config";
import { EventlineError, type ProblemIssue } from "../errors";
import { canonicalJson, strictUtf8 } from "../json";
import { expand, replaceAt, type Selected, sensitivePointersFor } from "./field-pointers";
import { shardOfKeyId, vaultShardName, vaultShardOf } from "./keyring";

export { expandPaths, sensitivePointersFor } from "./field-pointers";
export { KEY_VAULT_SHARDS, vaultShardOf } from "./keyring";

/**
 * Field encryption: the values a topic declares `sensitive` (JSON Pointers into `data`, per type)
 * are replaced at ingest by envelopes
 *
 *   { "$eventline": "enc.v1", "kid": "<data key id>", "iv": "<base64url>", "ct": "<base64url>" }
 *
 * where `ct` is AES-256-GCM (ciphertext and tag) of the UTF-8 canonical JSON of the value, under
 * a key derived from the subject's data key (KeyVault, durable-objects/key-vault.ts). The
 * additional data binds each envelope to its topic, event (source, id) and field, so ciphertext
 * copied anywhere else does not decrypt. Shredding the subject's data key makes every such field
 * unreadable for good, without touching the stored events.
 *
 * Decryption looks for envelopes in `data` rather than at the configured paths, so events
 * written under an earlier config still decrypt. Nothing here logs values, keys or ciphertext.
 */

export const ENCRYPTED_MARK = "enc.v1";

/**
 * The longest subject whose fields are encrypted: the longest `DELETE /v1/subjects/{subject}/keys`
 * accepts (SubjectParam in shared/api-schemas.ts), so every data key ever made can be shredded.
 */
export const MAX_SENSITIVE_SUBJECT_LENGTH = 1024;

export interface EncryptedValue {
  $eventline: typeof ENCRYPTED_MARK;
  kid: string;
  iv: string;
  ct: string;
}

const ENVELOPE_MEMBERS = ["$eventline", "kid", "iv", "ct"] as const;

/** True for an envelope written by `encryptData` (exactly its four string members). */
export function isEncryptedValue(value: unknown): value is EncryptedValue {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const members = Object.keys(value);
  return (
    members.length === ENVELOPE_MEMBERS.length &&
    ENVELOPE_MEMBERS.every((m) => Object.hasOwn(value, m) && typeof (value as Record<string, unknown>)[m] === "string") &&
    (value as Record<string, unknown>).$eventline === ENCRYPTED_MARK
  );
}

/** Where an encrypted value belongs: it decrypts only in the same topic, event and field. */
export interface FieldContext {
  topic: string;
  source: string;
  id: string;
  /** The event's subject (whose data key it is): a copy under the same id in another stream does not decrypt. */
  subject?: string | undefined;
}

export interface FieldDataKey {
  kid: string;
  /** The 32 raw bytes of the subject's data key. */
  key: ArrayBuffer | Uint8Array;
}

export type DataKeyLookup = (kid: string) => Promise<ArrayBuffer | Uint8Array | null>;

export interface DecryptResult {
  data: unknown;
  /** Pointers of envelopes left in place: shredded or unknown key, one that does not unwrap, or ciphertext moved or altered. */
  undecryptable: string[];
}

const utf8 = new TextEncoder();
const IV_BYTES = 12;
const TAG_BYTES = 16;
const DATA_KEY_BYTES = 32;

// ---------------------------------------------------------------------------------------------
// Crypto

interface FieldKeys {
  enc: CryptoKey;
  siv: CryptoKey;
}

/** HKDF-SHA256 of the data key into the AES-256-GCM key and the HMAC-SHA256 key of the synthetic IVs. */
async function deriveFieldKeys(raw: ArrayBuffer | Uint8Array): Promise<FieldKeys> {
  const bytes = new Uint8Array(raw);
  if (bytes.length !== DATA_KEY_BYTES) throw new TypeError(`a data key has ${DATA_KEY_BYTES} bytes, got ${bytes.length}`);
  const base = await crypto.subtle.importKey("raw", bytes, "HKDF", false, ["deriveKey"]);
  const hkdf = (info: string) => ({ name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: utf8.encode(info) });
  const [enc, siv] = await Promise.all([
    crypto.subtle.deriveKey(hkdf("eventline field enc v1"), base, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]),
    crypto.subtle.deriveKey(hkdf("eventline field siv v1"), base, { name: "HMAC", hash: "SHA-256", length: 256 }, false, ["sign"]),
  ]);
  return { enc, siv };
}

/**
 * The AAD binding a ciphertext to its topic, event (source + id), subject and field: a JSON array, so the
 * encoding is injective whatever characters an id or source holds (a separator-joined string
 * would let a crafted id shift the boundaries), and it never contains a raw 0x00 byte.
 */
function fieldAad(ctx: FieldContext, pointer: string): Uint8Array {
  return utf8.encode(JSON.stringify(["eventline.enc.v1", ctx.topic, ctx.source, ctx.id, ctx.subject ?? null, pointer]));
}

/** Unpadded base64url (RFC 4648 §5) of `bytes`: envelope IVs and ciphertexts, API key secrets. */
export function toBase64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return null;
  try {
    const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

async function encryptValue(keys: FieldKeys, kid: string, aad: Uint8Array, value: unknown): Promise<EncryptedValue> {
  // Canonical JSON: the same value gives the same bytes whatever its member order.
  const plaintext = utf8.encode(canonicalJson(value));
  // Synthetic IV (as in SIV modes): the first 12 bytes of HMAC(sivKey, aad || 0x00 || plaintext).
  // Deterministic on purpose: a producer's retry of an event must store byte-identical content
  // (the log dedupes retries by content hash), so a random IV is not an option. It is still
  // safe for GCM: the HMAC input is an injective encoding of (aad, plaintext) — the plaintext is
  // JSON, which never holds a 0x00 byte, so the last 0x00 splits it — so an IV repeats only for
  // the same field of the same event with the same value, i.e. for the same ciphertext; the
  // only thing equal ciphertexts reveal is that exact repetition.
  const input = new Uint8Array(aad.length + 1 + plaintext.length);
  input.set(aad);
  input.set(plaintext, aad.length + 1);
  const iv = new Uint8Array(await crypto.subtle.sign("HMAC", keys.siv, input)).slice(0, IV_BYTES);
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad }, keys.enc, plaintext));
  return { $eventline: ENCRYPTED_MARK, kid, iv: toBase64Url(iv), ct: toBase64Url(ct) };
}

/** The value of an envelope, or `undefined` when it does not authenticate here. */
async function decryptValue(keys: FieldKeys, envelope: EncryptedValue, aad: Uint8Array): Promise<{ value: unknown } | undefined> {
  const iv = fromBase64Url(envelope.iv);
  const ct = fromBase64Url(envelope.ct);
  if (iv === null || ct === null || iv.length !== IV_BYTES || ct.length < TAG_BYTES) return undefined;
  try {
    const plaintext = await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad }, keys.enc, ct);
    return { value: JSON.parse(strictUtf8(new Uint8Array(plaintext))) };
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Data

/**
 * A copy of `data` with the values at `pointers` (wildcards allowed; absent paths skipped)
 * replaced by envelopes under `dataKey`. `data` itself is never changed; with nothing to
 * encrypt, it is returned as it is.
 */
export async function encryptData(data: unknown, pointers: readonly string[], ctx: FieldContext, dataKey: FieldDataKey): Promise<unknown> {
  const selected = expand(data, pointers);
  if (selected.length === 0) return data;
  return encryptSelected(data, selected, ctx, dataKey.kid, await deriveFieldKeys(dataKey.key));
}

async function encryptSelected(
  data: unknown,
  selected: readonly Selected[],
  ctx: FieldContext,
  kid: string,
  keys: FieldKeys,
): Promise<unknown> {
  const envelopes = await Promise.all(
    selected.map(async ({ pointer, value }) => [pointer, await encryptValue(keys, kid, fieldAad(ctx, pointer), value)] as const),
  );
  return replaceAt(data, new Map(envelopes));
}

/** Every envelope in `data` (not looking inside envelopes), with its concrete pointer. */
function findEnvelopes(data: unknown): { pointer: string; envelope: EncryptedValue }[] {
  const found: { pointer: string; envelope: EncryptedValue }[] = [];
  const walk = (value: unknown, pointer: string) => {
    if (isEncryptedValue(value)) {
      found.push({ pointer, envelope: value });
      return;
    }
    if (value === null || typeof value !== "object") return;
    const entries: [string, unknown][] = Array.isArray(value) ? value.map((item, i) => [String(i), item]) : Object.entries(value);
    for (const [key, item] of entries) walk(item, `${pointer}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`);
  };
  walk(data, "");
  return found;
}

type KeysFor = (kid: string) => Promise<FieldKeys | null>;

async function decryptWith(data: unknown, ctx: FieldContext, keysFor: KeysFor): Promise<DecryptResult> {
  const envelopes = findEnvelopes(data);
  if (envelopes.length === 0) return { data, undecryptable: [] };
  const results = await Promise.all(
    envelopes.map(async ({ pointer, envelope }) => {
      const keys = await keysFor(envelope.kid);
      const plain = keys === null ? undefined : await decryptValue(keys, envelope, fieldAad(ctx, pointer));
      return { pointer, plain };
    }),
  );
  const replacements = new Map<string, unknown>();
  const undecryptable: string[] = [];
  for (const { pointer, plain } of results) {
    if (plain === undefined) undecryptable.push(pointer);
    else replacements.set(pointer, plain.value);
  }
  return { data: replaceAt(data, replacements), undecryptable };
}

function memoized(lookup: DataKeyLookup): KeysFor {
  const memo = new Map<string, Promise<FieldKeys | null>>();
  return (kid) => {
    let keys = memo.get(kid);
    if (keys === undefined) {
      keys = lookup(kid).then((raw) => (raw === null ? null : deriveFieldKeys(raw)));
      memo.set(kid, keys);
    }
    return keys;
  };
}

/**
 * A copy of `data` with every envelope in it decrypted, where it authenticates: the key must be
 * found (`lookup` returns null for unknown or shredded keys) and the envelope must sit where it
 * was written (`ctx` and its pointer). Envelopes that do not decrypt stay as they are and are
 * listed in `undecryptable`. `data` itself is never changed.
 */
export async function decryptData(data: unknown, ctx: FieldContext, lookup: DataKeyLookup): Promise<DecryptResult> {
  return decryptWith(data, ctx, memoized(lookup));
}

// ---------------------------------------------------------------------------------------------
// Worker-side facade

/** The CloudEvent members field encryption reads (validated events, or the rows they become). */
export interface ProtectableEvent {
  id: string;
  source: string;
  type: string;
  subject?: string | undefined;
  data?: unknown;
  datacontenttype?: string | undefined;
  data_base64?: string | undefined;
}

export interface FieldProtectorEnv {
  /** The KeyVault binding as the Worker's Env types it (shared/ does not import the Durable Object). */
  KEY_VAULT: Env["KEY_VAULT"];
}

export interface FieldProtector {
  /**
   * The events with their sensitive fields encrypted under their subjects' data keys (one
   * `dataKeys` call per KeyVault shard involved, run concurrently). Events without sensitive
   * fields are returned as they are, the same objects, at no cost. Throws a `schema_violation`
   * EventlineError listing every event with sensitive fields but no subject, or with JSON data
   * sent as `data_base64` (where the fields cannot be found); `pathOf(i)` is the JSON Pointer of
   * event `i` in the request (default `/<i>`, as in a batch; pass `() => ""` for a single event).
   */
  protect<E extends ProtectableEvent>(
    topic: Pick<TopicConfig, "name" | "sensitive">,
    events: readonly E[],
    pathOf?: (index: number) => string,
  ): Promise<E[]>;
  /**
   * The events of `topic` with every envelope in their `data` decrypted where possible (one
   * `keysById` call per shard involved); `undecryptable` counts the envelopes left in place.
   * Events without envelopes are returned as they are.
   */
  reveal(topic: string, events: readonly Record<string, unknown>[]): Promise<{ events: Record<string, unknown>[]; undecryptable: number }>;
  /** Crypto-shreds a subject (see KeyVault.shred). */
  shred(subject: string): Promise<{ destroyed: number }>;
}

function byShard<T>(items: Iterable<T>, shardOf: (item: T) => number | null): Map<number, T[]> {
  const groups = new Map<number, T[]>();
  for (const item of items) {
    const shard = shardOf(item);
    if (shard === null) continue;
    const group = groups.get(shard);
    if (group === undefined) groups.set(shard, [item]);
    else group.push(item);
  }
  return groups;
}

/**
 * The Worker's side of field encryption, over the KeyVault shards. Keys fetched for a call are
 * kept only for that call (none outlive it, so a shred takes effect for the next request).
 */
export function createFieldProtector(env: FieldProtectorEnv): FieldProtector {
  const vault = (shard: number) => env.KEY_VAULT.getByName(vaultShardName(shard));

  return {
    async protect<E extends ProtectableEvent>(
      topic: Pick<TopicConfig, "name" | "sensitive">,
      events: readonly E[],
      pathOf = (i: number) => `/${i}`,
    ): Promise<E[]> {
      const issues: ProblemIssue[] = [];
      const plans: { index: number; subject: string; selected: Selected[] }[] = [];
      events.forEach((event, index) => {
        const pointers = sensitivePointersFor(topic, event.type);
        if (pointers.length === 0) return;
        if (event.data_base64 !== undefined && isJsonMediaType(event.datacontenttype)) {
          issues.push({
            path: `${pathOf(index)}/data_base64`,
            message: `type "${event.type}" has sensitive fields (${pointers.join(", ")}), which cannot be encrypted inside data_base64: send JSON data`,
          });
          return;
        }
        const selected = expand(event.data, pointers);
        if (selected.length === 0) return;
        if (typeof event.subject !== "string" || event.subject === "") {
          const fields = selected.map((s) => s.pointer).join(", ");
          issues.push({
            path: `${pathOf(index)}/subject`,
            message: `an event with sensitive fields (${fields}) needs a subject: its data key is per subject`,
          });
          return;
        }
        if (event.subject.length > MAX_SENSITIVE_SUBJECT_LENGTH) {
          // Its data key could never be erased through the API (the subject does not fit the route).
          issues.push({
            path: `${pathOf(index)}/subject`,
            message: `an event with sensitive fields needs a subject of at most ${MAX_SENSITIVE_SUBJECT_LENGTH} characters, so its data key can be erased`,
          });
          return;
        }
        plans.push({ index, subject: event.subject, selected });
      });
      if (issues.length > 0) {
        const n = issues.length;
        throw new EventlineError("schema_violation", `${n} event${n === 1 ? "" : "s"} with sensitive fields cannot be encrypted`, {
          issues,
        });
      }
      if (plans.length === 0) return [...events];

      const subjects = new Set(plans.map((p) => p.subject));
      const keys = new Map<string, { kid: string; keys: Promise<FieldKeys> }>();
      await Promise.all(
        [...byShard(subjects, vaultShardOf)].map(async ([shard, group]) => {
          const found = await vault(shard)
            .dataKeys(group)
            .catch((err: unknown) => {
              // The subject's active key exists but does not unwrap (its KEK version was removed from
              // EVENTLINE_KEKS too early, or its row was altered): an operator's fix, never a new key
              // behind the erasure's back. 503 with the reason, not a bare 500.
              if (err instanceof Error && /did not unwrap|failed to unwrap|KEK version/i.test(err.message)) {
                throw new EventlineError("unavailable", `encryption keys unavailable: ${err.message}`, { retryAfter: 60 });
              }
              throw err;
            });
          for (const subject of group) {
            const dataKey = found[subject];
            if (dataKey === undefined) throw new Error(`KeyVault shard ${shard} returned no data key for a subject`);
            keys.set(subject, { kid: dataKey.kid, keys: deriveFieldKeys(dataKey.key) });
          }
        }),
      );
      const out = [...events];
      await Promise.all(
        plans.map(async ({ index, subject, selected }) => {
          const event = events[index] as E;
          const key = keys.get(subject);
          if (key === undefined) throw new Error("data key missing for a planned event");
          const ctx = { topic: topic.name, source: event.source, id: event.id, subject };
          out[index] = { ...event, data: await encryptSelected(event.data, selected, ctx, key.kid, await key.keys) };
        }),
      );
      return out;
    },

    async reveal(topic, events) {
      const found = events.map((event) => findEnvelopes(event.data));
      const kids = new Set(found.flatMap((envelopes) => envelopes.map((e) => e.envelope.kid)));
      const raws = new Map<string, ArrayBuffer | null>();
      await Promise.all(
        [...byShard(kids, shardOfKeyId)].map(async ([shard, group]) => {
          const keys = await vault(shard).keysById(group);
          for (const kid of group) raws.set(kid, keys[kid] ?? null);
        }),
      );
      // Malformed kids name no shard and were never asked for: they stay undecryptable.
      const keysFor = memoized(async (kid) => raws.get(kid) ?? null);
      let undecryptable = 0;
      const out = await Promise.all(
        events.map(async (event, i) => {
          if (found[i]?.length === 0) return event;
          const ctx = {
            topic,
            source: String(event.source),
            id: String(event.id),
            subject: typeof event.subject === "string" ? event.subject : undefined,
          };
          const result = await decryptWith(event.data, ctx, keysFor);
          undecryptable += result.undecryptable.length;
          return { ...event, data: result.data };
        }),
      );
      return { events: out, undecryptable };
    },

    async shred(subject) {
      if (typeof subject !== "string" || subject === "") throw new TypeError("subject must be a non-empty string");
      return vault(vaultShardOf(subject)).shred(subject);
    },
  };
}

/**
 * The consumer SDK's `decrypt` option (sdk/consumer.ts) over a KeyVault binding: an authorized
 * consumer's handler gets plaintext; the queue message itself only ever carried envelopes.
 */
export function fieldDecryption<ConsumerEnv>(vault: (env: ConsumerEnv) => Env["KEY_VAULT"]) {
  return async <E extends Record<string, unknown>>(event: E, { env, topic }: { env: ConsumerEnv; topic: string }): Promise<E> => {
    const { events } = await createFieldProtector({ KEY_VAULT: vault(env) }).reveal(topic, [event]);
    return events[0] as E;
  };
}

/**
 * `data` with every envelope reduced to its key id (`{"$eventline":"enc.v1","kid":…}`): what the
 * content comparison of a retried event looks at, so it never depends on the encrypted values.
 */
export function withoutCiphertext(data: unknown): unknown {
  if (isEncryptedValue(data)) return { $eventline: data.$eventline, kid: data.kid };
  if (Array.isArray(data)) return data.map(withoutCiphertext);
  if (data !== null && typeof data === "object") {
    return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, withoutCiphertext(v)]));
  }
  return data;
}
