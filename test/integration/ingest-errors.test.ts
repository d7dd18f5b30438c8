import { describe, expect, it } from "vitest";
import { allHeads, BATCH, event, expectAccepted, expectProblem, postStructured, request, STRUCTURED } from "../helpers";

/**
 * Bad input: each case gets its status and problem code, names the failing path where there is
 * one, and leaves every partition head where it was (nothing stored, never a 5xx).
 */

interface Case {
  name: string;
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: BodyInit;
  status: number;
  code: string;
  issuePath?: string;
}

const EVENTS = "/v1/topics/events/events";
const ORDERS = "/v1/topics/orders/events";
const json = (value: unknown) => JSON.stringify(value);
const structured = (value: unknown, name: string, status: number, code: string, issuePath?: string): Case => ({
  name,
  headers: { "content-type": STRUCTURED },
  body: typeof value === "string" ? value : json(value),
  status,
  code,
  ...(issuePath === undefined ? {} : { issuePath }),
});
const without = (key: string) => {
  const e = event();
  delete e[key];
  return e;
};
let deep: unknown = "bottom";
for (let i = 0; i < 100; i++) deep = { d: deep };
const binaryHeaders = { "ce-specversion": "1.0", "ce-id": "b-1", "ce-source": "/b", "ce-type": "t" };
const order = (type: string, data: unknown) => event({ type, subject: "order-x", data });

const cases: Case[] = [
  // 400 — malformed body
  structured("{", "malformed JSON", 400, "malformed_request"),
  structured("", "empty body", 400, "malformed_request"),
  {
    name: "invalid UTF-8",
    headers: { "content-type": STRUCTURED },
    body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
    status: 400,
    code: "malformed_request",
  },
  structured([event()], "array sent as a structured event", 400, "invalid_envelope", "/"),
  structured('"just a string"', "JSON string instead of an object", 400, "invalid_envelope", "/"),
  // 400 — envelope
  structured(without("specversion"), "missing specversion", 400, "invalid_envelope", "/specversion"),
  structured(event({ specversion: "0.3" }), "wrong specversion", 400, "invalid_envelope", "/specversion"),
  structured(without("id"), "missing id", 400, "invalid_envelope", "/id"),
  structured(event({ id: "" }), "empty id", 400, "invalid_envelope", "/id"),
  structured(event({ id: 42 }), "numeric id", 400, "invalid_envelope", "/id"),
  structured(without("source"), "missing source", 400, "invalid_envelope", "/source"),
  structured(event({ source: "not a uri" }), "source with spaces", 400, "invalid_envelope", "/source"),
  structured(event({ source: "/bad%zz" }), "source with a broken percent-escape", 400, "invalid_envelope", "/source"),
  structured(without("type"), "missing type", 400, "invalid_envelope", "/type"),
  structured(event({ type: "" }), "empty type", 400, "invalid_envelope", "/type"),
  structured(event({ time: "yesterday" }), "time not RFC 3339", 400, "invalid_envelope", "/time"),
  structured(event({ time: "2026-02-30T00:00:00Z" }), "impossible date", 400, "invalid_envelope", "/time"),
  structured(event({ Tenant: "x" }), "upper-case attribute name", 400, "invalid_envelope", "/Tenant"),
  structured(event({ my_ext: "x" }), "underscore in attribute name", 400, "invalid_envelope", "/my_ext"),
  structured(event({ ext: { nested: true } }), "object as extension value", 400, "invalid_envelope", "/ext"),
  structured(event({ ext: 1.5 }), "non-integer extension value", 400, "invalid_envelope", "/ext"),
  structured(event({ data_base64: "aGk=" }), "data and data_base64 together", 400, "invalid_envelope", "/data_base64"),
  structured(event({ data: undefined, data_base64: "@@@" }), "data_base64 not base64", 400, "invalid_envelope", "/data_base64"),
  structured(event({ dataschema: "/relative" }), "relative dataschema", 400, "invalid_envelope", "/dataschema"),
  structured(event({ datacontenttype: "not a media type" }), "bad datacontenttype", 400, "invalid_envelope", "/datacontenttype"),
  structured(event({ traceparent: "00-xyz" }), "malformed traceparent attribute", 400, "invalid_envelope", "/traceparent"),
  structured(event({ data: deep }), "data nested 100 levels deep", 400, "invalid_envelope"),
  // 400 — server-owned attributes
  structured(event({ partition: 1 }), "producer sets partition", 400, "invalid_envelope", "/partition"),
  structured(event({ sequence: "00000000000000000001" }), "producer sets sequence", 400, "invalid_envelope", "/sequence"),
  structured(event({ receivedtime: "2026-01-01T00:00:00Z" }), "producer sets receivedtime", 400, "invalid_envelope", "/receivedtime"),
  // 400 — batch
  { name: "batch that is not an array", headers: { "content-type": BATCH }, body: json(event()), status: 400, code: "malformed_request" },
  { name: "empty batch", headers: { "content-type": BATCH }, body: "[]", status: 400, code: "malformed_request" },
  {
    name: "batch with one invalid event among valid ones",
    headers: { "content-type": BATCH },
    body: json([event(), event({ source: "bad uri" }), event()]),
    status: 400,
    code: "invalid_envelope",
    issuePath: "/1/source",
  },
  // 400 — binary mode
  {
    name: "binary without ce-id",
    headers: { "ce-specversion": "1.0", "ce-source": "/b", "ce-type": "t" },
    status: 400,
    code: "invalid_envelope",
    issuePath: "/headers/ce-id",
  },
  {
    name: "binary with invalid percent-encoding",
    headers: { ...binaryHeaders, "ce-subject": "%E2%82" },
    status: 400,
    code: "invalid_envelope",
    issuePath: "/headers/ce-subject",
  },
  {
    name: "binary JSON body that is not JSON",
    headers: { ...binaryHeaders, "content-type": "application/json" },
    body: "{nope",
    status: 400,
    code: "invalid_envelope",
    issuePath: "/body",
  },
  {
    name: "binary with ce-datacontenttype",
    headers: { ...binaryHeaders, "ce-datacontenttype": "application/json" },
    status: 400,
    code: "invalid_envelope",
    issuePath: "/headers/ce-datacontenttype",
  },
  {
    name: "binary attribute with underscore",
    headers: { ...binaryHeaders, "ce-my_ext": "1" },
    status: 400,
    code: "invalid_envelope",
    issuePath: "/headers/ce-my_ext",
  },
  {
    name: "binary sets server-owned sequence",
    headers: { ...binaryHeaders, "ce-sequence": "1" },
    status: 400,
    code: "invalid_envelope",
    issuePath: "/headers/ce-sequence",
  },
  // 404 / 405
  {
    name: "unknown topic",
    path: "/v1/topics/nope/events",
    headers: { "content-type": STRUCTURED },
    body: json(event()),
    status: 404,
    code: "topic_not_found",
  },
  { name: "unknown route", path: "/v2/whatever", method: "GET", status: 404, code: "not_found" },
  { name: "GET on the ingest route", method: "GET", status: 405, code: "method_not_allowed" },
  { name: "DELETE on topics", path: "/v1/topics", method: "DELETE", status: 405, code: "method_not_allowed" },
  // 409
  {
    name: "batch reusing an id with different content",
    headers: { "content-type": BATCH },
    body: json([event({ id: "same", data: 1 }), event({ id: "same", data: 2 })]),
    status: 409,
    code: "duplicate_conflict",
    issuePath: "/1/id",
  },
  // 413
  {
    name: "batch over 500 events",
    headers: { "content-type": BATCH },
    body: json(Array.from({ length: 501 }, () => event())),
    status: 413,
    code: "payload_too_large",
  },
  structured(event({ data: "x".repeat(1024 * 1024) }), "body over 1 MiB", 413, "payload_too_large"),
  structured(event({ data: "x".repeat(70 * 1024) }), "one event over 64 KiB", 413, "payload_too_large", "/"),
  // 415
  {
    name: "text/plain without ce-* headers",
    headers: { "content-type": "text/plain" },
    body: "hello",
    status: 415,
    code: "unsupported_media_type",
  },
  { name: "no content type at all", body: json(event()), status: 415, code: "unsupported_media_type" },
  {
    name: "non-JSON event format",
    headers: { "content-type": "application/cloudevents+xml" },
    body: "<e/>",
    status: 415,
    code: "unsupported_media_type",
  },
  {
    name: "non-UTF-8 charset",
    headers: { "content-type": `${STRUCTURED}; charset=latin1` },
    body: json(event()),
    status: 415,
    code: "unsupported_media_type",
  },
  // 422
  {
    name: "type the strict topic does not accept",
    path: ORDERS,
    headers: { "content-type": STRUCTURED },
    body: json(order("orders.unknown", {})),
    status: 422,
    code: "schema_violation",
    issuePath: "/type",
  },
  {
    name: "data missing a required field",
    path: ORDERS,
    headers: { "content-type": STRUCTURED },
    body: json(order("orders.placed", { orderId: "o", customerId: "c", currency: "EUR" })),
    status: 422,
    code: "schema_violation",
    issuePath: "/data/lines",
  },
  {
    name: "data with a wrong field type",
    path: ORDERS,
    headers: { "content-type": STRUCTURED },
    body: json(order("orders.paid", { orderId: "o", amount: "ten", currency: "EUR" })),
    status: 422,
    code: "schema_violation",
    issuePath: "/data/amount",
  },
  {
    name: "binary data for a schema type",
    path: ORDERS,
    headers: { "content-type": STRUCTURED },
    body: json(event({ type: "orders.paid", data: undefined, data_base64: "aGk=" })),
    status: 422,
    code: "schema_violation",
    issuePath: "/data",
  },
  {
    name: "batch where the second event fails its schema",
    path: ORDERS,
    headers: { "content-type": BATCH },
    body: json([order("orders.cancelled", { orderId: "o" }), order("orders.shipped", { orderId: 7 })]),
    status: 422,
    code: "schema_violation",
    issuePath: "/1/data/orderId",
  },
  // read API
  { name: "partition out of range", path: "/v1/topics/events/partitions/4/events", method: "GET", status: 404, code: "not_found" },
  {
    name: "partition not a number",
    path: "/v1/topics/events/partitions/abc/events",
    method: "GET",
    status: 400,
    code: "invalid_parameter",
  },
  {
    name: "limit over 1000",
    path: "/v1/topics/events/partitions/0/events?limit=5000",
    method: "GET",
    status: 400,
    code: "invalid_parameter",
  },
  { name: "negative from", path: "/v1/topics/events/partitions/0/events?from=-1", method: "GET", status: 400, code: "invalid_parameter" },
  {
    name: "from beyond the safe-integer range",
    path: "/v1/topics/events/partitions/0/events?from=99999999999999999999",
    method: "GET",
    status: 400,
    code: "invalid_parameter",
    issuePath: "/query/from",
  },
  { name: "trailing slash is not a route", path: "/v1/topics/events/", method: "GET", status: 404, code: "not_found" },
  { name: "read from an unknown topic", path: "/v1/topics/nope/partitions/0/events", method: "GET", status: 404, code: "topic_not_found" },
];

describe("bad input is refused with problem+json and changes nothing", () => {
  it("covers at least 30 distinct bad inputs", () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  it.each(cases)("$name → $status $code", async (c) => {
    // Something is stored first, so "nothing changed" is checked against non-empty logs.
    await expectAccepted(await postStructured("events", event()));
    const before = await allHeads();
    const res = await request(c.path ?? EVENTS, {
      method: c.method ?? "POST",
      headers: c.headers ?? {},
      ...(c.body === undefined ? {} : { body: c.body }),
    });
    const problem = await expectProblem(res, c.status);
    expect(problem.code).toBe(c.code);
    if (c.issuePath !== undefined) expect(problem.issues?.map((i) => i.path)).toContain(c.issuePath);
    if (c.status === 405) expect(res.headers.get("allow")).toMatch(/GET|POST/);
    if (c.status === 415) expect(problem.detail).toMatch(/cloudevents|charset/);
    expect(await allHeads()).toEqual(before);
  });

  it("reports every problem of a batch at once", async () => {
    const res = await request(EVENTS, {
      method: "POST",
      headers: { "content-type": BATCH },
      body: json([event({ id: "" }), event(), event({ source: "x y", time: "never" })]),
    });
    const problem = await expectProblem(res, 400);
    expect(problem.issues?.map((i) => i.path).sort()).toEqual(["/0/id", "/2/source", "/2/time"]);
  });
});
