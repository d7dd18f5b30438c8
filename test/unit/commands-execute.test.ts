import { describe, expect, it } from "vitest";
import type { CommandInput, CommandOutcome } from "../../durable-objects/partition-log";
import config from "../../eventline.config";
import { createLogger } from "../../sdk/logger";
import { EventlineError } from "../../shared/errors";
import { ordersAggregate } from "../../workers/examples/orders/aggregate";
import { executeCommand } from "../../workers/platform/commands/execute";

/**
 * The Worker half of a command (ADR 0040): one call to the stream's partition log, whose answer
 * becomes the HTTP contract's result or problem. The partition log is stood in for by a stub that
 * answers what each case needs.
 */

function envAnswering(answer: (input: CommandInput) => Promise<CommandOutcome>) {
  const calls: { name: string; input: CommandInput }[] = [];
  const env = {
    PARTITION_LOG: {
      getByName: (name: string) => ({
        command: (input: CommandInput) => {
          calls.push({ name, input });
          return answer(input);
        },
      }),
    },
  } as unknown as Env;
  return { env, calls };
}

const options = {
  config,
  correlationId: "req-1",
  traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
  origin: "https://eventline.example",
  log: createLogger({}, () => {}),
};

async function failure(outcome: CommandOutcome | Error): Promise<EventlineError> {
  const { env } = envAnswering(async () => {
    if (outcome instanceof Error) throw outcome;
    return outcome;
  });
  try {
    await executeCommand(env, ordersAggregate, "ord_1", { kind: "ship" }, options);
  } catch (err) {
    if (err instanceof EventlineError) return err;
    throw err;
  }
  throw new Error("the command did not fail");
}

describe("executeCommand", () => {
  it("makes one call to the stream's partition log, naming the aggregate, and returns its result with the partition", async () => {
    const { env, calls } = envAnswering(async () => ({
      ok: true,
      version: 3,
      sequence: 17,
      events: [{ id: "k.0", type: "orders.shipped", streamVersion: 3, sequence: 17 }],
      conflictRetries: 0,
      replayed: false,
    }));
    const result = await executeCommand(env, ordersAggregate, "ord_1", { kind: "ship" }, { ...options, idempotencyKey: "k" });
    expect(calls).toHaveLength(1);
    const call = calls[0];
    expect(call?.name).toBe(`orders/${call?.input.partition}`);
    expect(call?.input).toMatchObject({
      aggregate: "orders",
      topic: "orders",
      subject: "ord_1",
      command: { kind: "ship" },
      idempotencyKey: "k",
      correlationId: "req-1",
    });
    expect(result).toEqual({
      subject: "ord_1",
      partition: call?.input.partition,
      version: 3,
      sequence: 17,
      events: [{ id: "k.0", type: "orders.shipped", streamVersion: 3, sequence: 17 }],
      conflictRetries: 0,
      replayed: false,
    });
  });

  it("answers the same statuses as before: 404 and 422 for domain refusals, 409 with currentVersion and attempts, 503, topic rules", async () => {
    const notFound = await failure({ ok: false, code: "rejected", reason: "not_found", detail: "no such order" });
    expect([notFound.status, notFound.detail]).toEqual([404, "no such order"]);
    const rejected = await failure({ ok: false, code: "rejected", reason: "rejected", detail: "order is paid" });
    expect([rejected.status, rejected.code, rejected.options.extensions]).toEqual([422, "command_rejected", { reason: "rejected" }]);
    const conflict = await failure({
      ok: false,
      code: "version_conflict",
      detail: "stream moved",
      currentVersion: 7,
      expectedVersion: 6,
      attempts: 5,
    });
    expect(conflict.status).toBe(409);
    expect(conflict.options.extensions).toMatchObject({ subject: "ord_1", currentVersion: 7, expectedVersion: 6, attempts: 5 });
    const overloaded = await failure({ ok: false, code: "overloaded", detail: "busy", retryAfter: 2 });
    expect([overloaded.status, overloaded.options.retryAfter]).toEqual([503, 2]);
    const schema = await failure({
      ok: false,
      code: "problem",
      problem: { code: "schema_violation", detail: "bad data", issues: [{ path: "/0/data", message: "x" }] },
    });
    expect([schema.status, schema.options.issues]).toEqual([422, [{ path: "/0/data", message: "x" }]]);
  });

  it("turns a call the runtime flags as overloaded or retryable into 503; any other failure is not hidden", async () => {
    const flagged = Object.assign(new Error("object reset"), { retryable: true });
    expect((await failure(flagged)).status).toBe(503);
    await expect(failure(new Error("bug"))).rejects.toThrow("bug");
  });
});
