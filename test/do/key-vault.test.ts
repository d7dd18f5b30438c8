import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
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
import { EventlineError } from "../../shared/errors";
import {
  createFieldProtector,
  decryptData,
  encryptData,
  type FieldProtectorEnv,
  fieldDecryption,
  isEncryptedValue,
} from "../../shared/security/fields";
import { parseKeyring, vaultShardOf } from "../../shared/security/keyring";
import { plantUnwrappableKeys } from "../key-vault-helpers";

const shard3 = () => env.KEY_VAULT.get(env.KEY_VAULT.idFromName("shard-3"));

/** `count` subjects starting with `prefix` that live in `shard`. */
function subjectsOf(shard: number, prefix: string, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) if (vaultShardOf(`${prefix}-${i}`) === shard) out.push(`${prefix}-${i}`);
  return out;
}

function bytes(buffer: ArrayBuffer | null | undefined): number[] {
  if (buffer === null || buffer === undefined) throw new Error("no key");
  return [...new Uint8Array(buffer)];
}

function latin1(value: ArrayBuffer | Uint8Array): string {
  return String.fromCharCode(...new Uint8Array(value));
}

async function rejection(run: () => Promise<unknown>): Promise<Error> {
  try {
    await run();
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}

/** Every row of every table of the object's SQLite database. */
function dumpTables(sql: SqlStorage): { table: string; rows: Record<string, SqlStorageValue>[] }[] {
  const tables = sql
    .exec<{ name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'sqlite_%'`)
    .toArray();
  return tables.map(({ name }) => ({ table: name, rows: sql.exec(`SELECT * FROM "${name}"`).toArray() }));
}

const CTX = { topic: "customers", source: "/crm", id: "evt-1" };

describe("KeyVault", () => {
  it("returns the same key for a subject on repeated and concurrent calls, different keys for different subjects", async () => {
    const stub = shard3();
    const [alice, bob] = subjectsOf(3, "get-or-create", 2) as [string, string];
    const concurrent = await Promise.all(Array.from({ length: 8 }, () => stub.dataKeys([alice])));
    const first = concurrent[0]?.[alice];
    expect(first?.kid).toMatch(/^3\.[0-9a-f]{32}$/);
    expect(bytes(first?.key)).toHaveLength(32);
    for (const result of concurrent) {
      expect(result[alice]?.kid).toBe(first?.kid);
      expect(bytes(result[alice]?.key)).toEqual(bytes(first?.key));
    }
    const both = await stub.dataKeys([alice, bob, alice]);
    expect(Object.keys(both).sort()).toEqual([alice, bob].sort());
    expect(both[alice]?.kid).toBe(first?.kid);
    expect(both[bob]?.kid).not.toBe(first?.kid);
    expect(bytes(both[bob]?.key)).not.toEqual(bytes(first?.key));

    const byId = await stub.keysById([first?.kid ?? "", "3.00000000000000000000000000000000", "not-a-kid"]);
    expect(bytes(byId[first?.kid ?? ""])).toEqual(bytes(first?.key));
    expect(byId["3.00000000000000000000000000000000"]).toBeNull();
    expect(byId["not-a-kid"]).toBeNull();

    const status = await stub.status();
    expect(status.keys).toBeGreaterThanOrEqual(2);
    expect(Object.keys(status.byKekVersion)).toEqual(["v1"]);
  });

  it("names the subject's shard in the key id and rejects malformed input", async () => {
    const stub = env.KEY_VAULT.getByName("shard-9");
    const [subject] = subjectsOf(9, "kid-prefix", 1) as [string];
    expect((await stub.dataKeys([subject]))[subject]?.kid.startsWith("9.")).toBe(true);
    // Input is checked before storage is touched (called here directly: a DO method that throws logs an uncaught exception).
    const none = {} as Vault;
    expect((await rejection(() => getOrCreateDataKeys(none, [""]))).message).toMatch(
      /subjects must be an array of non-empty, well-formed strings/,
    );
    // A lone surrogate would be stored as bytes that read back as another subject (its key would never unwrap or shred).
    expect((await rejection(() => getOrCreateDataKeys(none, ["x\udfff"]))).message).toMatch(/well-formed/);
    expect(() => shredSubject(none, "x\udfff")).toThrow(/well-formed/);
    expect((await rejection(() => findDataKeys(none, [1 as unknown as string]))).message).toMatch(/kids must be an array/);
    expect((await rejection(() => rewrapDataKeys(none, 0))).message).toMatch(/limit must be an integer/);
  });

  it("stores only wrapped keys: no plaintext canary or raw key bytes anywhere in its SQLite", async () => {
    const stub = shard3();
    const [subject] = subjectsOf(3, "canary", 1) as [string];
    const canary = "CANARY-4111-1111-1111-1111";
    const dataKey = (await stub.dataKeys([subject]))[subject];
    if (dataKey === undefined) throw new Error("no data key");
    const encrypted = await encryptData({ card: canary }, ["/card"], CTX, dataKey);
    expect(JSON.stringify(encrypted)).not.toContain(canary);
    // The round trip through the vault works...
    const { data } = await decryptData(encrypted, CTX, async (kid) => (await stub.keysById([kid]))[kid] ?? null);
    expect(data).toEqual({ card: canary });

    // ...and nothing of it is in the object's storage.
    const raw = latin1(dataKey.key);
    const tables = await runInDurableObject(stub, (_instance: KeyVault, state) => dumpTables(state.storage.sql));
    expect(tables.map((t) => t.table)).toContain("data_keys");
    for (const { rows } of tables) {
      for (const row of rows) {
        for (const value of Object.values(row)) {
          const text = value instanceof ArrayBuffer ? latin1(value) : String(value);
          expect(text).not.toContain(canary);
          expect(text).not.toContain(raw);
        }
      }
    }
    const row = tables.find((t) => t.table === "data_keys")?.rows.find((r) => r.kid === dataKey.kid);
    expect(row).toMatchObject({ subject, kek_version: "v1", shredded_at: null });
    const wrapped = row?.wrapped;
    if (!(wrapped instanceof ArrayBuffer)) throw new Error("wrapped key is not a BLOB");
    expect(wrapped.byteLength).toBe(12 + 32 + 16);
    expect(bytes(wrapped)).not.toEqual(bytes(dataKey.key));
  });

  it("shreds a subject: its keys are gone for good, its next event gets a new key, other subjects keep theirs", async () => {
    const stub = shard3();
    const [victim, bystander] = subjectsOf(3, "shred", 2) as [string, string];
    const before = await stub.dataKeys([victim, bystander]);
    const victimKey = before[victim];
    const bystanderKey = before[bystander];
    if (victimKey === undefined || bystanderKey === undefined) throw new Error("no data keys");
    const oldEvent = await encryptData({ email: "victim@example.com" }, ["/email"], CTX, victimKey);
    const otherEvent = await encryptData({ email: "other@example.com" }, ["/email"], CTX, bystanderKey);
    const lookup = async (kid: string) => (await stub.keysById([kid]))[kid] ?? null;
    const statusBefore = await stub.status();

    expect(await stub.shred(victim)).toEqual({ destroyed: 1 });
    expect(await stub.shred(victim)).toEqual({ destroyed: 0 });

    expect(await stub.keysById([victimKey.kid])).toEqual({ [victimKey.kid]: null });
    const gone = await decryptData(oldEvent, CTX, lookup);
    expect(gone.undecryptable).toEqual(["/email"]);
    expect(JSON.stringify(gone.data)).not.toContain("victim@example.com");

    const after = await stub.dataKeys([victim, bystander]);
    expect(after[victim]?.kid).not.toBe(victimKey.kid);
    expect(bytes(after[victim]?.key)).not.toEqual(bytes(victimKey.key));
    expect(after[bystander]?.kid).toBe(bystanderKey.kid);
    expect((await decryptData(otherEvent, CTX, lookup)).data).toEqual({ email: "other@example.com" });
    // The old ciphertext stays unreadable after the subject got its new key.
    expect((await decryptData(oldEvent, CTX, lookup)).undecryptable).toEqual(["/email"]);

    const status = await stub.status();
    expect(status.shredded).toBe(statusBefore.shredded + 1);
    expect(status.keys).toBe(statusBefore.keys);
    const row = await runInDurableObject(stub, (_instance: KeyVault, state) =>
      state.storage.sql.exec(`SELECT wrapped, shredded_at FROM data_keys WHERE kid = ?`, victimKey.kid).one(),
    );
    expect(row.wrapped).toBeNull();
    expect(row.shredded_at).toEqual(expect.any(Number));
  });

  it("stays consistent when calls interleave at their awaits (concurrent creates, shreds mid-call)", async () => {
    const stub = env.KEY_VAULT.getByName("interleave-test");
    await runInDurableObject(stub, async (_instance: KeyVault, state) => {
      const vault: Vault = { storage: state.storage, keyring: parseKeyring(env.EVENTLINE_KEKS), cache: new KeyCache() };
      // Concurrent creates of one subject's key: one key wins, every caller gets it.
      const created = await Promise.all(Array.from({ length: 6 }, () => getOrCreateDataKeys(vault, ["race"])));
      expect(new Set(created.map((c) => c.race?.kid)).size).toBe(1);
      const kid = created[0]?.race?.kid ?? "";

      // A shred while a read unwraps: the read reports the key as gone and does not cache it.
      const reading = findDataKeys({ ...vault, cache: new KeyCache() }, [kid]);
      shredSubject(vault, "race");
      expect(await reading).toEqual({ [kid]: null });

      // A shred while get-or-create unwraps the current key: the caller gets a new key, never the shredded one.
      const renewed = (await getOrCreateDataKeys(vault, ["race"])).race?.kid ?? "";
      const getting = getOrCreateDataKeys({ ...vault, cache: new KeyCache() }, ["race"]);
      shredSubject(vault, "race");
      const got = (await getting).race?.kid;
      expect(got).not.toBe(renewed);
      expect(got).not.toBe(kid);
      expect(await findDataKeys(vault, [kid, renewed])).toEqual({ [kid]: null, [renewed]: null });
      expect(vaultStatus(state.storage.sql)).toEqual({ keys: 1, shredded: 2, byKekVersion: { v1: 1 } });
    });
  });

  it("rotates KEKs: old keys unwrap, new keys use the new KEK, rewrap moves everything without changing key bytes", async () => {
    const b64 = () => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
    const [A, B] = [b64(), b64()];
    // A shard of its own: its keys are wrapped under these test KEKs, not the Worker's.
    const stub = env.KEY_VAULT.getByName("rotation-test");
    await runInDurableObject(stub, async (_instance: KeyVault, state) => {
      // A fresh cache per ring, so every read really unwraps under that ring.
      const vaultOf = (text: string): Vault => ({ storage: state.storage, keyring: parseKeyring(text), cache: new KeyCache() });
      const subjects = ["s0", "s1", "s2", "s3", "s4", "shredded"];
      const v1 = vaultOf(`v1:${A}`);
      const original = await getOrCreateDataKeys(v1, subjects);
      const kids = subjects.map((s) => original[s]?.kid ?? "");
      const rawOf = (kid: string) => bytes(Object.values(original).find((k) => k.kid === kid)?.key);
      const s0 = original.s0;
      if (s0 === undefined) throw new Error("no key");
      const event = await encryptData({ email: "s0@example.com" }, ["/email"], CTX, s0);
      expect(vaultStatus(state.storage.sql).byKekVersion).toEqual({ v1: 6 });

      // The ring gains v2: existing keys still unwrap, new keys are wrapped under v2.
      const rotating = vaultOf(`v2:${B},v1:${A}`);
      const found = await findDataKeys(rotating, kids);
      for (const kid of kids) expect(bytes(found[kid])).toEqual(rawOf(kid));
      const fresh = await getOrCreateDataKeys(rotating, ["s5", "s0"]);
      expect(fresh.s0?.kid).toBe(s0.kid);
      expect(vaultStatus(state.storage.sql).byKekVersion).toEqual({ v1: 6, v2: 1 });
      shredSubject(rotating, "shredded");

      // v2 alone cannot read what v1 wrapped yet: the key reads as unavailable (its fields stay
      // undecryptable, the read goes on), and the log says why.
      const early = vaultOf(`v2:${B}`);
      const logged = vi.spyOn(console, "log");
      try {
        expect(await findDataKeys(early, [s0.kid])).toEqual({ [s0.kid]: null });
        const lines = logged.mock.calls.map((args) => String(args[0]));
        expect(lines.filter((l) => l.includes(s0.kid))).toEqual([expect.stringMatching(/KEK version \\"v1\\" is not in EVENTLINE_KEKS/)]);
      } finally {
        logged.mockRestore();
      }
      expect((await rejection(() => rewrapDataKeys(early, 2))).message).toMatch(
        /cannot rewrap: keys are wrapped under KEK version\(s\) v1/,
      );

      // Rewrap in small steps, reporting progress; the shredded key is not brought back.
      expect(await rewrapDataKeys(rotating, 2)).toEqual({ rewrapped: 2, remaining: 3 });
      expect(await rewrapDataKeys(rotating, 2)).toEqual({ rewrapped: 2, remaining: 1 });
      expect(await rewrapDataKeys(rotating, 2)).toEqual({ rewrapped: 1, remaining: 0 });
      expect(await rewrapDataKeys(rotating, 2)).toEqual({ rewrapped: 0, remaining: 0 });
      expect(vaultStatus(state.storage.sql)).toEqual({ keys: 6, shredded: 1, byKekVersion: { v2: 6 } });

      // v1 can go: everything unwraps under v2 alone, with the same bytes, and old events decrypt.
      const after = vaultOf(`v2:${B}`);
      const unwrapped = await findDataKeys(after, kids);
      for (const kid of kids.slice(0, 5)) expect(bytes(unwrapped[kid])).toEqual(rawOf(kid));
      expect(unwrapped[original.shredded?.kid ?? ""]).toBeNull();
      const lookup = async (kid: string) => (await findDataKeys(after, [kid]))[kid] ?? null;
      expect(await decryptData(event, CTX, lookup)).toEqual({ data: { email: "s0@example.com" }, undecryptable: [] });
      expect((await getOrCreateDataKeys(after, ["s0"])).s0?.kid).toBe(s0.kid);
    });
  });
});

describe("createFieldProtector", () => {
  /** The real namespace, counting the KeyVault shards addressed (each call addresses one). */
  function countingEnv(): { env: FieldProtectorEnv; shards: string[] } {
    const shards: string[] = [];
    const namespace = {
      getByName(name: string) {
        shards.push(name);
        return env.KEY_VAULT.getByName(name);
      },
    } as unknown as FieldProtectorEnv["KEY_VAULT"];
    return { env: { KEY_VAULT: namespace }, shards };
  }

  const topic = { name: "customers", sensitive: { "*": ["/email"], "card.added": ["/cards/*/number"] } };

  // Card numbers with spaces: no hex key id or base64url ciphertext can contain them by chance
  // (a bare "4111" once turned up inside a random key id and failed the check below).
  const CARD_A = "4111 1111 1111 1111";
  const CARD_B = "5500 0000 0000 0004";
  it("encrypts sensitive fields with one vault call per shard, reveals them, and forgets them after a shred", async () => {
    const [a1, a2] = subjectsOf(5, "protect-a", 2) as [string, string];
    const [b1] = subjectsOf(11, "protect-b", 1) as [string];
    const events = [
      { id: "1", source: "/crm", type: "customer.created", subject: a1, data: { email: "a1@example.com", name: "A1" } },
      { id: "2", source: "/crm", type: "card.added", subject: a2, data: { cards: [{ number: CARD_A }, { number: CARD_B }] } },
      { id: "3", source: "/crm", type: "customer.created", subject: b1, data: { email: "b1@example.com" } },
      { id: "4", source: "/crm", type: "customer.created", data: { name: "no sensitive fields, no subject needed" } },
      { id: "5", source: "/crm", type: "image", subject: b1, datacontenttype: "image/png", data_base64: "AAAA" },
    ];
    const { env: counted, shards } = countingEnv();
    const protector = createFieldProtector(counted);
    const protectedEvents = await protector.protect(topic, events);
    expect(shards.sort()).toEqual(["shard-11", "shard-5"]);
    expect(protectedEvents[3]).toBe(events[3]);
    expect(protectedEvents[4]).toBe(events[4]);
    expect(events[0]?.data).toEqual({ email: "a1@example.com", name: "A1" });
    const text = JSON.stringify(protectedEvents);
    for (const secret of ["a1@example.com", CARD_A, CARD_B, "b1@example.com"]) expect(text).not.toContain(secret);
    const cards = (protectedEvents[1]?.data ?? { cards: [] }) as { cards: { number: unknown }[] };
    expect(isEncryptedValue(cards.cards[1]?.number)).toBe(true);
    expect(protectedEvents[0]?.data).toMatchObject({ name: "A1" });

    // Retries are byte-identical (same key, synthetic IVs).
    expect(JSON.stringify(await protector.protect(topic, events))).toBe(text);

    shards.length = 0;
    const revealed = await protector.reveal("customers", protectedEvents);
    expect(shards.sort()).toEqual(["shard-11", "shard-5"]);
    expect(revealed.undecryptable).toBe(0);
    expect(revealed.events.map((e) => e.data)).toEqual(events.map((e) => e.data));
    expect(revealed.events[3]).toBe(protectedEvents[3]);

    // Another topic's name in the additional data: nothing decrypts.
    expect((await protector.reveal("orders", protectedEvents)).undecryptable).toBe(4);

    expect(await protector.shred(a2)).toEqual({ destroyed: 1 });
    const afterShred = await protector.reveal("customers", protectedEvents);
    expect(afterShred.undecryptable).toBe(2);
    expect(afterShred.events[1]?.data).toEqual(protectedEvents[1]?.data);
    expect(afterShred.events[0]?.data).toEqual(events[0]?.data);
  });

  it("reveals a key that does not unwrap (KEK version gone, bytes altered) as undecryptable, in reads and in the SDK's fieldDecryption, never as an error", async () => {
    const [subject] = subjectsOf(7, "unwrap-fails", 1) as [string];
    const shard = env.KEY_VAULT.getByName("shard-7");
    const [gone, altered] = ["7.00000000000000000000000000000a01", "7.00000000000000000000000000000a02"];
    await plantUnwrappableKeys(shard, subject, { gone, altered });
    try {
      const protector = createFieldProtector(env);
      const [good] = await protector.protect(topic, [
        { id: "ok", source: "/crm", type: "customer.created", subject, data: { email: "ok@example.com" } },
      ]);
      const envelope = (kid: string) => ({ $eventline: "enc.v1", kid, iv: "AAAAAAAAAAAAAAAA", ct: "AAAAAAAAAAAAAAAAAAAAAA" });
      const planted = { id: "bad", source: "/crm", type: "customer.note", subject, data: { a: envelope(gone), b: envelope(altered) } };
      const revealed = await protector.reveal("customers", [good as Record<string, unknown>, planted]);
      expect(revealed.undecryptable).toBe(2);
      expect(revealed.events.map((e) => e.data)).toEqual([{ email: "ok@example.com" }, planted.data]);

      const decrypt = fieldDecryption((e: typeof env) => e.KEY_VAULT);
      expect(await decrypt(planted, { env, topic: "customers" })).toEqual(planted);
      expect((await decrypt(good as Record<string, unknown>, { env, topic: "customers" })).data).toEqual({ email: "ok@example.com" });
    } finally {
      await runInDurableObject(shard, (_instance: KeyVault, state) => {
        state.storage.sql.exec("DELETE FROM data_keys WHERE kid IN (?, ?)", gone, altered);
      });
    }
  });

  it("requires a subject for events with sensitive fields, and JSON rather than data_base64", async () => {
    const protector = createFieldProtector(env);
    const events = [
      { id: "1", source: "/crm", type: "customer.created", subject: "ok", data: { email: "x@example.com" } },
      { id: "2", source: "/crm", type: "card.added", data: { cards: [{ number: "4111" }] } },
      { id: "3", source: "/crm", type: "customer.created", datacontenttype: "application/json", data_base64: "e30=" },
    ];
    const error = await rejection(() => protector.protect(topic, events));
    expect(error).toBeInstanceOf(EventlineError);
    expect(error).toMatchObject({ code: "schema_violation", status: 422 });
    const issues = (error as EventlineError).options.issues ?? [];
    expect(issues).toEqual([
      {
        path: "/1/subject",
        message: "an event with sensitive fields (/cards/0/number) needs a subject: its data key is per subject",
      },
      { path: "/2/data_base64", message: expect.stringMatching(/cannot be encrypted inside data_base64/) },
    ]);
    expect(JSON.stringify(issues)).not.toContain("4111");

    const single = await rejection(() => protector.protect(topic, [events[1] as (typeof events)[number]], () => ""));
    expect((single as EventlineError).options.issues?.[0]?.path).toBe("/subject");
  });
});
