import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { deliver, row } from "./example-helpers";
import { delivery } from "./helpers";

const greeting = (sequence: number, prev: number, subject: string, message: string) =>
  delivery({
    subscription: "greetings",
    topic: "events",
    partition: 2,
    sequence,
    prev,
    event: { specversion: "1.0", id: `greet-${sequence}`, source: "/people", type: "com.example.greeting", subject, data: { message } },
  });

describe("example consumer Worker", () => {
  it("applies a shuffled batch in sequence order, exactly once, and acks every message", async () => {
    const chain = [greeting(3, 0, "ada", "hello"), greeting(7, 3, "ada", "hi again"), greeting(8, 7, "ada", "bye")];
    const result = await deliver([chain[2], chain[0], chain[1]]);
    expect(result.explicitAcks).toHaveLength(3);
    expect(result.retryMessages).toEqual([]);
    expect(await row("ada")).toEqual({ greetings: 3, last_message: "bye", last_sequence: 8 });

    const again = await deliver([chain[1]], 2);
    expect(again.explicitAcks).toHaveLength(1);
    expect(await row("ada")).toEqual({ greetings: 3, last_message: "bye", last_sequence: 8 });
  });

  it("holds back an event whose predecessor has not arrived, then applies both in order", async () => {
    const later = greeting(12, 10, "bob", "second");
    const held = await deliver([later]);
    expect(held.retryMessages).toHaveLength(1);
    expect(await row("bob")).toBeNull();
    await deliver([greeting(10, 8, "bob", "first")]);
    await deliver([later], 2);
    expect(await row("bob")).toEqual({ greetings: 2, last_message: "second", last_sequence: 12 });
  });

  it("dead-letters a greeting without a message (schema) instead of retrying it", async () => {
    const bad = delivery({
      subscription: "greetings",
      partition: 1,
      sequence: 1,
      prev: 0,
      event: { specversion: "1.0", id: "greet-bad", source: "/people", type: "com.example.greeting", subject: "eve", data: {} },
    });
    const result = await deliver([bad]);
    expect(result.explicitAcks).toHaveLength(1);
    expect(result.retryMessages).toEqual([]);
    const letter = await env.DB.prepare("SELECT reason, event_id FROM dead_letters WHERE subscription = 'greetings'").first();
    expect(letter).toEqual({ reason: "permanent", event_id: "greet-bad" });
  });
});
