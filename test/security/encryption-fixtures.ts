import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import type { PartitionLog } from "../../durable-objects/partition-log";
import type { EncryptedValue } from "../../shared/security/fields";
import { KEY_VAULT_SHARDS, vaultShardName } from "../../shared/security/keyring";
import { testBindings } from "../bindings";
import { type Ack, BATCH, event, request, STRUCTURED, waitFor } from "../helpers";
import {
  archiveObjectsText,
  asKey,
  type CreatedTestKey,
  createTestKey,
  dumpDurableObjectStorage,
  jsonInit,
  sinkDeliveries,
} from "./helpers";

/*
 * Shared fixtures of the field-encryption tests (test/security/encryption-*.test.ts), about the
 * `customers` topic (sensitive /name /email /phone /address): canary events, reads as a given
 * key, the envelope and plaintext assertions, and dumps of what is stored (partition logs, vault
 * shards, R2 archive), queued and delivered. encryptionSetup is called from each file's
 * beforeAll, since storage is isolated per test file.
 *
 * What the canary and shredding tests show: a unique canary in the sensitive fields must never be
 * found at rest (partition logs, R2 archive), in transit (queue messages, webhook bodies) or in
 * logs; only a `decrypt` grant reads it back; ciphertext moved elsewhere does not decrypt;
 * shredding a subject's key makes its fields unreadable everywhere while the logs themselves stay
 * as they were.
 */

export const TOPIC = "customers";
export const PARTITIONS = 2;
export const HOOK = "enc-hook";

/** The keys the encryption tests read as: consume only, consume + decrypt, and the topic's admin. */
export interface EncryptionKeys {
  reader: CreatedTestKey;
  decrypter: CreatedTestKey;
  topicAdmin: CreatedTestKey;
}

/** Creates the keys and the HOOK webhook subscription on the topic. */
export async function encryptionSetup(): Promise<EncryptionKeys> {
  const [reader, decrypter, topicAdmin] = await Promise.all([
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
  return { reader, decrypter, topicAdmin };
}

export const canaryOf = () => `canary-${crypto.randomUUID()}@example.com`;
export const subjectOf = () => `cust-${crypto.randomUUID()}`;

/** A customers event with the canary in every sensitive field (and a non-sensitive `plan`). */
export function customer(subject: string | undefined, canary: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
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

export type Send = (path: string, init?: RequestInit) => Promise<Response>;
export const asAdmin: Send = (path, init) => request(path, init);
export const as =
  (key: CreatedTestKey): Send =>
  (path, init) =>
    asKey(key, path, init);

export const post = (body: unknown, send: Send = asAdmin) =>
  send(`/v1/topics/${TOPIC}/events`, {
    method: "POST",
    headers: { "content-type": Array.isArray(body) ? BATCH : STRUCTURED },
    body: JSON.stringify(body),
  });

export interface ReadEvent extends Record<string, unknown> {
  id: string;
  sequence: string;
  subject?: string;
  data: Record<string, unknown>;
}

export interface Page {
  events: ReadEvent[];
  text: string;
  undecryptable: string | null;
}

export async function readPage(send: Send, path: string): Promise<Page> {
  const res = await send(path);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  const body = JSON.parse(text) as ReadEvent[] | { events: ReadEvent[] };
  return { events: Array.isArray(body) ? body : body.events, text, undecryptable: res.headers.get("eventline-undecryptable") };
}

/** One stored event, read alone from its partition (so the page's headers are about it only). */
export async function readOne(send: Send, ack: Ack, topic = TOPIC): Promise<Page & { event: ReadEvent }> {
  const page = await readPage(send, `/v1/topics/${topic}/partitions/${ack.partition}/events?from=${ack.sequence}&limit=1`);
  const found = page.events[0];
  expect(found?.id).toBe(ack.id);
  return { ...page, event: found as ReadEvent };
}

export const readStream = (send: Send, subject: string) =>
  readPage(send, `/v1/topics/${TOPIC}/streams/${encodeURIComponent(subject)}/events`);

export function expectEnvelope(value: unknown): EncryptedValue {
  expect(value).toEqual({
    $eventline: "enc.v1",
    kid: expect.stringMatching(/^\d{1,2}\.[0-9a-f]{32}$/),
    iv: expect.stringMatching(/^[A-Za-z0-9_-]+$/),
    ct: expect.stringMatching(/^[A-Za-z0-9_-]+$/),
  });
  return value as EncryptedValue;
}

/** Every sensitive field of `data` is an envelope; `plan` is left as it was. */
export function expectEncryptedFields(data: Record<string, unknown>): EncryptedValue[] {
  expect(data.plan).toBe("gold");
  return [data.name, data.email, data.phone, data.address].map(expectEnvelope);
}

export function expectPlaintextFields(data: Record<string, unknown>, canary: string): void {
  expect(data).toEqual({
    name: `Name ${canary}`,
    email: canary,
    phone: `+1 555 ${canary}`,
    address: { street: `1 ${canary} Street`, city: "Springfield" },
    plan: "gold",
  });
}

/** Everything stored by every partition of the topic and every KeyVault shard. */
export async function storedText(): Promise<{ partitions: string; vault: string; tables: string[] }> {
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
export async function recordQueueSends(): Promise<{ bodies: string[]; stop(): Promise<void> }> {
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

export async function archiveTopic(): Promise<{ key: string; text: string }[]> {
  const res = await request(`/v1/topics/${TOPIC}/archive`, { method: "POST" });
  expect(res.status, await res.text()).toBe(200);
  return archiveObjectsText(`topics/${TOPIC}/`);
}

/** The archived line of each event id (as stored in R2). */
export function archivedLines(objects: { key: string; text: string }[], ids: readonly string[]): Map<string, Record<string, unknown>> {
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

export async function deliveriesOf(ids: readonly string[], done: (bodies: Record<string, unknown>[]) => boolean) {
  const got = await waitFor(
    async () => (await sinkDeliveries(HOOK)).filter((d) => ids.includes(String((JSON.parse(d.body) as { id?: unknown }).id))),
    (d) => done(d.map((x) => JSON.parse(x.body) as Record<string, unknown>)),
    30_000,
  );
  return got;
}
