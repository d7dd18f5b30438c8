import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  INTERNAL_INPUTS_TYPE,
  type InternalBatch,
  inputJson,
  internalCloudEvent,
  internalMembers,
  leanApplies,
  packBatches,
  prepareInternalBatches,
} from "../../durable-objects/processor/internal-events";
import config from "../../eventline.config";
import { type EventlineConfig, findTopic, type TopicConfig } from "../../shared/config";
import { EventlineError } from "../../shared/errors";
import { canonicalJson, canonicalMembers, joinMembers, sha256Hex } from "../../shared/json";
import { partitionFor } from "../../shared/partitioner";
import { processorPlans, type Repartitioned, repartitioned } from "../../shared/processors";
import { configSource } from "../../workers/platform/ingest/data-schema";
import { prepareEvents } from "../../workers/platform/ingest/parse";

/**
 * The re-partition stage's lean preparation of internal batches against `prepareEvents`, the
 * general path it replaces: the same stored members, content hash, partition, size refusal and
 * in-batch duplicate refusal, so the internal topic stores the same bytes and answers a re-sent
 * run the same way (duplicate, not conflict). And how a run's inputs are packed into batches.
 */

const internal = findTopic(config, "processor.revenue-per-minute");
if (internal === undefined) throw new Error("the shipped config has no internal topic for revenue-per-minute");
const topic: TopicConfig = internal;
const TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const SOURCE = "/eventline/processors/revenue-per-minute/input";

function general(batches: InternalBatch[], t: TopicConfig = topic, cfg: EventlineConfig = config) {
  return prepareEvents(batches.map(internalCloudEvent), t, cfg, { traceparent: TRACE, batch: true, schemas: configSource(t, undefined) });
}
const lean = (batches: InternalBatch[], t: TopicConfig = topic, cfg: EventlineConfig = config) =>
  prepareInternalBatches(
    batches.map((batch) => ({ batch })),
    t,
    cfg,
    TRACE,
  );

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
const input: fc.Arbitrary<InternalBatch> = fc
  .record({
    topic: fc.constantFrom("orders", "events"),
    partition: fc.nat({ max: 7 }),
    sequence: fc.integer({ min: 1, max: 1e9 }),
    inputs: fc.array(data, { minLength: 1, maxLength: 5 }),
  })
  .map(({ topic: t, partition, sequence, inputs }) => ({ id: `${t}/${partition}/${sequence}-${sequence + 9}`, source: SOURCE, inputs }));
/** Distinct ids, as a run's batches are. */
const batch = fc.uniqueArray(input, { minLength: 1, maxLength: 8, selector: (i) => i.id });

const one = (key: string, sequence = 1): Repartitioned => ({
  partition: 0,
  sequence,
  committedAt: 1,
  id: `x${sequence}`,
  key,
  eventTime: 1,
});

describe("internal batches prepared for the internal topic", () => {
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
        for (const d of i.inputs) expect(inputJson(d)).toBe(canonicalJson(d));
      }),
      { numRuns: 500 },
    );
  });

  it("is what prepareEvents makes of the same events: members, hash, partition, everything", async () => {
    await fc.assert(
      fc.asyncProperty(batch, async (batches) => {
        const prepared = await lean(batches);
        expect(prepared).toEqual(await general(batches));
        // The stored bytes and the hash by their definitions.
        for (const [n, p] of prepared.entries()) {
          const event = internalCloudEvent(batches[n] as InternalBatch) as unknown as Record<string, unknown>;
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
    const inputs: Repartitioned[] = [];
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
      inputs.push(r);
    }
    const packed = packBatches(inputs, { topic: "orders", partition: 0, source: SOURCE, partitions: topic.partitions });
    expect(await prepareInternalBatches(packed, topic, config, TRACE)).toEqual(await general(packed.map((p) => p.batch)));
  });

  it("refuses an event over the size limit as the general path does", async () => {
    const small: EventlineConfig = { ...config, limits: { ...config.limits, maxEventBytes: 400 } };
    const big: InternalBatch = { id: "orders/0/1-1", source: SOURCE, inputs: [one("k".repeat(300))] };
    const ok: InternalBatch = { ...big, id: "orders/0/2-2", inputs: [one("k", 2)] };
    const refused = await lean([ok, big], topic, small).catch((e: unknown) => e);
    const want = await general([ok, big], topic, small).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(EventlineError);
    expect(want).toBeInstanceOf(EventlineError);
    expect(refused).toEqual(want);
    expect((refused as EventlineError).message).toBe((want as EventlineError).message);
    expect((refused as EventlineError).code).toBe("payload_too_large");
  });

  it("refuses one id twice with different content, and accepts it twice with the same, as the general path does", async () => {
    const a: InternalBatch = { id: "orders/0/1-1", source: SOURCE, inputs: [one("k")] };
    const b: InternalBatch = { ...a, inputs: [one("other")] };
    const refused = await lean([a, b]).catch((e: unknown) => e);
    const want = await general([a, b]).catch((e: unknown) => e);
    expect((refused as EventlineError).code).toBe("duplicate_conflict");
    expect(refused).toEqual(want);
    expect((refused as EventlineError).message).toBe((want as EventlineError).message);
    expect(await lean([a, a])).toEqual(await general([a, a]));
  });

  it("takes the general path on a topic where schemas or sensitive fields could apply", async () => {
    const strict: TopicConfig = { ...topic, strictTypes: true };
    const sensitive: TopicConfig = { ...topic, sensitive: { [INTERNAL_INPUTS_TYPE]: ["/key"] } } as TopicConfig;
    const typed: TopicConfig = { ...topic, schemaVersions: { ...topic.schemaVersions, [INTERNAL_INPUTS_TYPE]: [] } };
    expect(leanApplies(strict)).toBe(false);
    expect(leanApplies(sensitive)).toBe(false);
    expect(leanApplies(typed)).toBe(true); // declared with no version: nothing to check
    const a: InternalBatch = { id: "orders/0/1-1", source: SOURCE, inputs: [one("k")] };
    const refused = await lean([a], strict).catch((e: unknown) => e);
    expect((refused as EventlineError).code).toBe("schema_violation");
  });
});

describe("a run's inputs packed into internal batches", () => {
  const at = { topic: "orders", partition: 3, source: SOURCE, partitions: 4 };
  const inputsArb = fc
    .array(
      fc.record({ key: fc.constantFrom("EUR", "USD", "GBP", "JPY", "CHF", "k1", "k2", "日本円"), gap: fc.integer({ min: 1, max: 3 }) }),
      {
        maxLength: 60,
      },
    )
    .map((xs) => {
      let sequence = 0;
      return xs.map(({ key, gap }) => {
        sequence += gap;
        return one(key, sequence);
      });
    });

  it("puts each input once, in one batch of its key's partition, in input order, within the limits, named by its first and last", () => {
    fc.assert(
      fc.property(inputsArb, fc.integer({ min: 1, max: 7 }), fc.integer({ min: 60, max: 600 }), (inputs, maxInputs, maxBytes) => {
        const packed = packBatches(inputs, at, { maxInputs, maxBytes });
        expect(packed.flatMap((p) => p.batch.inputs).sort((x, y) => x.sequence - y.sequence)).toEqual(inputs);
        for (const { batch, texts } of packed) {
          const partition = partitionFor({ id: batch.id, partitionkey: batch.inputs[0]?.key }, at.partitions);
          for (const i of batch.inputs) expect(partitionFor({ id: i.id, partitionkey: i.key }, at.partitions)).toBe(partition);
          const sequences = batch.inputs.map((i) => i.sequence);
          expect(sequences).toEqual([...sequences].sort((x, y) => x - y));
          expect(batch.id).toBe(`orders/3/${sequences[0]}-${sequences.at(-1)}`);
          expect(batch.source).toBe(SOURCE);
          expect(batch.inputs.length).toBeLessThanOrEqual(maxInputs);
          expect(texts).toEqual(batch.inputs.map(inputJson));
          // One input over the byte budget still travels, alone.
          if (batch.inputs.length > 1) expect(texts.reduce((n, t) => n + t.length + 1, 0)).toBeLessThanOrEqual(maxBytes);
        }
        // Batches of one partition follow each other in input order.
        for (let p = 0; p < at.partitions; p++) {
          const mine = packed.filter((x) => partitionFor({ id: "", partitionkey: x.batch.inputs[0]?.key }, at.partitions) === p);
          const flat = mine.flatMap((x) => x.batch.inputs.map((i) => i.sequence));
          expect(flat).toEqual([...flat].sort((x, y) => x - y));
        }
      }),
      { numRuns: 300 },
    );
  });

  it("packs the same run into the same batches (a run sent again appends the same ids and bytes)", () => {
    fc.assert(
      fc.property(inputsArb, (inputs) => {
        expect(packBatches(inputs, at)).toEqual(packBatches(structuredClone(inputs), at));
      }),
    );
  });
});
