import { runInDurableObject } from "cloudflare:test";

/**
 * Plants data keys in a KeyVault shard as the vault holds them after a KEK version was removed
 * too early (`gone`, wrapped under "v0") or after their bytes, or the subject they were wrapped
 * for, changed (`altered`, "v1" with random bytes): neither unwraps, whatever the cache holds.
 * Their subjects are `<subject>-v0` and `<subject>-v1`.
 */
export async function plantUnwrappableKeys(
  shard: DurableObjectStub,
  subject: string,
  { gone, altered }: { gone: string; altered: string },
): Promise<void> {
  await runInDurableObject(shard, (_vault: unknown, state: DurableObjectState) => {
    for (const [kid, version] of [
      [gone, "v0"],
      [altered, "v1"],
    ] as const) {
      state.storage.sql.exec(
        "INSERT INTO data_keys (kid, subject, kek_version, wrapped, created_at) VALUES (?, ?, ?, ?, ?)",
        kid,
        `${subject}-${version}`,
        version,
        crypto.getRandomValues(new Uint8Array(60)),
        Date.now(),
      );
    }
  });
}
