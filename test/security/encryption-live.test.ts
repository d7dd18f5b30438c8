import { beforeAll, describe, expect, it } from "vitest";
import { expectAccepted } from "../helpers";
import { canaryOf, customer, encryptionSetup, post, subjectOf, TOPIC } from "./encryption-fixtures";
import { asKey, type CreatedTestKey } from "./helpers";

/**
 * Following a partition live (`…/partitions/{p}/stream`) shows sensitive fields as the events
 * route does: encrypted envelopes without a `decrypt` grant, plaintext with one, both in catch-up
 * answers and in SSE data events.
 */

let reader: CreatedTestKey;
let decrypter: CreatedTestKey;

beforeAll(async () => {
  ({ reader, decrypter } = await encryptionSetup());
});

async function sseText(key: CreatedTestKey, path: string): Promise<string> {
  const res = await asKey(key, `${path}?offset=-1&live=sse`);
  expect(res.status).toBe(200);
  const body = res.body?.getReader();
  if (body === undefined) throw new Error("no body");
  let text = "";
  while (!text.includes('"upToDate":true')) {
    const { done, value } = await body.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  await body.cancel();
  return text;
}

describe("live partition reads and sensitive fields", () => {
  it("serve envelopes to a consumer and plaintext to a decrypt grant, in catch-up and SSE alike", async () => {
    const canary = canaryOf();
    const [ack] = await expectAccepted(await post(customer(subjectOf(), canary)));
    const path = `/v1/topics/${TOPIC}/partitions/${ack?.partition}/stream`;
    const stored = await (await asKey(reader, `${path}?offset=-1`)).text();
    expect(stored).toContain('"plan":"gold"');
    expect(stored).not.toContain(canary);
    expect(stored).toContain(`"$eventline":"enc.v1"`);
    expect(await sseText(reader, path)).not.toContain(canary);
    const plain = await (await asKey(decrypter, `${path}?offset=-1`)).text();
    expect(plain).toContain(canary);
    expect(await sseText(decrypter, path)).toContain(canary);
  });
});
