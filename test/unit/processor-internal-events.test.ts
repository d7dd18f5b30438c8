import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  INTERNAL_INPUT_TYPE,
  type InternalInput,
  internalCloudEvent,
  internalMembers,
  leanApplies,
  prepareInternalInputs,
} from "../../durable-objects/processor/internal-events";
import config from "../../eventline.config";
import { type EventlineConfig, findTopic, type TopicConfig } from "../../shared/config";
import { EventlineError } from "../../shared/errors";
import { canonicalJson, canonicalMembers, joinMembers, sha256Hex } from "../../shared/json";
import { processorPlans, type Repartitioned, repartitioned } from "../../shared/processors";
import { configSource } from "../../workers/platform/ingest/data-schema";
import { prepareEvents } from "../../workers/platform/ingest/parse";

/**
 * The re-partition stage's lean preparation of internal inputs against `prepareEvents`, the
 * general path it replaces: the same stored members, content hash, partition, size refusal and
 * in-batch duplicate refusal, so the internal topic stores the same bytes and answers a re-sent
 * run the same way (duplicate, not conflict).
 */

const internal = findTopic(config, "processor.revenue-per-minute");
if (internal === undefined) throw new Error("the shipped config has no internal topic for revenue-per-minute");
const topic: TopicConfig = internal;
const TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const SOURCE = "/eventline/processors/revenue-per-minute/input";

function general(inputs: InternalInput[], t: TopicConfig = topic, cfg: EventlineConfig = config) {
  return prepareEvents(inputs.map(internalCloudEvent), t, cfg, { traceparent: TRACE, batch: true, schemas: configSource(t, undefined) });
}

const text = fc.string({ maxLength: 12, unit: fc.constantFrom("a", "Z", "0", "é", "€", "😀", '"', "\\", "\n", "\u2028", "/") });
const scalar = fc.oneof(
  text,
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => (Object.is(n, -0) ? 0 : n)),
  fc.boolean(),
  fc.constant(null),
);
const data: fc.Arbitrary<Repartitioned> = fc
  .record(
    {
      partition: fc.nat({ max: 64 }),
      sequence: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      committedAt: fc.integer({ min: 0, max: 4_000_000_000_000 }),
      id: text,
      key: text,
      eventTime: fc.integer({ min: -1_000_000, max: 4_000_000_000_000 }),
      value: fc.dictionary(fc.oneof(text, fc.constantFrom("/data/amount", "0", "10", "__proto__x")), scalar, { maxKeys: 4 }),
      role: fc.constantFrom("a" as const, "b" as const),
      trace: fc.record(
        { traceparent: fc.constant(TRACE), tracestate: fc.constantFrom("a=1", "congo=t61rcWkgMzE"), correlationid: text },
        { requiredKeys: [] },
      ),
    },
    { requiredKeys: ["partition", "sequence", "committedAt", "id", "key", "eventTime"] },
  )
  .map((d) => JSON.parse(JSON.stringify(d)) as Repartitioned);
const input: fc.Arbitrary<InternalInput> = fc
  .record({ topic: fc.constantFrom("orders", "events"), partition: fc.nat({ max: 7 }), sequence: fc.integer({ min: 1, max: 1e9 }), data })
  .map(({ topic: t, partition, sequence, data: d }) => ({ id: `${t}/${partition}/${sequence}`, source: SOURCE, data: d }));
/** Distinct ids, as a run's positions are. */
const batch = fc.uniqueArray(input, { minLength: 1, maxLength: 12, selector: (i) => i.id });

describe("internal inputs prepared for the internal topic", () => {
  it("the shipped internal topics take the lean path", () => {
    for (const plan of processorPlans(config).values()) {
      const t = findTopic(config, plan.repartitionTopic);
      expect(t?.internal).toBe(true);
      expect(leanApplies(t as TopicConfig)).toBe(true);
    }
  });

  it("members are the canonical members of the CloudEvent the general path is given", () => {
    fc.assert(
      fc.property(input, (i) => {
        expect(internalMembers(i)).toEqual(canonicalMembers(internalCloudEvent(i) as unknown as Record<string, unknown>));
      }),
      { numRuns: 500 },
    );
  });

  it("is what prepareEvents makes of the same events: members, hash, partition, everything", async () => {
    await fc.assert(
      fc.asyncProperty(batch, async (inputs) => {
        const lean = await prepareInternalInputs(inputs, topic, config, TRACE);
        expect(lean).toEqual(await general(inputs));
        // The stored bytes and the hash by their definitions.
        for (const [n, p] of lean.entries()) {
          const event = internalCloudEvent(inputs[n] as InternalInput) as unknown as Record<string, unknown>;
          expect(joinMembers(p.members)).toBe(canonicalJson({ ...event, traceparent: TRACE }));
          expect(p.hash).toBe(await sha256Hex(canonicalJson(event)));
        }
      }),
      { numRuns: 150 },
    );
  });

  it("is the same for what the re-partition stage extracts from real input events", async () => {
    const plan = processorPlans(config).get("revenue-per-minute");
    if (plan === undefined) throw new Error("no revenue-per-minute plan");
    const inputs: InternalInput[] = [];
    for (let n = 1; n <= 40; n++) {
      const event = {
        specversion: "1.0",
        id: `ord-${n}`,
        source: "/shop",
        type: "orders.paid",
        time: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
        ...(n % 3 === 0 && { traceparent: TRACE, tracestate: "a=1" }),
        ...(n % 4 === 0 && { correlationid: `c-${n}` }),
        data: { currency: ["EUR", "USD", "日本円"][n % 3], amount: n * 1.5, orderId: `o${n}` },
      };
      // Committed a second after its event time (an event time over watermark.maxAhead past its commit is a dead letter).
      const r = repartitioned(plan, event, { partition: n % 4, sequence: n, committedAt: Date.UTC(2026, 0, 1, 0, 0, n) + 1000 });
      if ("skip" in r) throw new Error("unexpected skip");
      inputs.push({ id: `orders/${n % 4}/${n}`, source: SOURCE, data: r });
    }
    expect(await prepareInternalInputs(inputs, topic, config, TRACE)).toEqual(await general(inputs));
  });

  it("refuses an event over the size limit as the general path does", async () => {
    const small: EventlineConfig = { ...config, limits: { ...config.limits, maxEventBytes: 400 } };
    const big: InternalInput = {
      id: "orders/0/1",
      source: SOURCE,
      data: { partition: 0, sequence: 1, committedAt: 1, id: "x", key: "k".repeat(300), eventTime: 1 },
    };
    const ok: InternalInput = { ...big, id: "orders/0/2", data: { ...big.data, key: "k" } };
    const lean = await prepareInternalInputs([ok, big], topic, small, TRACE).catch((e: unknown) => e);
    const want = await general([ok, big], topic, small).catch((e: unknown) => e);
    expect(lean).toBeInstanceOf(EventlineError);
    expect(want).toBeInstanceOf(EventlineError);
    expect(lean).toEqual(want);
    expect((lean as EventlineError).message).toBe((want as EventlineError).message);
    expect((lean as EventlineError).code).toBe("payload_too_large");
  });

  it("refuses one id twice with different content, and accepts it twice with the same, as the general path does", async () => {
    const a: InternalInput = {
      id: "orders/0/1",
      source: SOURCE,
      data: { partition: 0, sequence: 1, committedAt: 1, id: "x", key: "k", eventTime: 1 },
    };
    const b: InternalInput = { ...a, data: { ...a.data, key: "other" } };
    const lean = await prepareInternalInputs([a, b], topic, config, TRACE).catch((e: unknown) => e);
    const want = await general([a, b]).catch((e: unknown) => e);
    expect((lean as EventlineError).code).toBe("duplicate_conflict");
    expect(lean).toEqual(want);
    expect((lean as EventlineError).message).toBe((want as EventlineError).message);
    expect(await prepareInternalInputs([a, a], topic, config, TRACE)).toEqual(await general([a, a]));
  });

  it("takes the general path on a topic where schemas or sensitive fields could apply", async () => {
    const strict: TopicConfig = { ...topic, strictTypes: true };
    const sensitive: TopicConfig = { ...topic, sensitive: { [INTERNAL_INPUT_TYPE]: ["/key"] } } as TopicConfig;
    const typed: TopicConfig = { ...topic, schemaVersions: { ...topic.schemaVersions, [INTERNAL_INPUT_TYPE]: [] } };
    expect(leanApplies(strict)).toBe(false);
    expect(leanApplies(sensitive)).toBe(false);
    expect(leanApplies(typed)).toBe(true); // declared with no version: nothing to check
    const a: InternalInput = {
      id: "orders/0/1",
      source: SOURCE,
      data: { partition: 0, sequence: 1, committedAt: 1, id: "x", key: "k", eventTime: 1 },
    };
    const refused = await prepareInternalInputs([a], strict, config, TRACE).catch((e: unknown) => e);
    expect((refused as EventlineError).code).toBe("schema_violation");
  });
});
