import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { invalidateSchemaCache } from "../../workers/platform/schemas/registry";
import { BASE, event, expectAccepted, expectProblem, postBatch, postStructured, request } from "../helpers";
import { freshType, heads, listOf, registerVersion, storedById, uriOf } from "./dataschema-helpers";

/**
 * Events carry their schema (docs/http-api.md "Data schemas", ADR 0051): ingest checks `data`
 * against the version `dataschema` names, or the latest when it is absent, refuses what names a
 * version the type does not have, and stores each event with the URI it was checked against.
 */

/** v1: `amount` required (any extra member allowed); v2 adds an optional integer `note`. */
const V1 = { type: "object", required: ["amount"], properties: { amount: { type: "number", minimum: 0 } } };
const V2 = { ...V1, properties: { ...V1.properties, note: { type: "integer" } } };

async function typedType(prefix: string): Promise<string> {
  const type = freshType(prefix);
  await registerVersion("events", type, 1, V1);
  await registerVersion("events", type, 2, V2);
  return type;
}

describe("ingest of a type with schema versions", () => {
  it("checks data against the version dataschema names and stores the producer's URI as sent", async () => {
    const type = await typedType("ds.named");
    // `note` is a string: v1 says nothing about it, v2 wants an integer.
    const v1Event = event({ type, dataschema: uriOf("events", type, 1), data: { amount: 5, note: "free text" } });
    const [ack] = await expectAccepted(await postStructured("events", v1Event));
    expect(ack?.duplicate).toBe(false);
    // Another origin is accepted (the same deployment may be reached under several hostnames) and kept as sent.
    const elsewhere = `https://eventline.example/v1/topics/events/types/${type}/schemas/2`;
    const v2Event = event({ type, dataschema: elsewhere, data: { amount: 1, note: 7 } });
    await expectAccepted(await postStructured("events", v2Event));
    const [stored1, stored2] = await storedById("events", 4, [String(v1Event.id), String(v2Event.id)]);
    expect(stored1?.dataschema).toBe(uriOf("events", type, 1));
    expect(stored2?.dataschema).toBe(elsewhere);

    // The same v1-shaped data named as v2 fails v2's check, at the member's JSON Pointer.
    const problem = await expectProblem(
      await postStructured("events", event({ type, dataschema: uriOf("events", type, 2), data: { amount: 5, note: "free text" } })),
      422,
    );
    expect(problem.code).toBe("schema_violation");
    expect(problem.issues?.map((i) => i.path)).toEqual(["/data/note"]);
  });

  it("uses the latest version when dataschema is absent and stamps its URI under the request's origin", async () => {
    const type = await typedType("ds.latest");
    const ok = event({ type, data: { amount: 2, note: 3 } });
    await expectAccepted(await postStructured("events", ok));
    const [stored] = await storedById("events", 4, [String(ok.id)]);
    expect(stored?.dataschema).toBe(`${BASE}/v1/topics/events/types/${type}/schemas/2`);
    expect(stored?.data).toEqual({ amount: 2, note: 3 });

    // Checked against v2 (the latest): a string note fails, a negative amount too; each issue under /data.
    const bad = await expectProblem(await postStructured("events", event({ type, data: { amount: -1, note: "x" } })), 422);
    expect(bad.issues?.map((i) => i.path).sort()).toEqual(["/data/amount", "/data/note"]);
    expect(bad.issues?.find((i) => i.path === "/data/note")?.message).toContain("integer");
  });

  it("refuses an unknown version, another type's URI and a foreign URI with 422 naming the URI and the versions; nothing stored", async () => {
    const type = await typedType("ds.refused");
    const other = await typedType("ds.other");
    const before = await heads("events");
    const cases = [
      { dataschema: uriOf("events", type, 3), says: "names version 3, which does not exist" },
      { dataschema: uriOf("events", other, 1), says: `names a schema of events/${other}, not of events/${type}` },
      { dataschema: uriOf("orders", type, 1), says: `names a schema of orders/${type}` },
      { dataschema: "https://schemas.example.com/amount.json", says: "is not an Eventline schema URI" },
      { dataschema: `${BASE}/v1/topics/events/types/${type}/schemas/1?x=1`, says: "is not an Eventline schema URI" },
    ];
    for (const { dataschema, says } of cases) {
      const problem = await expectProblem(await postStructured("events", event({ type, dataschema, data: { amount: 1 } })), 422);
      expect(problem.code).toBe("schema_violation");
      expect(problem.issues).toHaveLength(1);
      expect(problem.issues?.[0]?.path).toBe("/dataschema");
      const message = problem.issues?.[0]?.message ?? "";
      expect(message).toContain(dataschema);
      expect(message).toContain(says);
      expect(message).toContain(`type "${type}" has versions 1, 2: see ${listOf("events", type)}`);
      // The detail names it too, for clients that show only the detail.
      expect(problem.detail).toBe(`/dataschema: ${message}`);
    }
    expect(await heads("events")).toEqual(before);
  });

  it("leaves types without versions as they were: any absolute dataschema kept, none stamped", async () => {
    const type = freshType("ds.untyped");
    const withUri = event({ type, dataschema: "https://schemas.example.com/thing.json", data: { anything: ["goes"] } });
    const without = event({ type, data: "plain" });
    const binary = {
      specversion: "1.0",
      id: crypto.randomUUID(),
      source: "/tests",
      type,
      datacontenttype: "application/octet-stream",
      data_base64: "AAEC",
    };
    await expectAccepted(await postBatch("events", [withUri, without, binary]));
    const stored = await storedById("events", 4, [withUri.id, without.id, binary.id].map(String));
    expect(stored.map((e) => e.dataschema)).toEqual(["https://schemas.example.com/thing.json", undefined, undefined]);
    // A relative dataschema is still an envelope error (400), as before.
    await expectProblem(await postStructured("events", event({ type, dataschema: "/relative" })), 400);
    // An Eventline URI naming this very type names a version it does not have.
    const problem = await expectProblem(await postStructured("events", event({ type, dataschema: uriOf("events", type, 1) })), 422);
    expect(problem.issues).toEqual([
      {
        path: "/dataschema",
        message: `${uriOf("events", type, 1)} names version 1 of type "${type}", which has no schema versions: see ${listOf("events", type)}`,
      },
    ]);
  });

  it("checks a batch of mixed versions event by event, stamps only where dataschema was absent, and refuses it whole", async () => {
    const type = await typedType("ds.batch");
    const untyped = freshType("ds.batch-untyped");
    const events = [
      event({ type, dataschema: uriOf("events", type, 1), data: { amount: 1, note: "v1 allows it" } }),
      event({ type, dataschema: uriOf("events", type, 2), data: { amount: 2, note: 2 } }),
      event({ type, data: { amount: 3 } }),
      event({ type: untyped, data: { free: true } }),
    ];
    const acks = await expectAccepted(await postBatch("events", events));
    expect(acks.map((a) => a.duplicate)).toEqual([false, false, false, false]);
    const stored = await storedById(
      "events",
      4,
      events.map((e) => String(e.id)),
    );
    expect(stored.map((e) => e.dataschema)).toEqual([
      uriOf("events", type, 1),
      uriOf("events", type, 2),
      uriOf("events", type, 2),
      undefined,
    ]);

    const before = await heads("events");
    const refused = await expectProblem(
      await postBatch("events", [
        event({ type, data: { amount: 1 } }),
        event({ type, dataschema: uriOf("events", type, 9), data: { amount: 1 } }),
        event({ type, dataschema: uriOf("events", type, 1), data: { amount: "one" } }),
      ]),
      422,
    );
    expect(refused.issues?.map((i) => i.path)).toEqual(["/1/dataschema", "/2/data/amount"]);
    expect(await heads("events")).toEqual(before);
  });

  it("an event without data (absent or null) is checked as null against a runtime version: 422, or accepted where the schema takes null", async () => {
    const type = await typedType("ds.nodata");
    const { data: _omitted, ...withoutData } = event({ type });
    for (const body of [withoutData, { ...withoutData, id: crypto.randomUUID(), data: null }]) {
      const problem = await expectProblem(await postStructured("events", body), 422);
      expect(problem.code).toBe("schema_violation");
      expect(problem.issues).toEqual([
        { path: "/data", message: "is missing (no data, or null), and this version's schema does not accept null" },
      ]);
    }
    // The same in a batch (indexed) and in binary mode with an empty body: never a 5xx.
    const batch = await expectProblem(
      await postBatch("events", [event({ type, data: { amount: 1 } }), { ...withoutData, id: crypto.randomUUID() }]),
      422,
    );
    expect(batch.issues?.map((i) => i.path)).toEqual(["/1/data"]);
    const binary = await request("/v1/topics/events/events", {
      method: "POST",
      headers: { "ce-specversion": "1.0", "ce-id": crypto.randomUUID(), "ce-source": "/tests", "ce-type": type },
    });
    expect(binary.status).toBe(422);

    const nullable = freshType("ds.null");
    await registerVersion("events", nullable, 1, { type: "null" });
    const { data: _none, ...noData } = event({ type: nullable });
    await expectAccepted(await postStructured("events", noData));
  });

  it("maps a runtime schema's failures to JSON Pointers under /data, nested ones included", async () => {
    const type = freshType("ds.nested");
    await registerVersion("events", type, 1, {
      type: "object",
      required: ["lines"],
      additionalProperties: false,
      properties: {
        lines: { type: "array", items: { type: "object", required: ["qty"], properties: { qty: { type: "integer" } } } },
        "a/b": { type: "string" },
      },
    });
    const problem = await expectProblem(
      await postStructured("events", event({ type, data: { lines: [{ qty: 1.5 }, {}], "a/b": 1, extra: true } })),
      422,
    );
    expect(problem.issues?.map((i) => i.path).sort()).toEqual(["/data/a~1b", "/data/extra", "/data/lines/0/qty", "/data/lines/1"]);
    expect(problem.issues?.find((i) => i.path === "/data/lines/1")?.message).toContain('required property "qty"');
    expect(problem.issues?.find((i) => i.path === "/data/extra")?.message).toBe("is not allowed by the schema");
  });

  it("checks config-declared versions with their zod schema and stamps them too (orders)", async () => {
    // No subject: outside any order stream, so the orders projections leave it alone.
    const shipped = event({ type: "orders.shipped", data: { orderId: "ord_1", carrier: "DHL" } });
    await expectAccepted(await postStructured("orders", shipped));
    const [stored] = await storedById("orders", 4, [String(shipped.id)]);
    expect(stored?.dataschema).toBe(`${BASE}/v1/topics/orders/types/orders.shipped/schemas/1`);
    // zod's refinement (well-formed Unicode), which JSON Schema cannot say, still applies.
    const lone = event({ type: "orders.shipped", dataschema: uriOf("orders", "orders.shipped", 1), data: { orderId: "\ud800" } });
    const problem = await expectProblem(await postStructured("orders", lone), 422);
    expect(problem.issues?.[0]).toMatchObject({ path: "/data/orderId", message: expect.stringContaining("well-formed") });
  });

  it("strictTypes: refuses a type with no version, accepts it once a version is registered at runtime", async () => {
    const type = freshType("orders.refunded");
    const refund = () => event({ type, data: { orderId: "ord_1", amount: 100 } });
    const refused = await expectProblem(await postStructured("orders", refund()), 422);
    expect(refused.issues?.[0]?.path).toBe("/type");
    expect(refused.issues?.[0]?.message).toContain(`does not accept type "${type}"`);

    await registerVersion("orders", type, 1, {
      type: "object",
      required: ["orderId", "amount"],
      properties: { amount: { type: "integer" } },
    });
    const ok = refund();
    await expectAccepted(await postStructured("orders", ok));
    const [stored] = await storedById("orders", 4, [String(ok.id)]);
    expect(stored?.dataschema).toBe(uriOf("orders", type, 1));
    const bad = await expectProblem(await postStructured("orders", event({ type, data: { orderId: "ord_1", amount: 1.5 } })), 422);
    expect(bad.issues?.map((i) => i.path)).toEqual(["/data/amount"]);
  });

  it("stream appends are checked and stamped like ingest", async () => {
    const type = await typedType("ds.stream");
    const subject = `ds-stream-${crypto.randomUUID()}`;
    const appended = event({ type, data: { amount: 4 } });
    const res = await request(`/v1/topics/events/streams/${subject}/events`, {
      method: "POST",
      headers: { "content-type": "application/cloudevents+json" },
      body: JSON.stringify(appended),
    });
    expect(res.status, await res.clone().text()).toBe(201);
    const [stored] = await storedById("events", 4, [String(appended.id)]);
    expect(stored?.dataschema).toBe(uriOf("events", type, 2));
    const refused = await request(`/v1/topics/events/streams/${subject}/events`, {
      method: "POST",
      headers: { "content-type": "application/cloudevents+json" },
      body: JSON.stringify(event({ type, dataschema: uriOf("events", type, 5), data: { amount: 4 } })),
    });
    expect((await expectProblem(refused, 422)).issues?.[0]?.path).toBe("/dataschema");
  });
});

describe("idempotency over the producer's content", () => {
  it("a retry without dataschema after a new version was registered is a duplicate, not a conflict", async () => {
    const type = freshType("ds.retry");
    await registerVersion("events", type, 1, V1);
    const first = event({ type, data: { amount: 10 } });
    const [original] = await expectAccepted(await postStructured("events", first));
    expect(original?.duplicate).toBe(false);

    await registerVersion("events", type, 2, V2);
    const [retry] = await expectAccepted(await postStructured("events", first));
    expect(retry).toEqual({ ...original, duplicate: true });
    // The event stays as first stored: validated against (and stamped with) v1.
    const [stored] = await storedById("events", 4, [String(first.id)]);
    expect(stored?.dataschema).toBe(uriOf("events", type, 1));
    // Content still counts: the same id with other data is a conflict.
    await expectProblem(await postStructured("events", { ...first, data: { amount: 11 } }), 409);
  });

  it("a stored event sent again as read back (its stamped dataschema included) is a duplicate; the version named is not content", async () => {
    const type = freshType("ds.resend");
    await registerVersion("events", type, 1, V1);
    await registerVersion("events", type, 2, V2);
    const first = event({ type, data: { amount: 3 } });
    const [original] = await expectAccepted(await postStructured("events", first));
    const [stored] = await storedById("events", 4, [String(first.id)]);
    expect(stored?.dataschema).toBe(uriOf("events", type, 2));
    // As read back, without the server-owned attributes: the stamp is now part of what is sent.
    const { partition: _p, sequence: _s, receivedtime: _r, traceparent: _t, ...readBack } = stored as Record<string, unknown>;
    const [again] = await expectAccepted(await postStructured("events", readBack));
    expect(again).toEqual({ ...original, duplicate: true });
    // Naming the other version with the same data is the same event too: the first write wins.
    const [v1] = await expectAccepted(await postStructured("events", { ...first, dataschema: uriOf("events", type, 1) }));
    expect(v1?.duplicate).toBe(true);
    const [kept] = await storedById("events", 4, [String(first.id)]);
    expect(kept?.dataschema).toBe(uriOf("events", type, 2));
    // A dataschema that is not one of the type's versions is refused before any of this (422), and
    // a type without versions keeps a foreign dataschema as content: changing it is a conflict.
    const untyped = event({ type: freshType("ds.untyped"), dataschema: "https://schemas.example/a.json" });
    await expectAccepted(await postStructured("events", untyped));
    await expectProblem(await postStructured("events", { ...untyped, dataschema: "https://schemas.example/b.json" }), 409);
  });
});

describe("a registry that cannot be read", () => {
  it("answers 503 with Retry-After and stores nothing, then recovers", async () => {
    const before = await heads("events");
    await env.DB.exec("ALTER TABLE schema_versions RENAME TO schema_versions_away");
    invalidateSchemaCache();
    try {
      const res = await postStructured("events", event({ type: freshType("ds.down") }));
      const problem = await expectProblem(res, 503);
      expect(problem.code).toBe("unavailable");
      expect(problem.detail).toContain("schema registry cannot be read");
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(await heads("events")).toEqual(before);
    } finally {
      await env.DB.exec("ALTER TABLE schema_versions_away RENAME TO schema_versions");
      invalidateSchemaCache();
    }
    await expectAccepted(await postStructured("events", event({ type: freshType("ds.down") })));
  });
});

describe("events made by commands", () => {
  it("carry the config-declared latest version of their type, even after a runtime version was registered", async () => {
    const json = (body: unknown) => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const res = await request(
      "/v1/orders",
      json({ customerId: `cust-${crypto.randomUUID()}`, currency: "EUR", lines: [{ sku: "A", quantity: 1, unitPrice: 100 }] }),
    );
    expect(res.status, await res.clone().text()).toBe(201);
    const { orderId } = (await res.json()) as { orderId: string };
    // A runtime version of orders.line-added (v2, after the config's one): the decider still writes v1's shape.
    await registerVersion("orders", "orders.line-added", 2, { type: "object", required: ["orderId", "line", "giftWrap"] });
    const added = await request(`/v1/orders/${orderId}/add-line`, json({ line: { sku: "B", quantity: 2, unitPrice: 50 } }));
    expect(added.status, await added.clone().text()).toBe(200);
    const page = (await (await request(`/v1/topics/orders/streams/${orderId}/events`)).json()) as {
      events: { type: string; dataschema?: string }[];
    };
    expect(page.events.map((e) => [e.type, e.dataschema])).toEqual([
      ["orders.placed", uriOf("orders", "orders.placed", 1)],
      ["orders.line-added", uriOf("orders", "orders.line-added", 1)],
    ]);
  });
});
