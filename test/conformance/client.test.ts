import { DurableStream, IdempotentProducer } from "@durable-streams/client";
import { describe, expect, inject, it } from "vitest";

/**
 * The official client (@durable-streams/client) against the local stack, as an application uses
 * it: it sends its own bearer token, writes through an idempotent producer, follows the stream
 * live over SSE, and resumes from the last offset it saw without losing or repeating anything.
 */

const base = inject("conformanceUrl");
const auth = { Authorization: `Bearer ${inject("conformanceToken")}` };

describe("@durable-streams/client on Eventline", () => {
  it("writes with an idempotent producer, follows live over SSE and resumes from its last offset", async () => {
    const url = `${base}/v1/stream/client-tests/chat-${Date.now()}`;
    const stream = await DurableStream.create({ url, contentType: "application/json", headers: auth });
    const producer = new IdempotentProducer(stream, "chat-writer", { lingerMs: 0 });
    for (const n of [1, 2, 3]) producer.append(JSON.stringify({ n }));
    await producer.flush();

    const seen: number[] = [];
    let offset = "-1";
    const live = await stream.stream<{ n: number }>({ live: "sse", offset: "-1" });
    const caughtUp = new Promise<void>((resolve) => {
      live.subscribeJson<{ n: number }>((batch) => {
        seen.push(...batch.items.map((item) => item.n));
        offset = batch.offset;
        if (seen.length >= 5) resolve();
      });
    });
    // Written while the reader follows: delivered live, after the three it caught up on.
    for (const n of [4, 5]) producer.append(JSON.stringify({ n }));
    await producer.flush();
    await caughtUp;
    live.cancel();
    expect(seen).toEqual([1, 2, 3, 4, 5]);

    for (const n of [6, 7]) producer.append(JSON.stringify({ n }));
    await producer.flush();
    const resumed = await stream.stream<{ n: number }>({ live: false, offset });
    expect((await resumed.json()).map((item) => item.n)).toEqual([6, 7]);
  });

  it("is refused without a credential: the routes are not open to anonymous clients", async () => {
    const url = `${base}/v1/stream/client-tests/anonymous-${Date.now()}`;
    await expect(
      DurableStream.create({ url, contentType: "text/plain", headers: { Authorization: "Bearer not-a-key" } }),
    ).rejects.toThrow();
    const head = await globalThis.fetch(url, { method: "HEAD", headers: { authorization: "Bearer not-a-key" } });
    expect(head.status).toBe(401);
  });
});
