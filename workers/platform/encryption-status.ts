import type { RotationState } from "../../durable-objects/key-rotation";
import type { VaultStatus } from "../../durable-objects/key-vault";
import { EventlineError } from "../../shared/errors";
import type { Exposition } from "../../shared/metrics";
import { KEY_VAULT_SHARDS, type Keyring, parseKeyring, vaultShardName } from "../../shared/security/keyring";

/**
 * Field encryption's state over the 16 KeyVault shards, for `GET /v1/encryption`, `/v1/metrics`
 * and the cron trigger: data keys per KEK version and the automatic KEK rotation's progress
 * (durable-objects/key-rotation.ts). Asking a shard also arms its rotation when its keys need it.
 */

export interface RotationSummary {
  /** `complete`: every active key is wrapped by the current KEK; `stalled`: a shard stopped (see `errors`). */
  state: RotationState;
  /** Active data keys not yet wrapped by the current KEK. */
  remaining: number;
  /** Data keys rewrapped to the current KEK so far (automatically and by manual rewrap steps). */
  rewrapped: number;
  /** rewrapped ÷ (rewrapped + remaining), 0..1; 1 when nothing remains. */
  progress: number;
  /** KEK versions besides the current one that wrap no active data key: they can leave EVENTLINE_KEKS. */
  removable: string[];
  /** Shards per state. */
  shards: Record<RotationState, number>;
  /** When the first shard began rewrapping to the current KEK; null when none had to. */
  startedAt: string | null;
  /** When the last shard finished, once the rotation is complete; null otherwise. */
  completedAt: string | null;
  /** Why shards stopped, or disagree with this Worker about the current KEK (a deployment rolling out). */
  errors: { shard: string; error: string }[];
}

export interface EncryptionStatus {
  kek: { current: string; versions: string[] };
  dataKeys: VaultStatus;
  /** Every active data key is wrapped by the current KEK. */
  rotationComplete: boolean;
  rotation: RotationSummary;
}

/** EVENTLINE_KEKS parsed, or the 503 that says what is wrong with it (never its key text). */
export function workerKeyring(env: Env): Keyring {
  try {
    return parseKeyring(env.EVENTLINE_KEKS);
  } catch (err) {
    throw new EventlineError("unavailable", `field encryption is not configured: ${(err as Error).message}`, { retryAfter: 60 });
  }
}

export const vaultShards = (env: Env) =>
  Array.from({ length: KEY_VAULT_SHARDS }, (_, n) => ({ name: vaultShardName(n), stub: env.KEY_VAULT.getByName(vaultShardName(n)) }));

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The keys and rotation of every shard, summed; one RPC per shard. */
export async function collectEncryptionStatus(env: Env): Promise<EncryptionStatus> {
  const ring = workerKeyring(env);
  const shards = await Promise.all(vaultShards(env).map(async ({ name, stub }) => ({ name, ...(await stub.rotation()) })));
  const dataKeys: VaultStatus = { keys: 0, shredded: 0, byKekVersion: {} };
  const counts: Record<RotationState, number> = { rewrapping: 0, complete: 0, stalled: 0 };
  const errors: RotationSummary["errors"] = [];
  let rewrapped = 0;
  const started: number[] = [];
  const completed: number[] = [];
  for (const { name, keys, rotation } of shards) {
    dataKeys.keys += keys.keys;
    dataKeys.shredded += keys.shredded;
    for (const [v, n] of Object.entries(keys.byKekVersion)) dataKeys.byKekVersion[v] = (dataKeys.byKekVersion[v] ?? 0) + n;
    counts[rotation.state]++;
    if (rotation.current !== ring.current) {
      errors.push({
        shard: name,
        error: `sees KEK ${rotation.current} as current, this Worker ${ring.current} (a deployment rolling out?)`,
      });
      continue;
    }
    rewrapped += rotation.rewrapped;
    if (rotation.error !== null) errors.push({ shard: name, error: rotation.error });
    if (rotation.startedAt !== null) started.push(rotation.startedAt);
    if (rotation.completedAt !== null) completed.push(rotation.completedAt);
  }
  // Counted from the keys against this Worker's ring, so a shard on another version cannot make it look done.
  const remaining = Object.entries(dataKeys.byKekVersion).reduce((n, [v, count]) => (v === ring.current ? n : n + count), 0);
  const state: RotationState = remaining === 0 ? "complete" : counts.stalled > 0 ? "stalled" : "rewrapping";
  return {
    kek: { current: ring.current, versions: [...ring.versions] },
    dataKeys,
    rotationComplete: remaining === 0,
    rotation: {
      state,
      remaining,
      rewrapped,
      progress: remaining === 0 ? 1 : rewrapped / (rewrapped + remaining),
      removable: ring.versions.filter((v) => v !== ring.current && (dataKeys.byKekVersion[v] ?? 0) === 0),
      shards: counts,
      startedAt: iso(started.length === 0 ? null : Math.min(...started)),
      completedAt: iso(state === "complete" && completed.length > 0 ? Math.max(...completed) : null),
      errors,
    },
  };
}

/** The Prometheus gauges of field encryption in GET /v1/metrics (global admins only). */
export function encryptionGauges(out: Exposition, { dataKeys, rotation }: EncryptionStatus): void {
  for (const [version, n] of Object.entries(dataKeys.byKekVersion)) {
    out.gauge("eventline_data_keys", "Active data keys, by the KEK version wrapping them.", { kek_version: version }, n);
  }
  out.gauge("eventline_data_keys_shredded", "Data keys destroyed by erasures (crypto-shredding).", {}, dataKeys.shredded);
  out.gauge(
    "eventline_kek_rotation_remaining_keys",
    "Active data keys not yet rewrapped under the current KEK (0: older KEK versions no key uses can be removed).",
    {},
    rotation.remaining,
  );
  out.gauge("eventline_kek_rotation_progress_ratio", "Share of the KEK rotation done (0..1).", {}, rotation.progress);
  out.gauge(
    "eventline_kek_rotation_stalled_shards",
    "KeyVault shards whose KEK rotation stopped on an error.",
    {},
    rotation.shards.stalled,
  );
}
