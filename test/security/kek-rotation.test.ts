import { createScheduledController, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ROTATION_CHUNK } from "../../durable-objects/key-rotation";
import type { KeyVault } from "../../durable-objects/key-vault";
import { KEY_VAULT_SHARDS, vaultShardName, vaultShardOf } from "../../shared/security/keyring";
import worker from "../../workers/platform/index";
import { event, expectAccepted, request, STRUCTURED } from "../helpers";
import { asKey, auditSearch, createTestKey } from "./helpers";

/**
 * KEK rotation runs by itself (durable-objects/key-rotation.ts, ADR 0030): after a new KEK version
 * is deployed first in EVENTLINE_KEKS, the cron trigger and the KeyVault alarms rewrap every data
 * key in bounded chunks, resumably, while every read still decrypts; GET /v1/encryption,
 * `/v1/metrics` and the audit log (actor `system:kek-rotation`) show it; the manual rewrap still
 * works. This file changes EVENTLINE_KEKS as a deploy would (each test file has its own workerd).
 */

const TOPIC = "customers";
const V1 = env.EVENTLINE_KEKS;
const newKek = (version: string) => `${version}:${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}`;
const V2 = newKek("v2");
const CRON = "*/10 * * * *";

/** Sets EVENTLINE_KEKS as a deploy would: every object reads the new value on its next call. */
function deployKeks(text: string): void {
  (env as { EVENTLINE_KEKS: string }).EVENTLINE_KEKS = text;
}

interface Status {
  kek: { current: string; versions: string[] };
  dataKeys: { keys: number; shredded: number; byKekVersion: Record<string, number> };
  rotationComplete: boolean;
  rotation: {
    state: "rewrapping" | "complete" | "stalled";
    remaining: number;
    rewrapped: number;
    progress: number;
    removable: string[];
    shards: Record<string, number>;
    startedAt: string | null;
    completedAt: string | null;
    errors: { shard: string; error: string }[];
  };
}

async function status(): Promise<Status> {
  const res = await request("/v1/encryption");
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as Status;
}

async function metrics(): Promise<{ json: { encryption?: Status }; text: string }> {
  const json = (await (await request("/v1/metrics")).json()) as { encryption?: Status };
  const text = await (await request("/v1/metrics", { headers: { accept: "text/plain" } })).text();
  return { json, text };
}

const shardStubs = () => Array.from({ length: KEY_VAULT_SHARDS }, (_, n) => env.KEY_VAULT.getByName(vaultShardName(n)));

/** The cron trigger, as Cloudflare runs it (wrangler.toml `[triggers] crons`). */
async function runCron(): Promise<void> {
  await worker.scheduled(createScheduledController({ cron: CRON, scheduledTime: Date.now() }), env);
}

/** One alarm run on every shard that has one due (they also fire by themselves, a second apart). */
async function alarmRound(): Promise<void> {
  for (const stub of shardStubs()) await runDurableObjectAlarm(stub);
}

function subjectsIn(shard: number, prefix: string, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) if (vaultShardOf(`${prefix}-${i}`) === shard) out.push(`${prefix}-${i}`);
  return out;
}

describe("automatic KEK rotation (v2 deployed first in EVENTLINE_KEKS)", () => {
  it("the cron and the vault alarms rewrap every data key in bounded chunks and resume after a restart; reads decrypt throughout; status and metrics show progress, then that v1 can go; the system actor audits each shard once", async () => {
    const decrypter = await createTestKey("rotation-decrypter", [`consume:${TOPIC}`, `decrypt:${TOPIC}`]);
    // Real events in several shards, and in shard 7 enough keys for several runs.
    const BIG = 7;
    const people = [...subjectsIn(BIG, "rot-big", 2), ...Array.from({ length: 6 }, (_, i) => `rot-customer-${i}`)];
    for (const subject of people) {
      await expectAccepted(
        await request(`/v1/topics/${TOPIC}/events`, {
          method: "POST",
          headers: { "content-type": STRUCTURED },
          body: JSON.stringify(
            event({ source: "/crm", type: "customer.updated", subject, data: { email: `${subject}@example.com`, plan: "gold" } }),
          ),
        }),
      );
    }
    await env.KEY_VAULT.getByName(vaultShardName(BIG)).dataKeys(subjectsIn(BIG, "rot-extra", 4 * ROTATION_CHUNK + 50));
    const expectReadable = async () => {
      for (const subject of people) {
        const res = await asKey(decrypter, `/v1/topics/${TOPIC}/streams/${subject}/events`);
        const text = await res.text();
        expect(res.status, text).toBe(200);
        const body = JSON.parse(text) as { events: { data: Record<string, unknown> }[] } | { data: Record<string, unknown> }[];
        const events = Array.isArray(body) ? body : body.events;
        expect(events.map((e) => e.data)).toEqual([{ email: `${subject}@example.com`, plan: "gold" }]);
      }
    };
    await expectReadable();
    const before = await status();
    expect(before).toMatchObject({
      kek: { current: "v1", versions: ["v1"] },
      rotationComplete: true,
      rotation: { state: "complete", removable: [] },
    });
    const total = before.dataKeys.keys;
    expect(before.dataKeys.byKekVersion).toEqual({ v1: total });
    const shardsWithKeys = (await Promise.all(shardStubs().map((s) => s.status()))).filter((s) => s.keys > 0).length;

    deployKeks(`${V2},${V1}`);
    await runCron();
    // Every shard holding v1 keys had its alarm armed by the cron's poke (or has run it already).
    const started = await Promise.all(
      shardStubs().map((s) =>
        runInDurableObject(s, async (_v: KeyVault, st) => {
          const runs = st.storage.sql.exec<{ runs: number }>("SELECT runs FROM kek_rotation WHERE target = 'v2'").toArray()[0]?.runs ?? 0;
          return (await st.storage.getAlarm()) !== null || runs > 0;
        }),
      ),
    );
    expect(started.filter(Boolean)).toHaveLength(shardsWithKeys);

    await alarmRound();
    // Mid-way: the big shard needs five runs (its own alarms fire a second apart; this takes less).
    const mid = await status();
    expect(mid.kek).toEqual({ current: "v2", versions: ["v2", "v1"] });
    expect(mid.rotation.state).toBe("rewrapping");
    expect(mid.rotationComplete).toBe(false);
    expect(mid.rotation.remaining).toBeGreaterThan(0);
    expect(mid.rotation.rewrapped + mid.rotation.remaining).toBe(total);
    expect(mid.rotation.progress).toBeGreaterThan(0);
    expect(mid.rotation.progress).toBeLessThan(1);
    expect(mid.rotation.removable).toEqual([]);
    expect(mid.dataKeys.byKekVersion.v1).toBe(mid.rotation.remaining);
    const midMetrics = await metrics();
    expect(midMetrics.json.encryption?.rotation.remaining).toBeGreaterThan(0);
    expect(midMetrics.text).toMatch(/^eventline_kek_rotation_remaining_keys [1-9]\d*$/m);
    expect(midMetrics.text).toMatch(/^eventline_data_keys\{kek_version="v1"\} [1-9]\d*$/m);
    await expectReadable();

    // A restart mid-way (eviction, deploy): the big shard goes on from where it was.
    await evictDurableObject(env.KEY_VAULT.getByName(vaultShardName(BIG)));
    const resumed = await status();
    expect(resumed.rotation.rewrapped).toBeGreaterThanOrEqual(mid.rotation.rewrapped);
    expect(resumed.rotation.rewrapped + resumed.rotation.remaining).toBe(total);
    for (let i = 0; i < 20 && (await status()).rotation.state !== "complete"; i++) {
      await alarmRound();
      await expectReadable();
    }

    const done = await status();
    expect(done).toMatchObject({
      kek: { current: "v2", versions: ["v2", "v1"] },
      rotationComplete: true,
      dataKeys: { keys: total, byKekVersion: { v2: total } },
      rotation: { state: "complete", remaining: 0, rewrapped: total, progress: 1, removable: ["v1"], errors: [] },
    });
    expect(done.rotation.completedAt).toEqual(expect.any(String));
    const doneMetrics = await metrics();
    expect(doneMetrics.json.encryption?.rotation).toMatchObject({ state: "complete", remaining: 0, removable: ["v1"] });
    expect(doneMetrics.text).toMatch(/^eventline_kek_rotation_remaining_keys 0$/m);
    expect(doneMetrics.text).not.toMatch(/kek_version="v1"/);

    // The operator removes v1: every read still decrypts.
    deployKeks(V2);
    await expectReadable();
    expect((await status()).rotation).toMatchObject({ state: "complete", removable: [] });

    // One success record per shard that had keys (not per run, not per key), by the system actor, with counts.
    const records = (await auditSearch({ action: "keys.rewrap", actor: "system:kek-rotation", outcome: "success" })).filter(
      (r) => r.details?.current === "v2",
    );
    expect(records).toHaveLength(shardsWithKeys);
    expect(new Set(records.map((r) => r.details?.shard)).size).toBe(shardsWithKeys);
    expect(records.reduce((n, r) => n + Number(r.details?.rewrapped), 0)).toBe(total);
    for (const r of records) {
      expect(r).toMatchObject({
        resource: "kek",
        actor: { id: "system:kek-rotation", kind: "system" },
        details: { automatic: true, remaining: 0 },
      });
    }
    const big = records.find((r) => r.details?.shard === vaultShardName(BIG));
    expect(Number(big?.details?.runs)).toBe(5);
  });

  it("the manual rewrap still works, and the encryption metrics are for global admins only", async () => {
    const current = env.EVENTLINE_KEKS;
    const currentVersion = current.slice(0, current.indexOf(":"));
    const subject = "rot-manual";
    await expectAccepted(
      await request(`/v1/topics/${TOPIC}/events`, {
        method: "POST",
        headers: { "content-type": STRUCTURED },
        body: JSON.stringify(event({ source: "/crm", type: "customer.updated", subject, data: { email: "m@example.com" } })),
      }),
    );
    deployKeks(`${newKek("v3")},${current}`);
    // As `eventline encryption rewrap` does: steps until nothing remains, each making progress.
    const total = (await status()).dataKeys.keys;
    let rewrapped = 0;
    for (let step = 0; step < 5; step++) {
      const res = await request("/v1/encryption/rewrap", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"limit": 10000}',
      });
      const body = (await res.json()) as { rewrapped: number; remaining: number; current: string };
      expect(res.status).toBe(200);
      expect(body.current).toBe("v3");
      expect(body.rewrapped).toBeGreaterThan(0);
      rewrapped += body.rewrapped;
      if (body.remaining === 0) break;
    }
    // The alarms may have done part of it meanwhile: the rotation counts both.
    expect(rewrapped).toBeGreaterThan(0);
    expect(rewrapped).toBeLessThanOrEqual(total);
    expect((await status()).rotation).toMatchObject({ state: "complete", remaining: 0, rewrapped: total, removable: [currentVersion] });

    const operator = await createTestKey("rotation-operator", [`consume:${TOPIC}`]);
    const res = await asKey(operator, "/v1/metrics");
    expect(res.status).toBe(200);
    expect(Object.keys((await res.json()) as object)).not.toContain("encryption");
    const prom = await (await asKey(operator, "/v1/metrics", { headers: { accept: "text/plain" } })).text();
    expect(prom).not.toContain("eventline_data_keys");
  });
});
