import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { AuditTally } from "../../durable-objects/audit-tally";
import { auditTallyName, type TallyWindow } from "../../shared/audit-tally";
import { DECRYPT_AUDIT_ACTION, DECRYPT_AUDIT_WINDOW_SECONDS } from "../../workers/platform/decrypt-audit";
import { type Ack, BATCH, event, expectAccepted, request, waitFor } from "../helpers";
import { asKey, auditSearch, type CreatedTestKey, createTestKey, expectNoSecrets } from "./helpers";

/**
 * Reads that return plaintext of sensitive fields are audited once per principal, topic and window
 * (`encryption.decrypt`, with counts), not per read or event; reads without a decrypt grant are not.
 */

const TOPIC = "customers";
const WINDOW_MS = DECRYPT_AUDIT_WINDOW_SECONDS * 1000;

/** A customers event of `subject` with `canary` in its four sensitive fields. */
const customer = (subject: string, canary: string) =>
  event({
    source: "/crm",
    type: "customer.updated",
    subject,
    data: { name: canary, email: canary, phone: canary, address: { street: canary, city: "Springfield" }, plan: "gold" },
  });

const tally = (key: CreatedTestKey) => env.AUDIT_TALLY.getByName(auditTallyName(DECRYPT_AUDIT_ACTION, key.principal, `topic:${TOPIC}`));
const windowsOf = (key: CreatedTestKey) => runInDurableObject(tally(key), (t: AuditTally) => t.windows());
const flushAt = (key: CreatedTestKey, at: number) => runInDurableObject(tally(key), (t: AuditTally) => t.flush(at));

async function read(key: CreatedTestKey, path: string): Promise<{ text: string; requestId: string }> {
  const res = await asKey(key, path, { headers: { accept: BATCH } });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return { text, requestId: res.headers.get("x-request-id") ?? "" };
}

describe("decrypting reads in the audit log", () => {
  it("are one encryption.decrypt record per principal, topic and window, with counts; reads without decrypt leave none", async () => {
    const [decrypter, reader] = await Promise.all([
      createTestKey("decrypt-audited", [`consume:${TOPIC}`, `decrypt:${TOPIC}`]),
      createTestKey("decrypt-not-granted", [`consume:${TOPIC}`]),
    ]);
    const canary = `canary-${crypto.randomUUID()}`;
    const subject = `cust-${crypto.randomUUID()}`;
    const shredded = `cust-${crypto.randomUUID()}`;
    const acks = (await expectAccepted(
      await request(`/v1/topics/${TOPIC}/events`, {
        method: "POST",
        headers: { "content-type": BATCH },
        body: JSON.stringify([customer(subject, canary), customer(subject, canary), customer(shredded, canary)]),
      }),
    )) as [Ack, Ack, Ack];
    const shred = await request(`/v1/subjects/${shredded}/keys`, { method: "DELETE" });
    expect(shred.status, await shred.text()).toBe(200);
    const partitionPath = (ack: Ack) => `/v1/topics/${TOPIC}/partitions/${ack.partition}/events?from=${ack.sequence}&limit=1`;
    const streamPath = `/v1/topics/${TOPIC}/streams/${subject}/events`;

    // Without a decrypt grant: envelopes, and nothing counted.
    for (const path of [partitionPath(acks[0]), streamPath]) expect((await read(reader, path)).text).not.toContain(canary);

    // Three reads with it: one event (4 fields), the stream (2 events, 8 fields), the shredded event (4 undecryptable).
    const first = await read(decrypter, partitionPath(acks[0]));
    expect(first.text).toContain(canary);
    expect((await read(decrypter, streamPath)).text).toContain(canary);
    expect((await read(decrypter, partitionPath(acks[2]))).text).not.toContain(canary);

    const counts = { reads: 3, events: 4, fields: 12, undecryptable: 4 };
    const windows = await waitFor(
      () => windowsOf(decrypter),
      (w) => w.reduce((n, x) => n + (x.counts.reads ?? 0), 0) >= 3,
      15_000,
    );
    expect(windows).toHaveLength(1);
    const window = windows[0] as TallyWindow;
    expect(window).toMatchObject({ action: DECRYPT_AUDIT_ACTION, resource: `topic:${TOPIC}`, requestId: first.requestId, counts });
    expect(window.until - window.from).toBe(WINDOW_MS);
    // The reader read first: had its reads been counted, they would have arrived by now.
    expect(await windowsOf(reader)).toEqual([]);

    // The record is written once the window has closed, not before.
    expect(await flushAt(decrypter, window.until - 1)).toBe(0);
    expect(await auditSearch({ action: DECRYPT_AUDIT_ACTION, actor: decrypter.principal })).toEqual([]);
    expect(await flushAt(decrypter, window.until)).toBe(1);
    const records = await auditSearch({ action: DECRYPT_AUDIT_ACTION, actor: decrypter.principal });
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      outcome: "success",
      resource: `topic:${TOPIC}`,
      actor: { id: decrypter.principal, kind: "api-key" },
      requestId: first.requestId,
      details: { ...counts, from: new Date(window.from).toISOString(), until: new Date(window.until).toISOString() },
    });
    expectNoSecrets(JSON.stringify(records[0]), [canary, decrypter.key]);
    // Written once: the window is gone, a later flush writes nothing.
    expect(await windowsOf(decrypter)).toEqual([]);
    expect(await flushAt(decrypter, window.until + WINDOW_MS)).toBe(0);
    expect(await auditSearch({ action: DECRYPT_AUDIT_ACTION, actor: decrypter.principal })).toHaveLength(1);
    expect(await auditSearch({ action: DECRYPT_AUDIT_ACTION, actor: reader.principal })).toEqual([]);
  });
});
