import { env } from "cloudflare:workers";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { defineConsumer, PermanentError, UnsupportedSchemaVersionError } from "../../sdk/consumer";
import { schemaUri } from "../../sdk/schema-uri";
import { request } from "../helpers";
import { createEffectsTable, delivery, effect, effects, FakeMessage, resetConsumerState } from "./helpers";

/**
 * Schema version pinning (sdk/README.md "Pinning schema versions", ADR 0051): a consumer lists the
 * versions it reads per type; an event naming another version is dead-lettered at once with a
 * reason that says so, and the handler is told which version each event was validated against.
 */

beforeAll(createEffectsTable);
beforeEach(resetConsumerState);

// A configured subscription's name, so its dead letters can be read through GET …/dlq as an operator would.
const SUBSCRIPTION = "customer-summary";
const TYPE = "orders.placed";
const ORIGIN = "https://eventline.example";

const batchOf = (messages: FakeMessage[]) =>
  ({ queue: "q", messages, ackAll() {}, retryAll() {}, metadata: {} }) as unknown as MessageBatch<unknown>;

function placed(sequence: number, version: number | undefined, type = TYPE) {
  return new FakeMessage(
    delivery({
      subscription: SUBSCRIPTION,
      topic: "orders",
      sequence,
      prev: sequence - 1,
      event: {
        specversion: "1.0",
        id: `placed-${sequence}`,
        source: "/orders",
        type,
        data: { n: sequence },
        ...(version !== undefined && { dataschema: schemaUri(ORIGIN, "orders", type, version) }),
      },
    }),
  );
}

function pinnedConsumer(seen: [string, number | undefined][]) {
  return defineConsumer<Env>({
    subscription: SUBSCRIPTION,
    db: (e) => e.DB,
    maxRetries: 5,
    ordering: "partition",
    schemaVersions: { [TYPE]: [1, 2] },
    handle: async (event, ctx) => {
      seen.push([event.id, ctx.schemaVersion]);
      return [effect(ctx.db, event, ctx.delivery.sequence)];
    },
  });
}

const letters = async () =>
  (
    await env.DB.prepare("SELECT sequence, reason, error, attempts FROM dead_letters WHERE subscription = ? ORDER BY sequence")
      .bind(SUBSCRIPTION)
      .all()
  ).results;

describe("consumer SDK: schema version pinning", () => {
  it("handles v1 and v2, dead-letters v3 at once with the reason, and applies nothing twice on redelivery", async () => {
    const seen: [string, number | undefined][] = [];
    const consumer = pinnedConsumer(seen);
    const messages = [placed(1, 1), placed(2, 2), placed(3, 3)];
    await consumer.queue(batchOf(messages), env);
    expect(messages.every((m) => m.acked)).toBe(true);
    expect(messages.flatMap((m) => m.retries)).toEqual([]);

    expect(seen).toEqual([
      ["placed-1", 1],
      ["placed-2", 2],
    ]);
    expect((await effects()).map((e) => e.event_id)).toEqual(["placed-1", "placed-2"]);
    const reason = "orders.placed schema version 3 is not one this consumer reads (1, 2)";
    expect(await letters()).toEqual([
      { sequence: 3, reason: "unsupported_schema_version", error: `UnsupportedSchemaVersionError: ${reason}`, attempts: 1 },
    ]);
    // An operator sees it through the API (and `eventline dlq list`, which prints these fields).
    const dlq = (await (await request(`/v1/subscriptions/${SUBSCRIPTION}/dlq`)).json()) as {
      deadLetters: { sequence: number; reason: string; error: string }[];
    };
    expect(dlq.deadLetters.map(({ sequence, reason, error }) => ({ sequence, reason, error }))).toEqual([
      { sequence: 3, reason: "unsupported_schema_version", error: `UnsupportedSchemaVersionError: ${reason}` },
    ]);

    // Queues delivers the same three again: nothing is applied twice, no second letter.
    const again = [placed(1, 1), placed(2, 2), placed(3, 3)];
    for (const m of again) m.attempts = 2;
    await consumer.queue(batchOf(again), env);
    expect(again.every((m) => m.acked)).toBe(true);
    expect(seen).toHaveLength(2);
    expect(await effects()).toHaveLength(2);
    expect(await letters()).toHaveLength(1);
  });

  it("message by message too: the error is a PermanentError, typed, with the type, version and pins", async () => {
    const seen: [string, number | undefined][] = [];
    const consumer = pinnedConsumer(seen);
    expect(await placed(1, 3).deliverUntilSettled(consumer)).toEqual(["dead_lettered"]);
    expect(await placed(2, 2).deliverUntilSettled(consumer)).toEqual(["handled"]);
    expect(seen).toEqual([["placed-2", 2]]);
    const err = new UnsupportedSchemaVersionError(TYPE, 3, [1, 2]);
    expect(err).toBeInstanceOf(PermanentError);
    expect({ type: err.type, version: err.version, supported: err.supported, name: err.name }).toEqual({
      type: TYPE,
      version: 3,
      supported: [1, 2],
      name: "UnsupportedSchemaVersionError",
    });
  });

  it("accepts events with no Eventline dataschema (stored before events carried one) and types it does not pin", async () => {
    const seen: [string, number | undefined][] = [];
    const consumer = pinnedConsumer(seen);
    const legacy = placed(1, undefined);
    const foreign = new FakeMessage(
      delivery({
        subscription: SUBSCRIPTION,
        topic: "orders",
        sequence: 2,
        prev: 1,
        event: { specversion: "1.0", id: "placed-2", source: "/orders", type: TYPE, dataschema: "https://schemas.example.com/placed.json" },
      }),
    );
    const unpinned = placed(3, 7, "orders.paid");
    // An Eventline URI of another type is not this event's version.
    const otherType = new FakeMessage(
      delivery({
        subscription: SUBSCRIPTION,
        topic: "orders",
        sequence: 4,
        prev: 3,
        event: {
          specversion: "1.0",
          id: "placed-4",
          source: "/orders",
          type: TYPE,
          dataschema: schemaUri(ORIGIN, "orders", "orders.paid", 9),
        },
      }),
    );
    await consumer.queue(batchOf([legacy, foreign, unpinned, otherType]), env);
    expect(seen).toEqual([
      ["placed-1", undefined],
      ["placed-2", undefined],
      ["placed-3", 7],
      ["placed-4", undefined],
    ]);
    expect(await letters()).toEqual([]);
  });

  it("refuses pins that list no version or a non-integer one when the consumer is defined", () => {
    const define = (versions: number[]) => () =>
      defineConsumer<Env>({
        subscription: "x",
        db: (e) => e.DB,
        maxRetries: 1,
        schemaVersions: { [TYPE]: versions },
        handle: async () => [],
      });
    expect(define([])).toThrow(TypeError);
    expect(define([1, 0])).toThrow('schemaVersions["orders.placed"] must list positive integer versions');
    expect(define([1.5])).toThrow(TypeError);
    expect(define([1, 2])).not.toThrow();
  });
});
