import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { vaultShardName, vaultShardOf } from "../../shared/security/keyring";
import { type Ack, event, expectAccepted, expectProblem, request, waitFor } from "../helpers";
import {
  archivedLines,
  archiveTopic,
  as,
  asAdmin,
  canaryOf,
  customer,
  deliveriesOf,
  encryptionSetup,
  expectEncryptedFields,
  expectEnvelope,
  expectPlaintextFields,
  HOOK,
  post,
  type ReadEvent,
  readOne,
  readStream,
  storedText,
  subjectOf,
  TOPIC,
} from "./encryption-fixtures";
import { auditSearch, type CreatedTestKey, dataHeads, jsonInit, sinkDeliveries } from "./helpers";

/**
 * Field encryption of the `customers` topic (what these tests show as a whole: encryption-fixtures.ts).
 *
 * This file: crypto-shredding, erasability of every subject that gets a data key, and key
 * administration.
 */

let reader: CreatedTestKey;
let decrypter: CreatedTestKey;

beforeAll(async () => {
  ({ reader, decrypter } = await encryptionSetup());
});

describe("crypto-shredding", () => {
  it("DELETE /v1/subjects/{s}/keys makes the subject's fields unreadable in the log, streams, the archive and replays; the log is unchanged", async () => {
    const [shredded, kept] = [subjectOf(), subjectOf()];
    const [canaryS, canaryK] = [canaryOf(), canaryOf()];
    const acksS = await expectAccepted(await post([customer(shredded, canaryS), customer(shredded, canaryS)]));
    const [ackK] = (await expectAccepted(await post(customer(kept, canaryK)))) as [Ack];
    const oldKid = expectEnvelope((await readOne(as(reader), acksS[0] as Ack)).event.data.email).kid;
    expectPlaintextFields((await readOne(asAdmin, acksS[0] as Ack)).event.data, canaryS);
    // Delivered live to the webhook subscription (envelopes only) and settled, before the shred.
    const live = await deliveriesOf(
      acksS.map((a) => a.id),
      (bodies) => bodies.length >= acksS.length,
    );
    for (const d of live) expect(d.body).not.toContain(canaryS);
    const settled = await waitFor(
      async () => (await (await request(`/v1/subscriptions/${HOOK}`)).json()) as { lag: number },
      (st) => st.lag === 0,
      30_000,
    );
    expect(settled.lag).toBe(0);
    const heads = await dataHeads();

    const res = await request(`/v1/subjects/${shredded}/keys`, { method: "DELETE" });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    const body = JSON.parse(text) as { subject: string; destroyed: number; erasedAt: string };
    expect(body).toMatchObject({ subject: shredded, erasedAt: expect.any(String) });
    expect(body.destroyed).toBeGreaterThanOrEqual(1);
    const audit = (await auditSearch({ action: "subjects.shred", actor: "admin" })).filter((r) => r.resource === `subject:${shredded}`);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ outcome: "success", status: 200, actor: { id: "admin" }, details: { destroyed: body.destroyed } });

    // The log is as it was: same heads, same sequences.
    expect(await dataHeads()).toEqual(heads);
    for (const ack of acksS) {
      const one = await readOne(asAdmin, ack);
      expect(Number(one.event.sequence)).toBe(ack.sequence);
      expectEncryptedFields(one.event.data);
      expect(Number(one.undecryptable)).toBe(4);
      expect(one.text).not.toContain(canaryS);
    }
    const streamS = await readStream(asAdmin, shredded);
    expect(streamS.events.map((e) => e.id)).toEqual(acksS.map((a) => a.id));
    for (const e of streamS.events) expectEncryptedFields(e.data);
    expect(Number(streamS.undecryptable)).toBe(8);
    expect(streamS.text).not.toContain(canaryS);
    // Another subject still decrypts.
    expectPlaintextFields((await readOne(asAdmin, ackK)).event.data, canaryK);
    expectPlaintextFields((await readStream(as(decrypter), kept)).events[0]?.data ?? {}, canaryK);

    // The archived segments hold the envelopes (they always did), and no plaintext.
    const objects = await archiveTopic();
    const lines = archivedLines(objects, [...acksS.map((a) => a.id), ackK.id]);
    expect(lines.size).toBe(3);
    for (const ack of acksS) expectEncryptedFields(lines.get(ack.id)?.data as Record<string, unknown>);
    for (const object of objects) {
      expect(object.text).not.toContain(canaryS);
      expect(object.text).not.toContain(canaryK);
    }

    // A replay to the webhook subscription re-sends the stored events: envelopes only.
    const replay = await request(
      "/v1/replays",
      jsonInit({ topic: TOPIC, partitions: [acksS[0]?.partition], from: { sequence: acksS[0]?.sequence }, subscription: HOOK }),
    );
    const replayText = await replay.text();
    expect(replay.status, replayText).toBe(201);
    const job = JSON.parse(replayText) as { id: string };
    const done = await waitFor(
      async () => (await (await request(`/v1/replays/${job.id}`)).json()) as { state: string; sent: number },
      (v) => v.state === "done",
      30_000,
    );
    expect(done.state).toBe("done");
    const ids = acksS.map((a) => a.id);
    const replayed = (
      await waitFor(
        async () => (await sinkDeliveries(HOOK)).filter((d) => d.headers["eventline-replay"] === job.id),
        (d) => ids.every((id) => d.some((x) => x.body.includes(id))),
        30_000,
      )
    ).filter((d) => ids.some((id) => d.body.includes(id)));
    expect(replayed.length).toBeGreaterThanOrEqual(ids.length);
    for (const d of replayed) {
      expect(d.body).not.toContain(canaryS);
      expectEncryptedFields((JSON.parse(d.body) as ReadEvent).data);
    }

    // Shredding again finds nothing left to destroy.
    const again = await request(`/v1/subjects/${shredded}/keys`, { method: "DELETE" });
    expect(((await again.json()) as { destroyed: number }).destroyed).toBe(0);

    // The subject's next event gets a new key, and is readable.
    const canaryNew = canaryOf();
    const [ackNew] = (await expectAccepted(await post(customer(shredded, canaryNew)))) as [Ack];
    const newKid = expectEnvelope((await readOne(as(reader), ackNew)).event.data.email).kid;
    expect(newKid).not.toBe(oldKid);
    const fresh = await readOne(asAdmin, ackNew);
    expectPlaintextFields(fresh.event.data, canaryNew);
    expect(fresh.undecryptable).toBeNull();
    // …while its old events stay unreadable.
    expectEncryptedFields((await readOne(asAdmin, acksS[0] as Ack)).event.data);
  });
});

describe("erasability", () => {
  it("every subject whose fields get a data key can be shredded: 1,024 characters work end to end, longer is refused at ingest", async () => {
    const canary = canaryOf();
    const longest = `cust-${"x".repeat(1024 - 5)}`;
    expect(longest).toHaveLength(1024);
    const [ack] = (await expectAccepted(await post(customer(longest, canary)))) as [Ack];
    expectPlaintextFields((await readOne(asAdmin, ack)).event.data, canary);
    const shred = await request(`/v1/subjects/${longest}/keys`, { method: "DELETE" });
    const shredText = await shred.text();
    expect(shred.status, shredText).toBe(200);
    expect((JSON.parse(shredText) as { destroyed: number }).destroyed).toBe(1);
    expectEncryptedFields((await readOne(asAdmin, ack)).event.data);

    // One character more would make a key DELETE /v1/subjects/{subject}/keys cannot reach.
    const tooLong = `${longest}y`;
    const before = await dataHeads();
    const vaultBefore = (await storedText()).vault;
    const refused = await expectProblem(await post([customer(subjectOf(), canary), customer(tooLong, canary)]), 422);
    expect(refused.code).toBe("schema_violation");
    expect(refused.issues?.map((i) => i.path)).toEqual(["/1/subject"]);
    expect(await dataHeads()).toEqual(before);
    expect((await storedText()).vault).toBe(vaultBefore);
    expect((await expectProblem(await request(`/v1/subjects/${tooLong}/keys`, { method: "DELETE" }), 400)).code).toBe("invalid_parameter");
    // Without sensitive fields the subject is not limited by this (no key is made for it).
    await expectAccepted(await post(event({ source: "/crm", type: "customer.seen", subject: tooLong, data: { plan: "gold" } })));
  });
});

describe("key administration", () => {
  it("GET /v1/encryption shows the KEK versions and data keys; POST /v1/encryption/rewrap reports its progress", async () => {
    await expectAccepted(await post(customer(subjectOf(), canaryOf())));
    const status = await request("/v1/encryption");
    const text = await status.text();
    expect(status.status, text).toBe(200);
    const body = JSON.parse(text) as {
      kek: { current: string; versions: string[] };
      dataKeys: { keys: number; shredded: number; byKekVersion: Record<string, number> };
      rotationComplete: boolean;
    };
    expect(body.kek).toEqual({ current: "v1", versions: ["v1"] });
    expect(body.dataKeys.keys).toBeGreaterThanOrEqual(1);
    expect(body.dataKeys.byKekVersion).toEqual({ v1: body.dataKeys.keys });
    expect(body.rotationComplete).toBe(true);
    // No key material or wrapped bytes in the answer.
    expect(Object.keys(body.dataKeys).sort()).toEqual(["byKekVersion", "keys", "shredded"]);

    for (const init of [{ method: "POST" }, jsonInit({ limit: 10 }), jsonInit({})] as RequestInit[]) {
      const res = await request("/v1/encryption/rewrap", init);
      const rewrap = await res.text();
      expect(res.status, rewrap).toBe(200);
      expect(JSON.parse(rewrap)).toEqual({ rewrapped: 0, remaining: 0, current: "v1" });
    }
    const audited = await auditSearch({ action: "keys.rewrap", actor: "admin", outcome: "success" });
    expect(audited.length).toBeGreaterThanOrEqual(3);
    expect(audited.at(-1)?.details).toEqual({ rewrapped: 0, remaining: 0, current: "v1" });
    // Bad limits are a 400, never a 5xx.
    for (const limit of [0, 10_001, "many"]) {
      await expectProblem(await request("/v1/encryption/rewrap", jsonInit({ limit })), 400);
    }
    // …and so are bodies that are not JSON at all, whatever they claim to be.
    for (const [contentType, body] of [
      ["application/json", '{"limit": '],
      ["text/plain", "limit=10"],
    ] as const) {
      await expectProblem(await request("/v1/encryption/rewrap", { method: "POST", headers: { "content-type": contentType }, body }), 400);
    }
  });

  it("a data key wrapped under a KEK version EVENTLINE_KEKS no longer holds: rotation shows incomplete, rewrap is a 503 naming it", async () => {
    const subject = "rotation-probe";
    const shard = env.KEY_VAULT.getByName(vaultShardName(vaultShardOf(subject)));
    const kid = `${vaultShardOf(subject)}.${"ab".repeat(16)}`;
    // As if the KEK "v0" had been dropped from EVENTLINE_KEKS before rewrap reported nothing remaining.
    await runInDurableObject(shard, (_vault: unknown, state: DurableObjectState) => {
      state.storage.sql.exec(
        "INSERT INTO data_keys (kid, subject, kek_version, wrapped, created_at) VALUES (?, ?, 'v0', ?, ?)",
        kid,
        subject,
        crypto.getRandomValues(new Uint8Array(60)),
        Date.now(),
      );
    });
    try {
      const status = (await (await request("/v1/encryption")).json()) as {
        dataKeys: { byKekVersion: Record<string, number> };
        rotationComplete: boolean;
      };
      expect(status.rotationComplete).toBe(false);
      expect(status.dataKeys.byKekVersion.v0).toBe(1);
      const res = await request("/v1/encryption/rewrap", { method: "POST" });
      const problem = await expectProblem(res, 503);
      expect(problem.detail).toContain("v0");
      expect(res.headers.get("retry-after")).not.toBeNull();
      const audited = (await auditSearch({ action: "keys.rewrap", actor: "admin", outcome: "failure" })).filter(
        (r) => r.requestId === problem.requestId,
      );
      expect(audited).toHaveLength(1);
    } finally {
      await runInDurableObject(shard, (_vault: unknown, state: DurableObjectState) => {
        state.storage.sql.exec("DELETE FROM data_keys WHERE kid = ?", kid);
      });
    }
    expect(((await (await request("/v1/encryption")).json()) as { rotationComplete: boolean }).rotationComplete).toBe(true);
  });
});
