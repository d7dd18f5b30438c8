import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { envelopeSchema, isPlainEnvelope, validateEnvelope } from "../../shared/cloudevents";
import { zodTakesUnchanged } from "./zod-verdict";

/**
 * The hand-written envelope check (isPlainEnvelope) against envelopeSchema, the zod schema it
 * stands in for on the hot path: it accepts exactly the objects zod accepts and returns unchanged,
 * and validateEnvelope answers every input as zod plus the attribute checks do.
 */

/** Values of the right form for each attribute, and near misses. */
const CANDIDATES: Record<string, unknown[]> = {
  specversion: ["1.0", "1.0 ", "0.3", 1, null],
  id: ["1", "order-7", "", " ", "\u00e9", 7, true],
  source: ["/orders", "urn:eventline:test", "https://x.example/a?b#c", "a:b", "1a:b", "/a b", "%zz", "%41", "", "//host/p"],
  type: ["orders.paid", "", "t", 0],
  datacontenttype: ["application/json", "text/plain; charset=utf-8", "json", "a/b c", "", 3],
  dataschema: ["https://schemas.example/x", "/relative", "urn:x", "", "x"],
  subject: ["o-1", "", "\ud83d\ude00", false],
  time: ["2024-02-29T12:00:00Z", "2023-02-29T12:00:00Z", "2024-01-01T00:00:60.5+01:00", "2024-01-01", "2024-01-01t24:00:00z", ""],
  data: [{ a: 1 }, [1, 2], "text", 0, false, null, undefined],
  data_base64: ["", "AAAA", "AA==", "AAA", "A===", "@@@@", 5],
  partitionkey: ["k", "", 1],
  traceparent: ["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331", ""],
  tracestate: ["congo=t61rcWkgMzE", "", "bad\u0001", "x".repeat(600)],
};
const EXTENSION_VALUES: unknown[] = [
  "v",
  "",
  true,
  false,
  0,
  -0,
  1,
  -1,
  2_147_483_647,
  2_147_483_648,
  -2_147_483_648,
  -2_147_483_649,
  1.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  2 ** 53,
  null,
  undefined,
  {},
  [],
];

const known = Object.keys(CANDIDATES);
/** A valid event to start from, so most generated objects are one or two changes away from valid. */
const BASE = { specversion: "1.0", id: "1", source: "/s", type: "t" };

const envelopeLike = fc
  .record({
    attributes: fc.dictionary(fc.constantFrom(...known), fc.nat(), { maxKeys: 6 }),
    extensions: fc.dictionary(fc.oneof(fc.stringMatching(/^[a-z0-9]{1,8}$/), fc.constantFrom("Upper", "x-y", "")), fc.nat(), {
      maxKeys: 3,
    }),
    drop: fc.subarray(["specversion", "id", "source", "type"], { maxLength: 1 }),
  })
  .map(({ attributes, extensions, drop }) => {
    const raw: Record<string, unknown> = { ...BASE };
    for (const key of drop) delete raw[key];
    for (const [key, n] of Object.entries(attributes)) {
      const values = CANDIDATES[key] as unknown[];
      raw[key] = values[n % values.length];
    }
    for (const [key, n] of Object.entries(extensions)) if (!(key in CANDIDATES)) raw[key] = EXTENSION_VALUES[n % EXTENSION_VALUES.length];
    return raw;
  });

describe("the hand-written envelope check", () => {
  it("accepts exactly what envelopeSchema accepts unchanged (property)", () => {
    let accepted = 0;
    fc.assert(
      fc.property(envelopeLike, (raw) => {
        const plain = isPlainEnvelope(raw);
        expect(plain).toBe(zodTakesUnchanged(envelopeSchema, raw));
        if (plain) accepted++;
      }),
      { numRuns: 5000 },
    );
    // Both verdicts are exercised, not only refusals.
    expect(accepted).toBeGreaterThan(200);
  });

  it("validateEnvelope answers as envelopeSchema and the attribute checks do (property)", () => {
    fc.assert(
      fc.property(envelopeLike, (raw) => {
        const withoutNulls = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== null));
        const parsed = envelopeSchema.safeParse(withoutNulls);
        const result = validateEnvelope(raw, "/2");
        if (result.ok) {
          expect(parsed.success).toBe(true);
          expect(result.event).toStrictEqual(parsed.data);
        } else {
          // Every issue is zod's own message or one of the attribute checks' (names, server attributes, Unicode, data vs data_base64).
          const zodMessages = parsed.success ? [] : parsed.error.issues.map((i) => i.message);
          for (const issue of result.issues) {
            expect(issue.path.startsWith("/2/")).toBe(true);
            const own = /^attribute name|is set by Eventline|well-formed Unicode|mutually exclusive/.test(issue.message);
            expect(own || zodMessages.includes(issue.message)).toBe(true);
          }
        }
        if (!parsed.success) expect(result.ok).toBe(false);
      }),
      { numRuns: 3000 },
    );
  });

  it("keeps the problem details of a bad event word for word", () => {
    const result = validateEnvelope({ specversion: "1.0", id: "", source: "a b", type: "t", time: "yesterday", big: 2 ** 31 }, "/0");
    expect(result).toEqual({
      ok: false,
      issues: [
        { path: "/0/id", message: "id must not be empty" },
        { path: "/0/source", message: "source must be a URI-reference (RFC 3986)" },
        { path: "/0/time", message: "time must be an RFC 3339 timestamp" },
        { path: "/0/big", message: "Too big: expected number to be <=2147483647" },
      ],
    });
  });

  it("uses a valid parsed event as it is, without a copy", () => {
    const raw = JSON.parse('{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":[1]},"ext":3}') as Record<string, unknown>;
    const result = validateEnvelope(raw);
    expect(result.ok && result.event).toBe(raw);
  });
});
