import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import type { PartitionLog } from "../../durable-objects/partition-log";
import type { EncryptedValue } from "../../shared/security/fields";
import { KEY_VAULT_SHARDS, vaultShardName, vaultShardOf } from "../../shared/security/keyring";
import { testBindings } from "../bindings";
import { type Ack, BATCH, event, expectAccepted, expectProblem, type Problem, request, STRUCTURED, waitFor } from "../helpers";
import { plantUnwrappableKeys } from "../key-vault-helpers";
import {
  archiveObjectsText,
  asKey,
  auditOf,
  auditSearch,
  type CreatedTestKey,
  captureConsole,
  createTestKey,
  dataHeads,
  dumpDurableObjectStorage,
  jsonInit,
  sinkDeliveries,
} from "./helpers";

/**
 * Field encryption of the `customers` topic (sensitive /name /email /phone /address): a unique
 * canary in those fields must never be found at rest (partition logs, R2 archive), in transit
 * (queue messages, webhook bodies) or in logs; only a `decrypt` grant reads it back; ciphertext
 * moved elsewhere does not decrypt; shredding a subject's key makes its fields unreadable
 * everywhere while the logs themselves stay as they were.
 */

const TOPIC = "customers";
const PARTITIONS = 2;
const HOOK = "enc-hook";

let reader: CreatedTestKey;
let decrypter: CreatedTestKey;
let topicAdmin: CreatedTestKey;

const canaryOf = () => `canary-${crypto.randomUUID()}@example.com`;
const subjectOf = () => `cust-${crypto.randomUUID()}`;

/** A customers event with the canary in every sensitive field (and a non-sensitive `plan`). */
function customer(subject: string | undefined, canary: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return event({
    source: "/crm",
    type: "customer.updated",
    ...(subject === undefined ? {} : { subject }),
    data: {
      name: `Name ${canary}`,
      email: canary,
      phone: `+1 555 ${canary}`,
      address: { street: `1 ${canary} Street`, city: "Springfield" },
      plan: "gold",
    },
    ...overrides,
  });
}

type Send = (path: string, init?: RequestInit) => Promise<Response>;
const asAdmin: Send = (path, init) => request(path, init);
const as =
  (key: CreatedTestKey): Send =>
  (path, init) =>
    asKey(key, path, init);

const post = (body: unknown, send: Send = asAdmin) =>
  send(`/v1/topics/${TOPIC}/events`, {
    method: "POST",
    headers: { "content-type": Array.isArray(body) ? BATCH : STRUCTURED },
    body: JSON.stringify(body),
  });

interface ReadEvent extends Record<string, unknown> {
  id: string;
  sequence: string;
  subject?: string;
  data: Record<string, unknown>;
}

interface Page {
  events: ReadEvent[];
  text: string;
  undecryptable: string | null;
}

async function readPage(send: Send, path: string): Promise<Page> {
  const res = await send(path);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  const body = JSON.parse(text) as ReadEvent[] | { events: ReadEvent[] };
  return { events: Array.isArray(body) ? body : body.events, text, undecryptable: res.headers.get("eventline-undecryptable") };
}

/** One stored event, read alone from its partition (so the page's headers are about it only). */
async function readOne(send: Send, ack: Ack, topic = TOPIC): Promise<Page & { event: ReadEvent }> {
  const page = await readPage(send, `/v1/topics/${topic}/partitions/${ack.partition}/events?from=${ack.sequence}&limit=1`);
  const found = page.events[0];
  expect(found?.id).toBe(ack.id);
  return { ...page, event: found as ReadEvent };
}

const readStream = (send: Send, subject: string) => readPage(send, `/v1/topics/${TOPIC}/streams/${encodeURIComponent(subject)}/events`);

function expectEnvelope(value: unknown): EncryptedValue {
  expect(value).toEqual({
    $eventline: "enc.v1",
    kid: expect.stringMatching(/^\d{1,2}\.[0-9a-f]{32}$/),
    iv: expect.stringMatching(/^[A-Za-z0-9_-]+$/),
    ct: expect.stringMatching(/^[A-Za-z0-9_-]+$/),
  });
  return value as EncryptedValue;
}

/** Every sensitive field of `data` is an envelope; `plan` is left as it was. */
function expectEncryptedFields(data: Record<string, unknown>): EncryptedValue[] {
  expect(data.plan).toBe("gold");
  return [data.name, data.email, data.phone, data.address].map(expectEnvelope);
}

function expectPlaintextFields(data: Record<string, unknown>, canary: string): void {
  expect(data).toEqual({
    name: `Name ${canary}`,
    email: canary,
    phone: `+1 555 ${canary}`,
    address: { street: `1 ${canary} Street`, city: "Springfield" },
    plan: "gold",
  });
}

/** Everything stored by every partition of the topic and every KeyVault shard. */
async function storedText(): Promise<{ partitions: string; vault: string; tables: string[] }> {
  const partitions = await Promise.all(
    Array.from({ length: PARTITIONS }, (_, p) => dumpDurableObjectStorage(env.PARTITION_LOG.getByName(`${TOPIC}/${p}`))),
  );
  const vault = await Promise.all(
    Array.from({ length: KEY_VAULT_SHARDS }, (_, n) => dumpDurableObjectStorage(env.KEY_VAULT.getByName(vaultShardName(n)))),
  );
  return {
    partitions: partitions.map((d) => d.text).join("\n"),
    vault: vault.map((d) => d.text).join("\n"),
    tables: [...new Set(partitions.flatMap((d) => d.tables))],
  };
}

/** Records every queue message the topic's partitions send (still sending them) until `stop`. */
async function recordQueueSends(): Promise<{ bodies: string[]; stop(): Promise<void> }> {
  const bodies: string[] = [];
  const stubs = Array.from({ length: PARTITIONS }, (_, p) => env.PARTITION_LOG.getByName(`${TOPIC}/${p}`));
  const originals: PartitionLog["testing"]["send"][] = [];
  for (const stub of stubs) {
    await runInDurableObject(stub, (log: PartitionLog) => {
      const original = log.testing.send;
      originals.push(original);
      log.testing.send = async (binding, batch) => {
        bodies.push(...batch.map((b) => JSON.stringify(b)));
        return original(binding, batch);
      };
    });
  }
  return {
    bodies,
    async stop() {
      for (const [i, stub] of stubs.entries()) {
        await runInDurableObject(stub, (log: PartitionLog) => {
          log.testing.send = originals[i] as PartitionLog["testing"]["send"];
        });
      }
    },
  };
}

async function archiveTopic(): Promise<{ key: string; text: string }[]> {
  const res = await request(`/v1/topics/${TOPIC}/archive`, { method: "POST" });
  expect(res.status, await res.text()).toBe(200);
  return archiveObjectsText(`topics/${TOPIC}/`);
}

/** The archived line of each event id (as stored in R2). */
function archivedLines(objects: { key: string; text: string }[], ids: readonly string[]): Map<string, Record<string, unknown>> {
  const found = new Map<string, Record<string, unknown>>();
  for (const { key, text } of objects) {
    if (!key.endsWith(".ndjson.gz")) continue;
    for (const line of text.split("\n")) {
      if (line === "") continue;
      const stored = JSON.parse(line) as Record<string, unknown>;
      if (ids.includes(String(stored.id))) found.set(String(stored.id), stored);
    }
  }
  return found;
}

async function deliveriesOf(ids: readonly string[], done: (bodies: Record<string, unknown>[]) => boolean) {
  const got = await waitFor(
    async () => (await sinkDeliveries(HOOK)).filter((d) => ids.includes(String((JSON.parse(d.body) as { id?: unknown }).id))),
    (d) => done(d.map((x) => JSON.parse(x.body) as Record<string, unknown>)),
    30_000,
  );
  return got;
}

beforeAll(async () => {
  [reader, decrypter, topicAdmin] = await Promise.all([
    createTestKey("customers-reader", [`consume:${TOPIC}`]),
    createTestKey("customers-decrypter", [`consume:${TOPIC}`, `decrypt:${TOPIC}`]),
    createTestKey("customers-admin", [`admin:${TOPIC}`]),
  ]);
  // The topic has no configured subscription: this webhook puts its events in the outbox, on the queue and on the wire.
  const res = await request(
    "/v1/subscriptions",
    jsonInit({ name: HOOK, topic: TOPIC, webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/${HOOK}` } }),
  );
  expect(res.status, await res.text()).toBe(201);
});

describe("a canary in sensitive fields", () => {
  it("is never stored, archived, queued, sent to a webhook or logged, whatever the ingest mode", async () => {
    const canary = canaryOf();
    const [s1, s2] = [subjectOf(), subjectOf()];
    const acks: Ack[] = [];
    const queued = await recordQueueSends();
    const logs = captureConsole();
    let adminText: string;
    try {
      acks.push(...(await expectAccepted(await post(customer(s1, canary)))));
      acks.push(...(await expectAccepted(await post([customer(s2, canary), customer(s1, canary)]))));
      const binary = customer(s2, canary);
      acks.push(
        ...(await expectAccepted(
          await request(`/v1/topics/${TOPIC}/events`, {
            method: "POST",
            headers: {
              "ce-specversion": "1.0",
              "ce-id": String(binary.id),
              "ce-source": "/crm",
              "ce-type": "customer.updated",
              "ce-subject": s2,
              "content-type": "application/json",
            },
            body: JSON.stringify(binary.data),
          }),
        )),
      );
      const { subject: _s, ...withoutSubject } = customer(undefined, canary);
      const streamed = await request(`/v1/topics/${TOPIC}/streams/${s1}/events`, {
        method: "POST",
        headers: { "content-type": STRUCTURED },
        body: JSON.stringify(withoutSubject),
      });
      const streamText = await streamed.text();
      expect(streamed.status, streamText).toBe(201);
      acks.push(...(JSON.parse(streamText) as { events: Ack[] }).events);
      expect(acks).toHaveLength(5);

      // Reads during the capture: the admin (decrypt:*) gets the plaintext back, a reader does not.
      adminText = "";
      for (let p = 0; p < PARTITIONS; p++)
        adminText += (await readPage(asAdmin, `/v1/topics/${TOPIC}/partitions/${p}/events?limit=1000`)).text;
      adminText += (await readStream(asAdmin, s1)).text;
      const readerText = (await readPage(as(reader), `/v1/topics/${TOPIC}/partitions/${acks[0]?.partition}/events?limit=1000`)).text;
      expect(readerText).not.toContain(canary);
    } finally {
      logs.restore();
    }
    expect(adminText.split(canary).length - 1).toBeGreaterThanOrEqual(5 * 4);

    // (d) log lines: there are some (ingest and reads of this topic), and none holds the canary.
    expect(logs.count()).toBeGreaterThan(0);
    expect(logs.text()).toContain(`"topic":"${TOPIC}"`);
    expect(logs.text()).not.toContain(canary);

    // (a) storage of every partition (all tables, key-value entries) and of the KeyVault.
    const stored = await storedText();
    expect(stored.tables).toEqual(expect.arrayContaining(["events", "outbox"]));
    for (const ack of acks) expect(stored.partitions).toContain(ack.id);
    expect(stored.partitions).toContain('"$eventline":"enc.v1"');
    expect(stored.partitions).not.toContain(canary);
    expect(stored.vault).toContain(s1);
    expect(stored.vault).not.toContain(canary);

    // (c) queue messages, as the webhook subscription receives them.
    const ids = acks.map((a) => a.id);
    const delivered = await deliveriesOf(ids, (bodies) => new Set(bodies.map((b) => b.id)).size === ids.length);
    expect(new Set(delivered.map((d) => (JSON.parse(d.body) as { id: string }).id))).toEqual(new Set(ids));
    for (const d of delivered) {
      expect(d.body).not.toContain(canary);
      expect(JSON.stringify(d.headers)).not.toContain(canary);
      expectEncryptedFields((JSON.parse(d.body) as ReadEvent).data);
    }

    // …and as the partitions put them on the queue.
    await queued.stop();
    for (const id of ids)
      expect(
        queued.bodies.some((b) => b.includes(id)),
        `queue message of ${id}`,
      ).toBe(true);
    for (const body of queued.bodies) expect(body).not.toContain(canary);

    // (b) the R2 archive, every object under the topic's prefix, gunzipped.
    const objects = await archiveTopic();
    const lines = archivedLines(objects, ids);
    expect([...lines.keys()].sort()).toEqual([...ids].sort());
    for (const line of lines.values()) expectEncryptedFields(line.data as Record<string, unknown>);
    for (const object of objects) expect(object.text, object.key).not.toContain(canary);
  });

  it("reads back as plaintext only with a decrypt grant", async () => {
    const canary = canaryOf();
    const subject = subjectOf();
    const [ack] = (await expectAccepted(await post(customer(subject, canary)))) as [Ack];

    for (const send of [asAdmin, as(decrypter)]) {
      const one = await readOne(send, ack);
      expectPlaintextFields(one.event.data, canary);
      expect(one.undecryptable).toBeNull();
      const stream = await readStream(send, subject);
      expectPlaintextFields(stream.events[0]?.data ?? {}, canary);
      const batch = await readPage(
        (p) => send(p, { headers: { accept: BATCH } }),
        `/v1/topics/${TOPIC}/partitions/${ack.partition}/events?from=${ack.sequence}&limit=1`,
      );
      expectPlaintextFields(batch.events[0]?.data ?? {}, canary);
    }
    // consume without decrypt, and even admin of the topic (admin does not imply decrypt): envelopes.
    for (const key of [reader, topicAdmin]) {
      const one = await readOne(as(key), ack);
      expectEncryptedFields(one.event.data);
      expect(one.text).not.toContain(canary);
      const stream = await readStream(as(key), subject);
      expect(stream.events).toHaveLength(1);
      expectEncryptedFields(stream.events[0]?.data ?? {});
      expect(stream.text).not.toContain(canary);
      const batch = await readPage(
        (p) => asKey(key, p, { headers: { accept: BATCH } }),
        `/v1/topics/${TOPIC}/partitions/${ack.partition}/events?from=${ack.sequence}&limit=1`,
      );
      expect(batch.text).not.toContain(canary);
      expectEncryptedFields(batch.events[0]?.data ?? {});
    }
  });

  it("an event with sensitive fields but no subject is a 422 at /subject, and nothing is stored", async () => {
    const canary = canaryOf();
    const before = await dataHeads();
    const single = await expectProblem(await post(customer(undefined, canary)), 422);
    expect(single.code).toBe("schema_violation");
    expect(single.issues?.map((i) => i.path)).toEqual(["/subject"]);
    const batch = await expectProblem(await post([customer(subjectOf(), canary), customer(undefined, canary)]), 422);
    expect(batch.issues?.map((i) => i.path)).toEqual(["/1/subject"]);
    // JSON data smuggled in data_base64 cannot be encrypted: refused, not stored as it is.
    const b64 = await expectProblem(
      await post(
        event({
          source: "/crm",
          type: "customer.updated",
          subject: subjectOf(),
          datacontenttype: "application/json",
          data: undefined,
          data_base64: btoa(JSON.stringify({ email: canary })),
        }),
      ),
      422,
    );
    expect(b64.issues?.map((i) => i.path)).toEqual(["/data_base64"]);
    expect(await dataHeads()).toEqual(before);
    expect((await storedText()).partitions).not.toContain(canary);
  });

  it("a producer's retry of the same event is a duplicate; other sensitive values too (first write wins, no guessing oracle); other plain content is a conflict", async () => {
    const canary = canaryOf();
    const original = customer(subjectOf(), canary);
    const [first] = (await expectAccepted(await post(original))) as [Ack];
    expect(first.duplicate).toBe(false);
    const heads = await dataHeads();
    // The same event again, re-serialized with its members in another order and a new trace.
    const reordered = Object.fromEntries(Object.entries(original).reverse());
    const [again] = (await expectAccepted(
      await request(`/v1/topics/${TOPIC}/events`, {
        method: "POST",
        headers: { "content-type": STRUCTURED, traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
        body: JSON.stringify(reordered),
      }),
    )) as [Ack];
    expect(again).toEqual({ ...first, duplicate: true });
    const [inBatch] = (await expectAccepted(await post([original]))) as [Ack];
    expect(inBatch).toEqual({ ...first, duplicate: true });
    expect(await dataHeads()).toEqual(heads);

    // A different value in a sensitive field compares equal (only key ids are compared there), so
    // a producer cannot learn from 202-vs-409 whether a guess equals the stored value.
    const [guess] = (await expectAccepted(await post({ ...original, data: { ...(original.data as object), email: canaryOf() } }))) as [Ack];
    expect(guess).toEqual({ ...first, duplicate: true });
    expect((await readOne(asAdmin, first)).event.data.email).toBe(canary);
    const changed = await expectProblem(await post({ ...original, data: { ...(original.data as object), tier: "other" } }), 409);
    expect(changed.code).toBe("duplicate_conflict");
    expect(await dataHeads()).toEqual(heads);
  });
});

describe("ciphertext moved to another event", () => {
  it("does not decrypt there: the moved value stays an envelope and is reported undecryptable, never the original plaintext", async () => {
    const canary = canaryOf();
    const subject = subjectOf();
    const [a] = (await expectAccepted(await post(customer(subject, canary)))) as [Ack];
    const stolen = expectEnvelope((await readOne(as(reader), a)).event.data.email);

    // Same subject, as a non-sensitive field.
    const [b] = (await expectAccepted(
      await post(event({ source: "/crm", type: "customer.note", subject, data: { note: stolen, plan: "gold" } })),
    )) as [Ack];
    const readB = await readOne(asAdmin, b);
    expect(readB.event.data.note).toEqual(stolen);
    expect(readB.undecryptable).toBe("1");
    expect(readB.text).not.toContain(canary);

    // Same subject, under a sensitive path: it is encrypted again as a value, and decrypts to the envelope only.
    const [c] = (await expectAccepted(
      await post(event({ source: "/crm", type: "customer.updated", subject, data: { email: stolen, plan: "gold" } })),
    )) as [Ack];
    const readC = await readOne(asAdmin, c);
    expect(readC.event.data.email).toEqual(stolen);
    expect(readC.text).not.toContain(canary);

    // The same source, id and field, in another topic.
    const [d] = (await expectAccepted(
      await request("/v1/topics/events/events", {
        method: "POST",
        headers: { "content-type": STRUCTURED },
        body: JSON.stringify(event({ source: "/crm", id: a.id, subject, data: { email: stolen } })),
      }),
    )) as [Ack];
    const readD = await readOne(asAdmin, d, "events");
    expect(readD.event.data.email).toEqual(stolen);
    expect(readD.undecryptable).toBe("1");
    expect(readD.text).not.toContain(canary);

    // The original still decrypts where it was written.
    expectPlaintextFields((await readOne(asAdmin, a)).event.data, canary);
  });
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
