import { env } from "cloudflare:workers";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { defineConsumer, type StoredEvent } from "../../sdk/consumer";
import { partitionFor } from "../../shared/partitioner";
import { fieldDecryption, isEncryptedValue } from "../../shared/security/fields";
import { expectAccepted, postStructured, request, topicConfig } from "../helpers";
import { createEffectsTable, delivery, FakeMessage, resetConsumerState } from "./helpers";

/** The consumer SDK's `decrypt` option: authorized consumers get plaintext; queue bodies never carry it. */

beforeAll(createEffectsTable);
beforeEach(resetConsumerState);

/** Posts a customers event with a canary email; returns the event as stored (encrypted). */
async function storedCustomerEvent(subject: string, canary: string): Promise<StoredEvent> {
  const id = crypto.randomUUID();
  const [ack] = await expectAccepted(
    await postStructured("customers", {
      specversion: "1.0",
      id,
      source: "/sdk-decrypt",
      type: "customers.registered",
      subject,
      data: { customerId: subject, email: canary, plan: "pro" },
    }),
  );
  const partition = partitionFor({ id, subject }, topicConfig("customers").partitions);
  expect(ack?.partition).toBe(partition);
  // Straight from the partition log (what the outbox puts on queues), not through the API.
  const page = await env.PARTITION_LOG.getByName(`customers/${partition}`).read(ack?.sequence ?? 1, 1);
  return JSON.parse(page.events[0] as string) as StoredEvent;
}

function consumerSeeing(seen: StoredEvent[], decrypt: boolean) {
  return defineConsumer<Env>({
    subscription: "test-sub",
    db: (e) => e.DB,
    maxRetries: 2,
    ...(decrypt ? { decrypt: fieldDecryption((e: Env) => e.KEY_VAULT) } : {}),
    handle: async (event) => {
      seen.push(event);
      return [];
    },
  });
}

describe("consumer SDK: sensitive fields", () => {
  it("a consumer with `decrypt` gets the plaintext, one without gets the envelope; the message never holds the plaintext", async () => {
    const subject = `cust-${crypto.randomUUID()}`;
    const canary = `canary-${crypto.randomUUID()}@example.com`;
    const stored = await storedCustomerEvent(subject, canary);
    const body = delivery({ topic: "customers", event: stored });
    expect(JSON.stringify(body)).not.toContain(canary);
    expect(isEncryptedValue((stored.data as Record<string, unknown>).email)).toBe(true);
    expect((stored.data as Record<string, unknown>).plan).toBe("pro");

    const plain: StoredEvent[] = [];
    const message = new FakeMessage(body);
    expect(await consumerSeeing(plain, true).process(message, env)).toBe("handled");
    expect(plain[0]?.data).toEqual({ customerId: subject, email: canary, plan: "pro" });

    const opaque: StoredEvent[] = [];
    const other = new FakeMessage(delivery({ topic: "customers", event: stored, subscription: "test-sub" }));
    await resetConsumerState();
    expect(await consumerSeeing(opaque, false).process(other, env)).toBe("handled");
    expect(isEncryptedValue((opaque[0]?.data as Record<string, unknown> | undefined)?.email)).toBe(true);
    expect(JSON.stringify(opaque)).not.toContain(canary);
  });

  it("after the subject is erased, even a decrypting consumer gets only the envelope", async () => {
    const subject = `cust-${crypto.randomUUID()}`;
    const canary = `canary-${crypto.randomUUID()}@example.com`;
    const stored = await storedCustomerEvent(subject, canary);
    const erased = await request(`/v1/subjects/${encodeURIComponent(subject)}/keys`, { method: "DELETE" });
    expect(erased.status).toBe(200);
    expect(((await erased.json()) as { destroyed: number }).destroyed).toBe(1);

    const seen: StoredEvent[] = [];
    const message = new FakeMessage(delivery({ topic: "customers", event: stored }));
    expect(await consumerSeeing(seen, true).process(message, env)).toBe("handled");
    expect(isEncryptedValue((seen[0]?.data as Record<string, unknown> | undefined)?.email)).toBe(true);
    expect(JSON.stringify(seen)).not.toContain(canary);
  });
});
