import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import config from "../../eventline.config";
import { queueNameOf } from "../../shared/config";
import { hostedConsumers } from "../../workers/platform/consumers/hosted";
import { handleQueue } from "../../workers/platform/queue";
import { FakeMessage } from "../consumer/helpers";

/**
 * The platform's queue() routes a batch by configuration: the subscription whose queue it came
 * from, if the platform consumes it (`consumer: "platform"`), to the hosted consumer of that name.
 * No queue name is written in the dispatch code.
 */

const platformSubscriptions = config.subscriptions.filter((s) => s.consumer === "platform");

describe("queue() dispatch from the config", () => {
  it("every subscription the platform consumes has a hosted consumer, and every hosted consumer a subscription", () => {
    expect(platformSubscriptions.map((s) => s.name).sort()).toEqual(Object.keys(hostedConsumers).sort());
  });

  it.each(platformSubscriptions.map((s) => s.name))("a batch from eventline-%s reaches that subscription's consumer", async (name) => {
    const consumer = hostedConsumers[name];
    if (consumer === undefined) throw new Error(`no hosted consumer ${name}`);
    // A message for another subscription: the consumer dead-letters it as not its own, so the
    // batch must have reached exactly this consumer (it names itself in the letter).
    const message = new FakeMessage({
      v: 1,
      subscription: "someone-else",
      topic: "events",
      partition: 0,
      sequence: 1,
      prev: 0,
      committedAt: 0,
      event: { id: "x", source: "/t", type: "t" },
    });
    const batch = {
      queue: queueNameOf(name),
      messages: [message],
      ackAll() {},
      retryAll() {},
      metadata: {},
    } as unknown as MessageBatch<unknown>;
    await handleQueue(batch, env);
    expect(message.acked).toBe(true);
    const letter = await env.DB.prepare(
      "SELECT subscription, reason FROM dead_letters WHERE subscription = ? ORDER BY dead_lettered_at DESC",
    )
      .bind(name)
      .first();
    expect(letter).toEqual({ subscription: name, reason: "invalid_message" });
  });

  it("a batch from a queue no subscription has is retried, not dropped", async () => {
    let retried = false;
    const batch = {
      queue: "eventline-nobody",
      messages: [],
      ackAll() {},
      retryAll() {
        retried = true;
      },
      metadata: {},
    } as unknown as MessageBatch<unknown>;
    await handleQueue(batch, env);
    expect(retried).toBe(true);
  });
});
