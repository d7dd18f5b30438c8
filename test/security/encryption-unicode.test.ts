import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { vaultShardName, vaultShardOf } from "../../shared/security/keyring";
import { type Ack, event, expectAccepted, expectProblem, type Problem, request, STRUCTURED } from "../helpers";
import { plantUnwrappableKeys } from "../key-vault-helpers";
import {
  as,
  asAdmin,
  canaryOf,
  customer,
  encryptionSetup,
  expectPlaintextFields,
  post,
  readPage,
  readStream,
  storedText,
  subjectOf,
  TOPIC,
} from "./encryption-fixtures";
import { auditOf, type CreatedTestKey, createTestKey, dataHeads } from "./helpers";

/**
 * Field encryption of the `customers` topic (sensitive /name /email /phone /address): a unique
 * canary in those fields must never be found at rest (partition logs, R2 archive), in transit
 * (queue messages, webhook bodies) or in logs; only a `decrypt` grant reads it back; ciphertext
 * moved elsewhere does not decrypt; shredding a subject's key makes its fields unreadable
 * everywhere while the logs themselves stay as they were.
 *
 * This file: well-formed Unicode in what becomes a key (lone surrogates refused at ingest).
 */

let decrypter: CreatedTestKey;

beforeAll(async () => {
  ({ decrypter } = await encryptionSetup());
});

describe("well-formed Unicode in what becomes a key", () => {
  /** `text` with a lone low surrogate: JSON.stringify sends it as the escape `\udfff`. */
  const lone = (text: string) => `${text}\udfff`;

  it("a producer's lone surrogate in subject, id, type, partitionkey or an extension is a 400 in every ingest mode and stream appends; nothing is stored, no data key made", async () => {
    const producer = await createTestKey("customers-producer", [`produce:${TOPIC}`]);
    const send = as(producer);
    const canary = canaryOf();
    const before = await dataHeads();
    const vaultBefore = (await storedText()).vault;
    const problems: Problem[] = [];

    // The finding: structured mode, subject "x\udfff" (it was a 202).
    const body = JSON.stringify(customer(lone("x"), canary));
    expect(body).toContain("\\udfff");
    const structured = await expectProblem(
      await send(`/v1/topics/${TOPIC}/events`, { method: "POST", headers: { "content-type": STRUCTURED }, body }),
      400,
    );
    expect(structured.issues).toEqual([{ path: "/subject", message: expect.stringContaining("well-formed Unicode") }]);
    problems.push(structured);

    for (const [overrides, path] of [
      [{ id: lone("evt") }, "/1/id"],
      [{ type: lone("customer.updated") }, "/1/type"],
      [{ partitionkey: lone("pk") }, "/1/partitionkey"],
      [{ tenantid: lone("t") }, "/1/tenantid"],
    ] as const) {
      const batch = await expectProblem(await post([customer(subjectOf(), canary), customer(subjectOf(), canary, overrides)], send), 400);
      expect(batch.code).toBe("invalid_envelope");
      expect(batch.issues?.map((i) => i.path)).toEqual([path]);
      problems.push(batch);
    }

    // A stream append: the subject comes from the path; the body's id is checked as at ingest.
    const { subject: _s, ...noSubject } = customer(undefined, canary, { id: lone("evt") });
    const streamed = await expectProblem(
      await send(`/v1/topics/${TOPIC}/streams/${subjectOf()}/events`, {
        method: "POST",
        headers: { "content-type": STRUCTURED },
        body: JSON.stringify(noSubject),
      }),
      400,
    );
    expect(streamed.issues?.map((i) => i.path)).toEqual(["/id"]);
    problems.push(streamed);

    // …and a stream name percent-encoded as a lone surrogate is not taken as its raw text.
    const raw = await expectProblem(
      await send(`/v1/topics/${TOPIC}/streams/x%ED%BF%BF/events`, {
        method: "POST",
        headers: { "content-type": STRUCTURED },
        body: JSON.stringify(noSubject),
      }),
      400,
    );
    expect(raw.code).toBe("invalid_parameter");
    problems.push(raw);

    expect(await dataHeads()).toEqual(before);
    const after = await storedText();
    expect(after.vault).toBe(vaultBefore);
    expect(after.partitions).not.toContain(canary);
    // Ingest refusals are not audit records (only authentication, authorization and admin actions are).
    for (const problem of problems) expect(await auditOf(problem.requestId)).toEqual([]);
  });

  it("DELETE /v1/subjects/{subject}/keys with a lone surrogate percent-encoded is a 400, not a 200 that erased nothing", async () => {
    const vaultBefore = (await storedText()).vault;
    const res = await request("/v1/subjects/x%ED%BF%BF/keys", { method: "DELETE" });
    const problem = await expectProblem(res, 400);
    expect(problem.code).toBe("invalid_parameter");
    expect(problem.detail).toContain("not UTF-8");
    expect((await storedText()).vault).toBe(vaultBefore);
    expect(await auditOf(problem.requestId, "subjects.shred")).toEqual([]);
    // The well-formed spelling is an ordinary (audited) erasure of a subject that has no key.
    const replacement = await request("/v1/subjects/x%EF%BF%BD/keys", { method: "DELETE" });
    const text = await replacement.text();
    expect(replacement.status, text).toBe(200);
    expect(JSON.parse(text)).toMatchObject({ subject: "x\ufffd", destroyed: 0 });
  });

  it("a data key that does not unwrap (KEK version gone, wrapped bytes altered) leaves its fields as envelopes counted in Eventline-Undecryptable; the read is a 200 and other fields decrypt", async () => {
    const subject = subjectOf();
    const shardNo = vaultShardOf(subject);
    const shard = env.KEY_VAULT.getByName(vaultShardName(shardNo));
    const hex = (n: number) => [...crypto.getRandomValues(new Uint8Array(n))].map((b) => b.toString(16).padStart(2, "0")).join("");
    const [gone, altered] = [`${shardNo}.${hex(16)}`, `${shardNo}.${hex(16)}`];
    const b64url = (n: number) =>
      btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(n))))
        .replaceAll("+", "-")
        .replaceAll("/", "_")
        .replace(/=+$/, "");
    const envelope = (kid: string) => ({ $eventline: "enc.v1", kid, iv: b64url(12), ct: b64url(40) });
    const plantedData = { a: envelope(gone), b: envelope(altered), plan: "gold" };
    // Keys as the vault holds them after a KEK version was removed too early, or after their bytes
    // (or the subject they were wrapped for) changed: neither unwraps, whatever the cache holds.
    await plantUnwrappableKeys(shard, subject, { gone, altered });
    try {
      const canary = canaryOf();
      const acks = await expectAccepted(
        await post([customer(subject, canary), event({ source: "/crm", type: "customer.note", subject, data: plantedData })]),
      );
      const [first, planted] = acks as [Ack, Ack];
      expect(planted.partition).toBe(first.partition);

      for (const send of [asAdmin, as(decrypter)]) {
        const page = await readPage(send, `/v1/topics/${TOPIC}/partitions/${first.partition}/events?from=${first.sequence}&limit=2`);
        expect(page.events.map((e) => e.id)).toEqual([first.id, planted.id]);
        expectPlaintextFields(page.events[0]?.data ?? {}, canary);
        expect(page.events[1]?.data).toEqual(plantedData);
        expect(page.undecryptable).toBe("2");
        const stream = await readStream(send, subject);
        expect(stream.events.map((e) => e.id)).toEqual([first.id, planted.id]);
        expectPlaintextFields(stream.events[0]?.data ?? {}, canary);
        expect(stream.events[1]?.data).toEqual(plantedData);
        expect(stream.undecryptable).toBe("2");
      }
    } finally {
      await runInDurableObject(shard, (_vault: unknown, state: DurableObjectState) => {
        state.storage.sql.exec("DELETE FROM data_keys WHERE kid IN (?, ?)", gone, altered);
      });
    }
  });
  it("encrypting for a subject whose active key does not unwrap is a 503 that says why (no new key behind the operator's back), and stores nothing", async () => {
    const base = subjectOf();
    const hex = (n: number) => [...crypto.getRandomValues(new Uint8Array(n))].map((b) => b.toString(16).padStart(2, "0")).join("");
    // Each planted subject's key must live in that subject's own shard.
    const planted: { subject: string; shard: DurableObjectStub; kid: string }[] = [];
    for (const version of ["v0", "v1"]) {
      const subject = `${base}-${version}`;
      const shardNo = vaultShardOf(subject);
      const shard = env.KEY_VAULT.getByName(vaultShardName(shardNo));
      const kids = { gone: `${shardNo}.${hex(16)}`, altered: `${shardNo}.${hex(16)}` };
      await plantUnwrappableKeys(shard, base, kids);
      planted.push({ subject, shard, kid: version === "v0" ? kids.gone : kids.altered });
    }
    try {
      const heads = await dataHeads();
      for (const { subject } of planted) {
        const refused = await expectProblem(await post([customer(subject, canaryOf())]), 503);
        expect(refused.code).toBe("unavailable");
        expect(refused.detail).toMatch(/^encryption keys unavailable: /);
      }
      expect(await dataHeads()).toEqual(heads);
    } finally {
      for (const { shard } of planted) {
        await runInDurableObject(shard, (_vault: unknown, state: DurableObjectState) => {
          state.storage.sql.exec("DELETE FROM data_keys WHERE subject LIKE ?", `${base}-%`);
        });
      }
    }
  });
});
