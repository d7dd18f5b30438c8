import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { PermanentError } from "../../sdk";
import { failureAsked } from "../../workers/example-consumer/index";
import { deliver, row } from "./example-helpers";
import { delivery } from "./helpers";

/**
 * The example consumer fails on demand (README "Watch a failure handled"): `data.fail` asks for N
 * failed attempts, a permanent failure until redriven, or a failure on every attempt.
 */

const greeting = (partition: number, subject: string, fail: unknown, extra: Record<string, unknown> = {}) =>
  delivery({
    subscription: "greetings",
    topic: "events",
    partition,
    sequence: 1,
    prev: 0,
    event: {
      specversion: "1.0",
      id: `fail-${subject}`,
      source: "/people",
      type: "com.example.greeting",
      subject,
      data: { message: `hello ${subject}`, fail },
    },
    ...extra,
  });

const letterOf = (eventId: string) =>
  env.DB.prepare("SELECT id, reason, attempts, error FROM dead_letters WHERE subscription = 'greetings' AND event_id = ?")
    .bind(eventId)
    .first<{ id: string; reason: string; attempts: number; error: string }>();

describe("example consumer: failure on demand", () => {
  it('"fail": 2 fails its first two attempts (retried with a backoff delay), then the greeting is handled once', async () => {
    const body = greeting(0, "fay", 2);
    for (const attempt of [1, 2]) {
      const result = await deliver([body], attempt);
      expect(result.explicitAcks).toEqual([]);
      expect(result.retryMessages).toHaveLength(1);
      expect(await row("fay")).toBeNull();
    }
    const third = await deliver([body], 3);
    expect(third.explicitAcks).toHaveLength(1);
    expect(third.retryMessages).toEqual([]);
    expect(await row("fay")).toEqual({ greetings: 1, last_message: "hello fay", last_sequence: 1 });
    expect(await letterOf("fail-fay")).toBeNull();
  });

  it('"fail": "until-redrive" is dead-lettered at once (permanent); its redrive is handled', async () => {
    const body = greeting(3, "ike", "until-redrive");
    const first = await deliver([body]);
    expect(first.explicitAcks).toHaveLength(1);
    expect(first.retryMessages).toEqual([]);
    const letter = await letterOf("fail-ike");
    expect(letter).toMatchObject({ reason: "permanent", attempts: 1, error: expect.stringContaining("until-redrive") });
    expect(await row("ike")).toBeNull();

    const redriven = await deliver([{ ...body, redrive: { deadLetterId: letter?.id ?? "" } }]);
    expect(redriven.explicitAcks).toHaveLength(1);
    expect(redriven.retryMessages).toEqual([]);
    // (The letter itself left the DLQ when the redrive route handed it to the queue.)
    expect(await row("ike")).toEqual({ greetings: 1, last_message: "hello ike", last_sequence: 1 });
  });

  it('"fail": "always" fails every attempt, a redrive\'s too', async () => {
    const body = greeting(1, "poe", "always");
    expect((await deliver([body])).retryMessages).toHaveLength(1);
    expect((await deliver([{ ...body, redrive: { deadLetterId: "dl-poe" } }], 2)).retryMessages).toHaveLength(1);
    expect(await row("poe")).toBeNull();
  });

  it("a fail value outside the documented ones fails the data schema: dead-lettered as permanent, never handled", async () => {
    const result = await deliver([greeting(2, "zed", "sometimes")]);
    expect(result.explicitAcks).toHaveLength(1);
    expect(await letterOf("fail-zed")).toMatchObject({ reason: "permanent" });
    expect(await row("zed")).toBeNull();
  });

  it("failureAsked: which attempts fail, and with which kind of error", () => {
    const data = (fail?: number | "until-redrive" | "always") => ({ message: "hi", ...(fail === undefined ? {} : { fail }) });
    expect(failureAsked(data(), 1, false)).toBeUndefined();
    expect(failureAsked(data(3), 3, false)?.message).toBe("failing on demand: attempt 3 of the first 3 (data.fail)");
    expect(failureAsked(data(3), 4, false)).toBeUndefined();
    expect(failureAsked(data(3), 1, false)).not.toBeInstanceOf(PermanentError);
    expect(failureAsked(data("until-redrive"), 7, false)).toBeInstanceOf(PermanentError);
    expect(failureAsked(data("until-redrive"), 1, true)).toBeUndefined();
    expect(failureAsked(data("always"), 1, true)).toBeInstanceOf(Error);
    expect(failureAsked(data("always"), 1, true)).not.toBeInstanceOf(PermanentError);
  });
});
