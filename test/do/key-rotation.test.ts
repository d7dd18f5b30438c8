import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import {
  checkRotation,
  ROTATION_CHUNK,
  ROTATION_PAUSE_MS,
  type RotationHost,
  rewrapNow,
  runRotation,
  type ShardRotation,
} from "../../durable-objects/key-rotation";
import {
  findDataKeys,
  getOrCreateDataKeys,
  KeyCache,
  type KeyVault,
  rewrapDataKeys,
  shredSubject,
  type Vault,
  vaultStatus,
} from "../../durable-objects/key-vault";
import { parseKeyring } from "../../shared/security/keyring";
import { waitFor } from "../helpers";
import { auditSearch } from "../security/helpers";

/**
 * Automatic KEK rotation (durable-objects/key-rotation.ts): once a new KEK version is first in
 * EVENTLINE_KEKS, a KeyVault rewraps its data keys by itself from its alarm, a bounded chunk per
 * run, resumes after a restart, reports its progress, and audits the outcome as the system actor.
 * This file changes EVENTLINE_KEKS (each test file runs in its own workerd, so no other file sees it).
 */

const V1 = env.EVENTLINE_KEKS;
const b64 = () => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
const V2 = `v2:${b64()}`;

/** Sets EVENTLINE_KEKS as a deploy would: every object reads the new value on its next call. */
function deployKeks(text: string): void {
  (env as { EVENTLINE_KEKS: string }).EVENTLINE_KEKS = text;
}
afterEach(() => deployKeks(V1));

function bytes(buffer: ArrayBuffer | null | undefined): number[] {
  if (buffer === null || buffer === undefined) throw new Error("no key");
  return [...new Uint8Array(buffer)];
}

const subjects = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

/** The system actor's rotation records of one vault object. */
async function rotationAudit(shard: string) {
  return (await auditSearch({ action: "keys.rewrap", actor: "system:kek-rotation" })).filter((r) => r.details?.shard === shard);
}

describe("the KeyVault's alarm (EVENTLINE_KEKS gains a v2)", () => {
  it("rewraps every key in bounded chunks, resumes after a restart mid-way, keeps every key readable, reports progress and audits the completion", async () => {
    const name = "alarm-rotation";
    const stub = env.KEY_VAULT.getByName(name);
    const all = subjects("alarm", 2 * ROTATION_CHUNK + 50);
    const original = await stub.dataKeys(all);
    const kids = all.map((s) => original[s]?.kid ?? "");
    const expectReadable = async () => {
      const found = await stub.keysById(kids);
      for (const s of all) expect(bytes(found[original[s]?.kid ?? ""])).toEqual(bytes(original[s]?.key));
    };
    expect((await stub.rotation()).rotation).toMatchObject({ current: "v1", state: "complete", remaining: 0 });
    expect(await runDurableObjectAlarm(stub)).toBe(false);

    deployKeks(`${V2},${V1}`);
    // Asking the shard (the cron's poke, status, metrics) notices the new version and arms the alarm.
    const noticed = await stub.rotation();
    expect(noticed.rotation).toMatchObject({ current: "v2", state: "rewrapping", remaining: all.length, rewrapped: 0 });
    expect(noticed.keys.byKekVersion).toEqual({ v1: all.length });
    await expectReadable();

    // One run: one chunk. (The alarm also fires by itself after its pause, so counts are checked
    // against the runs the shard reports, which every run records with its chunk.)
    await runDurableObjectAlarm(stub);
    const first = await waitFor(
      async () => (await stub.rotation()).rotation,
      (r) => r.runs >= 1,
    );
    expect(first.rewrapped).toBe(Math.min(all.length, ROTATION_CHUNK * first.runs));
    expect(first.remaining).toBe(all.length - first.rewrapped);
    expect(first.state).toBe(first.remaining === 0 ? "complete" : "rewrapping");
    await expectReadable();
    // A key created meanwhile is wrapped by v2 at once.
    expect((await stub.dataKeys(["alarm-new"]))["alarm-new"]?.kid).toMatch(/\./);

    // A restart mid-way (an eviction, a deploy): the progress is in storage, the alarm is still set.
    await evictDurableObject(stub);
    const resumed = (await stub.rotation()).rotation;
    expect(resumed.rewrapped).toBeGreaterThanOrEqual(first.rewrapped);
    expect(resumed.rewrapped + resumed.remaining).toBe(all.length);
    await expectReadable();

    for (let i = 0; i < 10 && (await stub.rotation()).rotation.state !== "complete"; i++) {
      await runDurableObjectAlarm(stub);
      await expectReadable();
    }
    const done = await stub.rotation();
    expect(done.rotation).toMatchObject({
      current: "v2",
      state: "complete",
      remaining: 0,
      rewrapped: all.length,
      runs: Math.ceil(all.length / ROTATION_CHUNK),
      error: null,
    });
    expect(done.rotation.completedAt).toEqual(expect.any(Number));
    expect(done.keys.byKekVersion).toEqual({ v2: all.length + 1 });
    expect(await runDurableObjectAlarm(stub)).toBe(false);

    // v1 can go: every key unwraps under v2 alone, with its original bytes.
    deployKeks(V2);
    await expectReadable();
    expect((await stub.rotation()).rotation.state).toBe("complete");

    // One record for the rotation (not per run or key), by the system actor, with its counts.
    const records = await rotationAudit(name);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      outcome: "success",
      resource: "kek",
      actor: { id: "system:kek-rotation", kind: "system" },
      details: {
        shard: name,
        automatic: true,
        current: "v2",
        rewrapped: all.length,
        runs: Math.ceil(all.length / ROTATION_CHUNK),
        from: { v1: all.length },
        remaining: 0,
      },
    });
  });

  it("a vault nobody calls is started by the rotation poke alone; the first call after a deploy starts it too", async () => {
    const quiet = env.KEY_VAULT.getByName("quiet-rotation");
    const busy = env.KEY_VAULT.getByName("busy-rotation");
    await quiet.dataKeys(subjects("quiet", 3));
    const busyKeys = await busy.dataKeys(subjects("busy", 3));
    deployKeks(`${V2},${V1}`);
    // A deploy restarts every object; its first call of any kind sees the new EVENTLINE_KEKS.
    await evictDurableObject(busy);
    await busy.keysById([busyKeys["busy-0"]?.kid ?? ""]);
    const alarmOf = (stub: typeof busy) => runInDurableObject(stub, (_v: KeyVault, state) => state.storage.getAlarm());
    expect(
      await waitFor(
        () => alarmOf(busy),
        (at) => at !== null,
        5_000,
      ),
    ).toEqual(expect.any(Number));
    expect(await alarmOf(quiet)).toBeNull();
    await quiet.rotation();
    expect(await alarmOf(quiet)).toEqual(expect.any(Number));
    for (const stub of [quiet, busy]) {
      for (let i = 0; i < 5 && (await stub.rotation()).rotation.state !== "complete"; i++) await runDurableObjectAlarm(stub);
      expect((await stub.rotation()).rotation).toMatchObject({ state: "complete", rewrapped: 3, remaining: 0 });
    }
  });
});

describe("rotation steps (over a host of the test's own)", () => {
  /** A host over the object's storage with `ring`, recording alarms and audit records instead of setting them. */
  function hostOf(state: DurableObjectState, ring: string) {
    const vault: Vault = { storage: state.storage, keyring: parseKeyring(ring), cache: new KeyCache() };
    /** How far ahead of the host's clock each alarm was armed. */
    const alarms: number[] = [];
    const audits: Parameters<RotationHost["audit"]>[0][] = [];
    const clock = 1_000_000;
    const host: RotationHost = {
      sql: state.storage.sql,
      keyring: vault.keyring,
      rewrap: (limit) => rewrapDataKeys(vault, limit),
      arm: async (at) => {
        alarms.push(at - clock);
      },
      audit: async (record) => {
        audits.push(record);
      },
      now: () => clock,
    };
    return { host, vault, alarms, audits };
  }

  it("each run rewraps at most one chunk and arms the next after a pause; the last completes and audits once", async () => {
    await runInDurableObject(env.KEY_VAULT.getByName("steps"), async (_v: KeyVault, state) => {
      const A = `v1:${b64()}`;
      const all = subjects("steps", ROTATION_CHUNK + 30);
      const original = await getOrCreateDataKeys(hostOf(state, A).vault, all);
      const { host, vault, alarms, audits } = hostOf(state, `v2:${b64()},${A}`);
      const check = await checkRotation(host);
      expect(check).toMatchObject({ state: "rewrapping", remaining: all.length });
      expect(alarms).toEqual([ROTATION_PAUSE_MS]);

      const runs: ShardRotation[] = [];
      runs.push(await runRotation(host));
      expect(runs[0]).toMatchObject({ state: "rewrapping", rewrapped: ROTATION_CHUNK, remaining: 30, runs: 1 });
      expect(alarms).toEqual([ROTATION_PAUSE_MS, ROTATION_PAUSE_MS]);
      expect(audits).toEqual([]);
      runs.push(await runRotation(host));
      expect(runs[1]).toMatchObject({ state: "complete", rewrapped: all.length, remaining: 0, runs: 2 });
      expect(alarms).toHaveLength(2);
      expect(audits).toEqual([
        {
          outcome: "success",
          details: expect.objectContaining({ current: "v2", rewrapped: all.length, runs: 2, from: { v1: all.length }, remaining: 0 }),
        },
      ]);
      // Nothing left: a later run or check changes nothing and audits nothing more.
      expect(await runRotation(host)).toMatchObject({ state: "complete", runs: 2 });
      expect(await checkRotation(host)).toMatchObject({ state: "complete" });
      expect([alarms.length, audits.length]).toEqual([2, 1]);
      const byKid = await findDataKeys(
        vault,
        all.map((s) => original[s]?.kid ?? ""),
      );
      for (const s of all) expect(bytes(byKid[original[s]?.kid ?? ""])).toEqual(bytes(original[s]?.key));
    });
  });

  it("keys under a KEK version the ring lacks stall the rotation (one failure record, no alarm) until it is put back", async () => {
    await runInDurableObject(env.KEY_VAULT.getByName("stalls"), async (_v: KeyVault, state) => {
      const [A, B] = [`v1:${b64()}`, `v2:${b64()}`];
      await getOrCreateDataKeys(hostOf(state, A).vault, subjects("stall", 5));
      // v1 was dropped from EVENTLINE_KEKS before the rotation was done.
      const early = hostOf(state, B);
      expect(await checkRotation(early.host)).toMatchObject({ state: "stalled", remaining: 5, error: expect.stringContaining("v1") });
      expect(await runRotation(early.host)).toMatchObject({ state: "stalled", rewrapped: 0 });
      expect(await checkRotation(early.host)).toMatchObject({ state: "stalled" });
      expect(early.alarms).toEqual([]);
      expect(early.audits).toEqual([
        { outcome: "failure", reason: expect.stringContaining("KEK version v1"), details: expect.any(Object) },
      ]);
      expect(vaultStatus(state.storage.sql).byKekVersion).toEqual({ v1: 5 });

      // v1 back (after v2): the rotation resumes and completes.
      const fixed = hostOf(state, `${B},${A}`);
      expect(await checkRotation(fixed.host)).toMatchObject({ state: "rewrapping", error: null });
      expect(fixed.alarms).toHaveLength(1);
      expect(await runRotation(fixed.host)).toMatchObject({ state: "complete", rewrapped: 5, remaining: 0 });
      expect(fixed.audits).toEqual([{ outcome: "success", details: expect.objectContaining({ rewrapped: 5, current: "v2" }) }]);
    });
  });

  it("a key that does not unwrap does not hold up the others: they are rewrapped, then the rotation stalls (audited once) until it is erased", async () => {
    await runInDurableObject(env.KEY_VAULT.getByName("poisoned"), async (_v: KeyVault, state) => {
      const A = `v1:${b64()}`;
      const all = subjects("poisoned", 12);
      const original = await getOrCreateDataKeys(hostOf(state, A).vault, all);
      // The oldest key's wrapped bytes altered (or stored under a subject it was not wrapped for).
      state.storage.sql.exec(
        "UPDATE data_keys SET wrapped = ? WHERE kid = ?",
        crypto.getRandomValues(new Uint8Array(60)),
        original["poisoned-0"]?.kid,
      );
      const { host, alarms, audits } = hostOf(state, `v2:${b64()},${A}`);
      expect(await runRotation(host)).toMatchObject({ state: "rewrapping", rewrapped: 11, remaining: 1 });
      const stalled = await runRotation(host);
      expect(stalled).toMatchObject({ state: "stalled", rewrapped: 11, remaining: 1, error: expect.stringContaining("do not unwrap") });
      expect(audits).toEqual([{ outcome: "failure", reason: stalled.error, details: expect.objectContaining({ remaining: 1 }) }]);
      // The cron's checks retry it, without a record per retry.
      expect(await checkRotation(host)).toMatchObject({ state: "stalled" });
      expect(await runRotation(host)).toMatchObject({ state: "stalled" });
      expect(audits).toHaveLength(1);
      expect(alarms).toEqual([ROTATION_PAUSE_MS, ROTATION_PAUSE_MS]);
      // Erasing its subject ends it: the rotation completes.
      shredSubject({ storage: state.storage, cache: new KeyCache() }, "poisoned-0");
      expect(await checkRotation(host)).toMatchObject({ state: "complete", remaining: 0, rewrapped: 11 });
      expect(audits.map((a) => a.outcome)).toEqual(["failure", "success"]);
    });
  });

  it("a manual rewrap step counts in the rotation and completes it when nothing remains", async () => {
    await runInDurableObject(env.KEY_VAULT.getByName("manual"), async (_v: KeyVault, state) => {
      const A = `v1:${b64()}`;
      await getOrCreateDataKeys(hostOf(state, A).vault, subjects("manual", 7));
      const { host, audits } = hostOf(state, `v2:${b64()},${A}`);
      expect(await rewrapNow(host, 4)).toEqual({ rewrapped: 4, remaining: 3 });
      expect(await checkRotation(host)).toMatchObject({ state: "rewrapping", rewrapped: 4, remaining: 3, runs: 0 });
      expect(await rewrapNow(host, 4)).toEqual({ rewrapped: 3, remaining: 0 });
      expect(await checkRotation(host)).toMatchObject({ state: "complete", rewrapped: 7 });
      expect(audits).toEqual([{ outcome: "success", details: expect.objectContaining({ rewrapped: 7, runs: 0 }) }]);
    });
  });
});
