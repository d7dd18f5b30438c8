import { beforeAll, describe, expect, it } from "vitest";
import { type Ack, BATCH, event, expectAccepted, expectProblem, request, STRUCTURED } from "../helpers";
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
  PARTITIONS,
  post,
  type ReadEvent,
  readOne,
  readPage,
  readStream,
  recordQueueSends,
  storedText,
  subjectOf,
  TOPIC,
} from "./encryption-fixtures";
import { asKey, type CreatedTestKey, captureConsole, dataHeads } from "./helpers";

/**
 * Field encryption of the `customers` topic (what these tests show as a whole: encryption-fixtures.ts).
 *
 * This file: a canary in the sensitive fields, followed at rest, in transit, in logs and through
 * reads with and without a decrypt grant; and ciphertext moved to another event.
 */

let reader: CreatedTestKey;
let decrypter: CreatedTestKey;
let topicAdmin: CreatedTestKey;

beforeAll(async () => {
  ({ reader, decrypter, topicAdmin } = await encryptionSetup());
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
