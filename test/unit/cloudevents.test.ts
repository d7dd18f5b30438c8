import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeBinary,
  encodeBinary,
  formatSequence,
  isAbsoluteUri,
  isRfc3339,
  isUriReference,
  validateEnvelope,
} from "../../shared/cloudevents";

const attrName = fc
  .stringMatching(/^[a-z][a-z0-9]{0,15}$/)
  .filter(
    (n) =>
      ![
        "specversion",
        "id",
        "source",
        "type",
        "datacontenttype",
        "dataschema",
        "subject",
        "time",
        "data",
        "partition",
        "sequence",
        "receivedtime",
        "traceparent",
        "tracestate",
      ].includes(n),
  );
const printable = fc.string({ minLength: 1, maxLength: 40, unit: "grapheme" });
const uriRef = fc.oneof(fc.webUrl(), fc.constantFrom("/orders", "urn:eventline:test", "//host/path", "relative/path?q=1#f"));
// Through JSON once, as a producer's body would be (JSON has no -0).
const jsonData = fc
  .jsonValue({ maxDepth: 4 })
  .filter((v) => v !== null)
  .map((v) => JSON.parse(JSON.stringify(v)) as unknown);

/** A valid JSON-format event with JSON data and string-valued extensions (binary mode carries strings). */
const jsonEvent = fc
  .record(
    {
      specversion: fc.constant("1.0"),
      id: printable,
      source: uriRef,
      type: printable,
      subject: printable,
      time: fc.date({ min: new Date("1970-01-01"), max: new Date("2999-12-31"), noInvalidDate: true }).map((d) => d.toISOString()),
      datacontenttype: fc.constantFrom("application/json", "application/vnd.eventline+json; charset=utf-8"),
      data: jsonData,
      extensions: fc.dictionary(attrName, printable, { maxKeys: 4 }),
    },
    { requiredKeys: ["specversion", "id", "source", "type", "datacontenttype", "data", "extensions"] },
  )
  .map(({ extensions, ...e }) => ({ ...extensions, ...e }));

const binaryEvent = fc.record({
  specversion: fc.constant("1.0"),
  id: printable,
  source: uriRef,
  type: printable,
  datacontenttype: fc.constantFrom("application/octet-stream", "image/png"),
  data_base64: fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => btoa(String.fromCharCode(...b))),
});

describe("structured ⇄ binary (property)", () => {
  it("valid events survive JSON → binary → JSON unchanged", () => {
    fc.assert(
      fc.property(jsonEvent, (ev) => {
        expect(validateEnvelope(ev).ok).toBe(true);
        const { headers, body } = encodeBinary(ev);
        for (const [name, value] of Object.entries(headers)) if (name.startsWith("ce-")) expect(value).toMatch(/^[\x21-\x7e]*$/);
        const decoded = decodeBinary(new Headers(headers), body);
        expect(decoded.ok).toBe(true);
        if (decoded.ok) expect(decoded.event).toEqual(ev);
      }),
      { numRuns: 300 },
    );
  });

  it("binary data round-trips through data_base64", () => {
    fc.assert(
      fc.property(binaryEvent, (ev) => {
        const { headers, body } = encodeBinary(ev);
        const decoded = decodeBinary(new Headers(headers), body);
        expect(decoded.ok && decoded.event).toEqual(ev);
      }),
    );
  });

  it("text data round-trips as a string", () => {
    fc.assert(
      fc.property(printable, (text) => {
        const ev = { specversion: "1.0", id: "t", source: "/s", type: "x", datacontenttype: "text/plain", data: text };
        const { headers, body } = encodeBinary(ev);
        const decoded = decodeBinary(new Headers(headers), body);
        expect(decoded.ok && decoded.event).toEqual(ev);
      }),
    );
  });

  it("percent-decodes header values", () => {
    const decoded = decodeBinary(
      new Headers({ "ce-specversion": "1.0", "ce-id": "%E2%82%AC 1", "ce-source": "/s", "ce-type": "t", "ce-subject": "caf%C3%A9" }),
      new Uint8Array(),
    );
    expect(decoded.ok && decoded.event).toEqual({ specversion: "1.0", id: "€ 1", source: "/s", type: "t", subject: "café" });
  });
});

describe("envelope validation", () => {
  it("accepts the minimal event and treats null attributes as absent", () => {
    const result = validateEnvelope({ specversion: "1.0", id: "1", source: "/s", type: "t", subject: null });
    expect(result).toEqual({ ok: true, event: { specversion: "1.0", id: "1", source: "/s", type: "t" } });
  });

  it("reports every problem with its JSON Pointer", () => {
    const result = validateEnvelope({ specversion: "0.3", id: "", source: "not a uri", type: 5, Bad_Name: "x" }, "/2");
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const paths = result.issues.map((i) => i.path).sort();
    expect(paths).toEqual(["/2/Bad_Name", "/2/id", "/2/source", "/2/specversion", "/2/type"]);
  });

  it("refuses every string attribute that holds a lone surrogate (they become keys), once each; pairs and data are fine", () => {
    const base = { specversion: "1.0", id: "1", source: "/s", type: "t" };
    for (const lone of ["x\udfff", "\ud800", "a\ud83d", "\udc00\ud800"]) {
      for (const attribute of ["id", "source", "type", "subject", "partitionkey", "tenantid"]) {
        const result = validateEnvelope({ ...base, [attribute]: lone }, "/1");
        expect(result.ok, `${attribute}: ${JSON.stringify(lone)}`).toBe(false);
        if (result.ok) continue;
        expect(result.issues).toEqual([{ path: `/1/${attribute}`, message: expect.stringContaining("well-formed Unicode") }]);
      }
    }
    const withParams = validateEnvelope({ ...base, datacontenttype: "application/json; x=\udfff" });
    expect(withParams.ok).toBe(false);
    // A surrogate pair is one well-formed character; data is stored as escaped JSON and never becomes a key.
    expect(validateEnvelope({ ...base, subject: "cust-😀", id: "😀", xemoji: "🎉" }).ok).toBe(true);
    expect(validateEnvelope({ ...base, data: { note: "x\udfff" } }).ok).toBe(true);
  });

  it.each([
    ["2026-11-27T10:00:00Z", true],
    ["2026-11-27t10:00:00.123456+05:30", true],
    ["2024-02-29T00:00:60Z", true],
    ["2023-02-29T00:00:00Z", false],
    ["2026-13-01T00:00:00Z", false],
    ["2026-11-27 10:00:00Z", false],
    ["2026-11-27T10:00:00", false],
    ["2026-11-27T24:00:00Z", false],
  ])("RFC 3339 %s → %s", (value, ok) => expect(isRfc3339(value)).toBe(ok));

  it.each([
    ["https://example.com/a?b#c", true],
    ["/relative/path", true],
    ["urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", true],
    ["mailto:ops@example.com", true],
    ["has space", false],
    ["bad%zzescape", false],
    ["1http://x", false],
  ])("URI-reference %s → %s", (value, ok) => expect(isUriReference(value)).toBe(ok));

  it("dataschema must be absolute", () => {
    expect(isAbsoluteUri("https://schemas.example.com/v1")).toBe(true);
    expect(isAbsoluteUri("/schemas/v1")).toBe(false);
  });

  it("formats sequences so string order equals numeric order", () => {
    fc.assert(
      fc.property(fc.nat(), fc.nat(), (a, b) => {
        expect(formatSequence(a) < formatSequence(b)).toBe(a < b);
        expect(formatSequence(a)).toHaveLength(20);
      }),
    );
  });
});
