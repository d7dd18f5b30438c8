import { env } from "cloudflare:workers";
import { Validator } from "@cfworker/json-schema";
import { beforeAll, describe, expect, it } from "vitest";
import type { ReplayView } from "../../durable-objects/replay-job";
import { parseSchemaUri, schemaVersionOf } from "../../sdk/schema-uri";
import { invalidateSchemaCache, typeSchemas } from "../../workers/platform/schemas/registry";
import { testBindings } from "../bindings";
import {
  type Ack,
  event,
  expectAccepted,
  partitionKeyFor,
  postBatch,
  readAll,
  request,
  type StoredEvent,
  topicConfig,
  waitFor,
} from "../helpers";
import { freshType, registerVersion, uriOf } from "./dataschema-helpers";

/**
 * Old events stay readable and re-validatable after new versions are registered, and a replay
 * delivers each event with the `dataschema` it was stored with — to a subscription created after
 * the events were stored (a replay tested only against a subscription that had seen the events
 * could report "done" while delivering nothing).
 */

const TOPIC = "events";
const PARTITIONS = topicConfig(TOPIC).partitions;
const PARTITION = 2;
const json = (body: unknown) => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

/** v1 allows `amount` only; v2 adds an optional string `note`. */
const V1 = { type: "object", required: ["amount"], additionalProperties: false, properties: { amount: { type: "integer" } } };
const V2 = { ...V1, properties: { ...V1.properties, note: { type: "string" } } };

const type = freshType("history");
const key = partitionKeyFor(PARTITION, PARTITIONS, type);
const v1Events = [1, 2, 3].map((amount) => event({ type, partitionkey: key, data: { amount } }));
const v2Events = [
  event({ type, partitionkey: key, data: { amount: 4, note: "gift" } }),
  event({ type, partitionkey: key, data: { amount: 5, note: "express" } }),
];
// Named explicitly after v2 exists: stored as v1, checked against v1.
const namedV1 = event({ type, partitionkey: key, dataschema: uriOf(TOPIC, type, 1), data: { amount: 6 } });
const expected = new Map<string, number>([
  ...v1Events.map((e) => [String(e.id), 1] as const),
  ...v2Events.map((e) => [String(e.id), 2] as const),
  [String(namedV1.id), 1],
]);
let acks: Ack[] = [];

async function stored(): Promise<StoredEvent[]> {
  return (await readAll(TOPIC, PARTITION)).filter((e) => expected.has(e.id));
}

beforeAll(async () => {
  await registerVersion(TOPIC, type, 1, V1);
  acks = await expectAccepted(await postBatch(TOPIC, v1Events));
  await registerVersion(TOPIC, type, 2, V2);
  acks.push(...(await expectAccepted(await postBatch(TOPIC, [...v2Events, namedV1]))));
  expect(new Set(acks.map((a) => a.partition))).toEqual(new Set([PARTITION]));
});

describe("old events after new versions are registered", () => {
  it("read back with the dataschema they were validated against, and still validate against the schema it names", async () => {
    const events = await stored();
    expect(events).toHaveLength(expected.size);
    for (const e of events) {
      expect(schemaVersionOf({ dataschema: e.dataschema }), e.id).toBe(expected.get(e.id));
      expect(e.dataschema).toBe(uriOf(TOPIC, type, expected.get(e.id) ?? 0));
    }
    // Re-validation: the schema the URI names, fetched through the registry's read side (fresh).
    invalidateSchemaCache();
    const versions = await typeSchemas(env.DB, topicConfig(TOPIC), type, { fresh: true });
    expect(versions?.versions.map((v) => v.version)).toEqual([1, 2]);
    const schemaOf = (uri: unknown) => {
      const ref = parseSchemaUri(String(uri));
      const version = versions?.versions.find((v) => v.version === ref?.version);
      expect(version, String(uri)).toBeDefined();
      return version?.schema as Record<string, unknown>;
    };
    for (const e of events) expect(new Validator(schemaOf(e.dataschema), "2020-12").validate(e.data).valid, e.id).toBe(true);
    // The version matters: a v2 event (with a note) is not valid under v1, which old events still name.
    const v2 = events.find((e) => e.id === v2Events[0]?.id);
    expect(new Validator(schemaOf(uriOf(TOPIC, type, 1)), "2020-12").validate(v2?.data).valid).toBe(false);
  });
});

describe("a replay to a subscription created after the events", () => {
  it("delivers each event once, with the dataschema it was stored with", async () => {
    const name = `ds-replay-${type.split(".")[1]}`;
    const created = await request(
      "/v1/subscriptions",
      json({ name, topic: TOPIC, filter: { type: [type] }, webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/${name}` } }),
    );
    expect(created.status, await created.clone().text()).toBe(201);
    const sequences = acks.map((a) => a.sequence).sort((a, b) => a - b);
    const res = await request(
      "/v1/replays",
      json({
        topic: TOPIC,
        partitions: [PARTITION],
        from: { sequence: sequences[0] },
        to: { sequence: sequences.at(-1) },
        subscription: name,
      }),
    );
    expect(res.status, await res.clone().text()).toBe(201);
    const job = (await res.json()) as ReplayView;
    const done = await waitFor(
      async () => (await (await request(`/v1/replays/${job.id}`)).json()) as ReplayView,
      (v) => v.state !== "running",
      20_000,
    );
    expect(done).toMatchObject({ state: "done", sent: expected.size, handled: expected.size, deadLettered: 0 });

    const received = (await (await fetch(`${testBindings.WEBHOOK_SINK}/control/${name}`)).json()) as { body: string }[];
    const bodies = received.map((r) => JSON.parse(r.body) as { id: string; dataschema?: string });
    expect(bodies).toHaveLength(expected.size);
    expect(new Set(bodies.map((b) => b.id))).toEqual(new Set(expected.keys()));
    const storedSchemas = new Map((await stored()).map((e) => [e.id, e.dataschema]));
    for (const b of bodies) {
      expect(b.dataschema, b.id).toBe(storedSchemas.get(b.id));
      expect(schemaVersionOf(b), b.id).toBe(expected.get(b.id));
    }
  });
});
