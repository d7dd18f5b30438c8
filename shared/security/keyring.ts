import { fnv1a32 } from "../partitioner";

/**
 * Key-encryption keys (KEKs) for field encryption: the `EVENTLINE_KEKS` secret.
 *
 *   EVENTLINE_KEKS = "<version>:<base64 of 32 bytes>[,<version>:<base64>...]"   (newest first)
 *
 * The first entry is the current KEK: new data keys are wrapped under it. The others only unwrap
 * keys that have not been rewrapped yet (KeyVault.rewrap), so a rotation is: prepend a new
 * version, deploy, rewrap until nothing remains, then drop the old version. KEKs wrap the
 * per-subject data keys that live (wrapped) in the KeyVault Durable Object; events never see them.
 *
 * Error messages name entries by position and version, never by their key text.
 */

/** KEK versions: short identifiers stored next to every wrapped data key. */
export const KEK_VERSION = /^[A-Za-z0-9_-]{1,32}$/;

const utf8 = new TextEncoder();
const KEK_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class KeyringError extends Error {
  override readonly name = "KeyringError";
}

export interface WrappedKey {
  kekVersion: string;
  /** 12-byte random IV followed by the AES-256-GCM ciphertext and tag of the data key. */
  wrapped: Uint8Array<ArrayBuffer>;
}

export interface Keyring {
  /** The version new keys are wrapped under (the first entry). */
  readonly current: string;
  /** Every version, newest first. */
  readonly versions: readonly string[];
  /** Wraps a raw data key under the current KEK; `aad` binds the wrapped key to its identity. */
  wrap(raw: Uint8Array, aad: string): Promise<WrappedKey>;
  /** Unwraps a key wrapped by `wrap` under `kekVersion` with the same `aad`; throws KeyringError otherwise. */
  unwrap(kekVersion: string, wrapped: Uint8Array, aad: string): Promise<Uint8Array<ArrayBuffer>>;
}

const STANDARD_BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const URL_BASE64 = /^[A-Za-z0-9_-]*={0,2}$/;

/** Decodes standard or URL-safe base64 (padding optional); null when it is not base64. */
function decodeBase64(text: string): Uint8Array<ArrayBuffer> | null {
  if (!STANDARD_BASE64.test(text) && !URL_BASE64.test(text)) return null;
  const unpadded = text.replace(/=+$/, "").replaceAll("-", "+").replaceAll("_", "/");
  if (unpadded.length % 4 === 1) return null;
  if (text.includes("=") && text.length % 4 !== 0) return null;
  let binary: string;
  try {
    binary = atob(unpadded + "=".repeat((4 - (unpadded.length % 4)) % 4));
  } catch {
    return null;
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * Parses `EVENTLINE_KEKS` (see the top of this file). Throws KeyringError naming the problem; the
 * messages never contain key material (a malformed entry is named by its position only).
 */
export function parseKeyring(text: string): Keyring {
  if (typeof text !== "string" || text.trim() === "") {
    throw new KeyringError("EVENTLINE_KEKS is empty: set it to version:base64(32 bytes), e.g. v1:<openssl rand -base64 32>");
  }
  const entries = text.split(",").map((entry) => entry.trim());
  const keys = new Map<string, Uint8Array<ArrayBuffer>>();
  entries.forEach((entry, index) => {
    const where = `EVENTLINE_KEKS entry ${index + 1}`;
    if (entry === "") throw new KeyringError(`${where} is empty (stray comma?)`);
    const colon = entry.indexOf(":");
    if (colon < 0) throw new KeyringError(`${where} must look like version:base64(32 bytes)`);
    const version = entry.slice(0, colon);
    // An invalid version is not echoed: it might be key text pasted in the wrong place.
    if (!KEK_VERSION.test(version)) throw new KeyringError(`${where} has an invalid version: use 1-32 chars of A-Z, a-z, 0-9, '_', '-'`);
    if (keys.has(version)) throw new KeyringError(`${where}: version "${version}" is listed more than once`);
    const bytes = decodeBase64(entry.slice(colon + 1).trim());
    if (bytes === null) throw new KeyringError(`${where} (version "${version}"): the key is not valid base64`);
    if (bytes.length !== KEK_BYTES) {
      throw new KeyringError(`${where} (version "${version}"): the key must be ${KEK_BYTES} bytes, got ${bytes.length}`);
    }
    keys.set(version, bytes);
  });
  return new WebCryptoKeyring(keys);
}

class WebCryptoKeyring implements Keyring {
  readonly current: string;
  readonly versions: readonly string[];
  /** Imported lazily (parsing stays synchronous); the raw bytes are zeroed once imported. */
  private readonly imported = new Map<string, Promise<CryptoKey>>();

  constructor(private readonly raw: Map<string, Uint8Array<ArrayBuffer>>) {
    this.versions = Object.freeze([...raw.keys()]);
    const current = this.versions[0];
    if (current === undefined) throw new KeyringError("EVENTLINE_KEKS holds no key");
    this.current = current;
  }

  private kek(version: string): Promise<CryptoKey> {
    let key = this.imported.get(version);
    if (key === undefined) {
      const bytes = this.raw.get(version);
      if (bytes === undefined) {
        throw new KeyringError(
          `KEK version "${version}" is not in EVENTLINE_KEKS (it holds ${this.versions.join(", ")}): ` +
            "keys wrapped under it cannot be unwrapped until it is put back; remove a KEK only after rewrap reports nothing remaining",
        );
      }
      key = crypto.subtle.importKey("raw", bytes, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]).then((imported) => {
        bytes.fill(0);
        return imported;
      });
      this.imported.set(version, key);
    }
    return key;
  }

  async wrap(raw: Uint8Array, aad: string): Promise<WrappedKey> {
    const kek = await this.kek(this.current);
    const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: utf8.encode(aad) }, kek, new Uint8Array(raw)),
    );
    const wrapped = new Uint8Array(IV_BYTES + sealed.length);
    wrapped.set(iv);
    wrapped.set(sealed, IV_BYTES);
    return { kekVersion: this.current, wrapped };
  }

  async unwrap(kekVersion: string, wrapped: Uint8Array, aad: string): Promise<Uint8Array<ArrayBuffer>> {
    const kek = await this.kek(kekVersion);
    if (wrapped.length < IV_BYTES + TAG_BYTES) throw new KeyringError(`wrapped data key is too short (KEK version "${kekVersion}")`);
    try {
      const raw = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: wrapped.slice(0, IV_BYTES), additionalData: utf8.encode(aad) },
        kek,
        wrapped.slice(IV_BYTES),
      );
      return new Uint8Array(raw);
    } catch {
      throw new KeyringError(
        `a data key failed to unwrap under KEK version "${kekVersion}": the KEK text for that version changed, or the wrapped key was altered or moved`,
      );
    }
  }
}

/** The KeyVault is split in this many Durable Objects, named `shard-<n>`. Changing it re-homes every key: don't. */
export const KEY_VAULT_SHARDS = 16;

/** The KeyVault shard holding a subject's data keys: FNV-1a-32(subject) mod 16 (as the partitioner hashes). */
export function vaultShardOf(subject: string): number {
  return fnv1a32(subject) % KEY_VAULT_SHARDS;
}

/** The Durable Object name of a KeyVault shard. */
export function vaultShardName(shard: number): string {
  return `shard-${shard}`;
}

/** Data key ids are `<shard>.<32 hex>`, so a key id names the shard that holds it. */
export const DATA_KEY_ID = /^(\d{1,2})\.[0-9a-f]{32}$/;

/** The shard a data key id names, or null for a malformed id. */
export function shardOfKeyId(kid: string): number | null {
  const match = DATA_KEY_ID.exec(kid);
  if (match === null) return null;
  const shard = Number(match[1]);
  return shard < KEY_VAULT_SHARDS && String(shard) === match[1] ? shard : null;
}
