import { Validator } from "@cfworker/json-schema";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import config from "../../eventline.config";
import { schemaUri } from "../../sdk/schema-uri";
import type { CloudEvent } from "../../shared/cloudevents";
import { findTopic } from "../../shared/config";
import { EventlineError } from "../../shared/errors";
import { canonicalJson, canonicalMembers, membersUtf8Length, sha256Hex } from "../../shared/json";
import { configSource, jsonSchemaIssues } from "../../workers/platform/ingest/data-schema";
import { prepareEvents } from "../../workers/platform/ingest/parse";

/**
 * The stamped `dataschema` (ADR 0051): stored and counted against the event size limit, but left
 * out of the content hash, which stays the producer's content.
 */

const orders = findTopic(config, "orders");
if (orders === undefined) throw new Error("the shipped config has no orders topic");
const ORIGIN = "https://eventline.example";
const TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const STAMP = schemaUri(ORIGIN, "orders", "orders.cancelled", 1);
const trace = { traceparent: TRACE, batch: true, schemas: configSource(orders, ORIGIN) };
const withLimit = (maxEventBytes: number) => ({ ...config, limits: { ...config.limits, maxEventBytes } });

const cancelled = fc
  .record({
    id: fc.uuid(),
    orderId: fc.string({ minLength: 1, maxLength: 30 }),
    reason: fc.option(fc.string({ maxLength: 40 }), { nil: undefined }),
  })
  .filter(({ orderId, reason }) => orderId.isWellFormed() && (reason === undefined || reason.isWellFormed()))
  .map(
    ({ id, orderId, reason }): CloudEvent => ({
      specversion: "1.0",
      id,
      source: "/unit",
      type: "orders.cancelled",
      data: reason === undefined ? { orderId } : { orderId, reason },
    }),
  );

describe("the stamped dataschema", () => {
  it("is stored, not hashed: the hash is that of the event as sent (property)", async () => {
    await fc.assert(
      fc.asyncProperty(cancelled, async (e) => {
        const [p] = await prepareEvents([e], orders, config, trace);
        expect(p?.hash).toBe(await sha256Hex(canonicalJson(e)));
        expect(p?.members).toEqual(canonicalMembers({ ...e, dataschema: STAMP, traceparent: TRACE }));
      }),
      { numRuns: 100 },
    );
  });

  it("counts against the event size limit as stored (property)", async () => {
    await fc.assert(
      fc.asyncProperty(cancelled, async (e) => {
        const size = membersUtf8Length(canonicalMembers({ ...e, dataschema: STAMP }));
        await expect(prepareEvents([e], orders, withLimit(size), trace)).resolves.toHaveLength(1);
        const refused = await prepareEvents([e], orders, withLimit(size - 1), trace).then(
          () => undefined,
          (err: unknown) => err,
        );
        expect((refused as EventlineError).detail).toBe(`event /0 is ${size} bytes serialized; the limit is ${size - 1}`);
      }),
      { numRuns: 100 },
    );
  });

  it("is not added where the producer named the version: its URI is stored as sent, and not hashed", async () => {
    const named = "https://other-host.example/v1/topics/orders/types/orders.cancelled/schemas/1";
    const e: CloudEvent = {
      specversion: "1.0",
      id: "n-1",
      source: "/unit",
      type: "orders.cancelled",
      dataschema: named,
      data: { orderId: "o" },
    };
    const [p] = await prepareEvents([e], orders, config, trace);
    expect(p?.members).toEqual(canonicalMembers({ ...e, traceparent: TRACE }));
    // The version an event was checked against is not its content (ADR 0051).
    const { dataschema: _named, ...content } = e;
    expect(p?.hash).toBe(await sha256Hex(canonicalJson(content)));
  });

  it("is not added without an origin (records the platform writes without a request)", async () => {
    const e: CloudEvent = { specversion: "1.0", id: "n-2", source: "/unit", type: "orders.cancelled", data: { orderId: "o" } };
    const [p] = await prepareEvents([e], orders, config, { ...trace, schemas: configSource(orders, undefined) });
    expect(p?.members.some(([key]) => key === "dataschema")).toBe(false);
    await expect(
      prepareEvents([{ ...e, data: { reason: 1 } }], orders, config, { ...trace, schemas: configSource(orders, undefined) }),
    ).rejects.toBeInstanceOf(EventlineError);
  });
});

describe("JSON Schema failures as problem issues", () => {
  const issuesOf = (schema: Record<string, unknown>, data: unknown) => {
    const result = new Validator(schema, "2020-12", false).validate(data);
    expect(result.valid).toBe(false);
    return jsonSchemaIssues(result.errors, "/3/data");
  };

  it("reports an anyOf failure once, at the member, not each branch", () => {
    expect(issuesOf({ properties: { note: { anyOf: [{ type: "string" }, { type: "null" }] } } }, { note: 3 })).toEqual([
      { path: "/3/data/note", message: "Instance does not match any subschemas." },
    ]);
  });

  it("keeps RFC 6901 escapes and decodes percent-encoding in member names", () => {
    const issues = issuesOf(
      { properties: { "a/b": { type: "string" }, "c~d": { type: "string" }, "é #": { type: "string" } } },
      { "a/b": 1, "c~d": 1, "é #": 1 },
    );
    expect(issues.map((i) => i.path).sort()).toEqual(["/3/data/a~1b", "/3/data/c~0d", "/3/data/é #"]);
  });

  it("a failing root is reported at the data itself", () => {
    expect(issuesOf({ type: "object" }, [])).toEqual([{ path: "/3/data", message: expect.stringContaining("object") }]);
  });
});
