import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { defineConsumer, PermanentError } from "../../sdk/consumer";
import { delivery, FakeMessage } from "./helpers";

/**
 * The delivery-attempt records behind an event's trace (test/integration/trace.test.ts reads them
 * through the API): which outcomes the consumer SDK writes to delivery_attempts, when, and in which
 * D1 batch.
 */
describe("the consumer SDK records each settled delivery attempt", () => {
  const rows = async (subscription: string) =>
    (
      await env.DB.prepare(
        "SELECT attempt, outcome, error, at, sent_at, topic, partition, sequence FROM delivery_attempts WHERE subscription = ? ORDER BY id",
      )
        .bind(subscription)
        .all<{
          attempt: number;
          outcome: string;
          error: string | null;
          at: number;
          sent_at: number | null;
          topic: string;
          partition: number;
          sequence: number;
        }>()
    ).results;

  function consumer(
    subscription: string,
    handle: (attempt: number) => void,
    ordering: "none" | "partition" = "none",
    db: (e: Env) => D1Database = (e) => e.DB,
  ) {
    return defineConsumer<Env>({
      subscription,
      db,
      maxRetries: 2,
      ordering,
      backoff: { baseSeconds: 1, capSeconds: 1 },
      circuitBreaker: { failureThreshold: 100, openSeconds: 1 },
      handle: async (_event, { attempts }) => {
        handle(attempts);
        return [];
      },
    });
  }

  it("failed, then handled in the settle batch; a redelivery is a duplicate; sent_at is the queue's timestamp", async () => {
    const sdk = consumer("attempts-a", (n) => {
      if (n === 1) throw new Error(`boom ${"x".repeat(2000)}`);
    });
    const message = new FakeMessage(delivery({ subscription: "attempts-a", sequence: 7, prev: 0 }));
    expect(await message.deliverUntilSettled(sdk)).toEqual(["retried", "handled"]);
    message.acked = false;
    message.attempts++;
    expect(await sdk.process(message, env)).toBe("duplicate");

    const recorded = await rows("attempts-a");
    expect(recorded.map((r) => [r.attempt, r.outcome])).toEqual([
      [1, "failed"],
      [2, "handled"],
      [3, "duplicate"],
    ]);
    expect(recorded[0]?.error?.startsWith("Error: boom x")).toBe(true);
    expect(recorded[0]?.error?.length).toBe(500);
    expect(recorded[1]?.error).toBeNull();
    for (const r of recorded) {
      expect(r).toMatchObject({ topic: "events", partition: 0, sequence: 7, sent_at: message.timestamp.getTime() });
      expect(r.at).toBeGreaterThanOrEqual(message.timestamp.getTime());
    }
  });

  it("dead-lettered with the dead letter, permanent failures at once, and waits for order as deferred", async () => {
    const sdk = consumer("attempts-b", () => {
      throw new Error("always");
    });
    const doomed = new FakeMessage(delivery({ subscription: "attempts-b", sequence: 11, prev: 0 }));
    expect(await doomed.deliverUntilSettled(sdk)).toEqual(["retried", "retried", "dead_lettered"]);
    const permanent = consumer("attempts-c", () => {
      throw new PermanentError("never");
    });
    expect(await permanent.process(new FakeMessage(delivery({ subscription: "attempts-c", sequence: 12, prev: 0 })), env)).toBe(
      "dead_lettered",
    );
    const ordered = consumer("attempts-d", () => undefined, "partition");
    expect(await ordered.process(new FakeMessage(delivery({ subscription: "attempts-d", sequence: 14, prev: 13 })), env)).toBe("deferred");

    expect((await rows("attempts-b")).map((r) => r.outcome)).toEqual(["failed", "failed", "dead_lettered"]);
    expect((await rows("attempts-b"))[2]?.error).toBe("Error: always");
    expect((await rows("attempts-c")).map((r) => [r.outcome, r.error])).toEqual([["dead_lettered", "PermanentError: never"]]);
    expect((await rows("attempts-d")).map((r) => r.outcome)).toEqual(["deferred"]);
  });

  it("in queue(), outcomes that write nothing else ride along with a settle batch of the invocation, or one batch at its end", async () => {
    // Counts db.batch() round trips.
    let batches = 0;
    const counted = new Proxy(env.DB, {
      get(target, prop) {
        if (prop === "batch") {
          return (statements: D1PreparedStatement[]) => {
            batches++;
            return target.batch(statements);
          };
        }
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const sdk = consumer(
      "attempts-e",
      () => undefined,
      "partition",
      () => counted,
    );
    const batchOf = (messages: FakeMessage[]) =>
      ({ queue: "q", messages, ackAll() {}, retryAll() {}, metadata: {} }) as unknown as MessageBatch<unknown>;
    const seen = delivery({ subscription: "attempts-e", partition: 3, sequence: 1, prev: 0 });
    expect(await sdk.process(new FakeMessage(seen), env)).toBe("handled");
    // A redelivery of the handled one (a duplicate), its successor, and one whose predecessor never came.
    const again = new FakeMessage(seen);
    again.attempts = 2;
    const next = new FakeMessage(delivery({ subscription: "attempts-e", partition: 3, sequence: 2, prev: 1 }));
    const gap = new FakeMessage(delivery({ subscription: "attempts-e", partition: 4, sequence: 9, prev: 8 }));
    batches = 0;
    await sdk.queue(batchOf([again, next, gap]), env);
    // The prefetch, the batch commit of `next`, and one batch at the end for the records of the
    // duplicate and the deferral (settled after that commit); alone, each record would cost one.
    expect(batches).toBe(3);
    expect([again.acked, next.acked, gap.acked, gap.retries.length]).toEqual([true, true, false, 1]);
    // First-run successes write no record (their settlement stands for them, and the trace shows it).
    const recorded = (await rows("attempts-e")).map((r) => [r.partition, r.sequence, r.attempt, r.outcome]);
    expect(recorded).toHaveLength(2);
    expect(recorded).toEqual(
      expect.arrayContaining([
        [3, 1, 2, "duplicate"],
        [4, 9, 1, "deferred"],
      ]),
    );
    // Only a deferral: nothing to ride along with, so the invocation writes it at its end.
    gap.attempts = 2;
    batches = 0;
    await sdk.queue(batchOf([gap]), env);
    expect(batches).toBe(2);
    expect((await rows("attempts-e")).filter((r) => r.sequence === 9).map((r) => [r.attempt, r.outcome])).toEqual([
      [1, "deferred"],
      [2, "deferred"],
    ]);
  });

  it("records nothing with EVENTLINE_METRICS=off, and handles just the same", async () => {
    const off = { ...env, EVENTLINE_METRICS: "off" } as unknown as Env;
    let fail = true;
    const sdk = consumer("attempts-off", () => {
      if (fail) {
        fail = false;
        throw new Error("once");
      }
    });
    const message = new FakeMessage(delivery({ subscription: "attempts-off", sequence: 21, prev: 0 }));
    expect(await sdk.process(message, off)).toBe("retried");
    message.attempts++;
    expect(await sdk.process(message, off)).toBe("handled");
    expect(await rows("attempts-off")).toEqual([]);
    const settled = await env.DB.prepare("SELECT outcome FROM processed_events WHERE subscription = 'attempts-off'").all();
    expect(settled.results).toEqual([{ outcome: "handled" }]);
  });
});
