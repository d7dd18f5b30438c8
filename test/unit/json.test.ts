import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  assertJsonDepth,
  canonicalJson,
  canonicalMembers,
  illFormedStringAt,
  JsonDepthError,
  joinMembers,
  jsonPointer,
  MAX_JSON_DEPTH,
  type Member,
  membersUtf8Length,
  mergeMembers,
  sha256Hex,
  utf8Length,
} from "../../shared/json";

describe("JSON Pointer", () => {
  it("escapes ~ and / in keys (RFC 6901)", () => {
    expect(jsonPointer("/3", ["data", "a/b", "c~d", 0])).toBe("/3/data/a~1b/c~0d/0");
    expect(jsonPointer("", [])).toBe("");
  });
});

describe("canonical JSON", () => {
  it("sorts keys at every level, integer-like keys included", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, "10": 2, "9": 3 }], c: "x" } })).toBe(
      '{"a":{"c":"x","d":[3,{"10":2,"9":3,"z":1}]},"b":1}',
    );
  });

  it("is a pure function of the value: equal JSON → equal bytes (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const shuffled = JSON.parse(
          JSON.stringify(value, (_k, v) =>
            v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).reverse()) : v,
          ),
        );
        expect(canonicalJson(shuffled)).toBe(canonicalJson(value));
        expect(JSON.parse(canonicalJson(value))).toEqual(JSON.parse(JSON.stringify(value)));
      }),
    );
  });

  it("refuses nesting deeper than the limit, naming the path", () => {
    let deep: unknown = 1;
    for (let i = 0; i < MAX_JSON_DEPTH + 1; i++) deep = { k: deep };
    expect(() => assertJsonDepth(deep)).toThrow(JsonDepthError);
    let ok: unknown = 1;
    for (let i = 0; i < MAX_JSON_DEPTH - 1; i++) ok = [ok];
    expect(() => assertJsonDepth(ok)).not.toThrow();
  });
});

/** Random CloudEvent-like objects: the usual attributes, extensions, any JSON data, odd keys too. */
const attributeName = fc.oneof(
  fc.constantFrom(
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "data",
    "data_base64",
    "traceparent",
    "tracestate",
    "partitionkey",
  ),
  fc.stringMatching(/^[a-z0-9]{1,12}$/),
  // Keys that only a sort by UTF-16 code units orders right: integer-like, upper case, non-ASCII, astral.
  fc.string({ unit: "binary", maxLength: 6 }),
  fc.constantFrom("10", "9", "0", "Z", "a", "é", "\u{1F600}", "\uFFFF", "partitionz", "sequenc"),
);
const eventLike = fc.dictionary(attributeName, fc.oneof(fc.jsonValue(), fc.constant(undefined)), { maxKeys: 14 });
const serverAttributes = fc.record({
  partition: fc.nat({ max: 1023 }),
  sequence: fc.nat().map((n) => String(n).padStart(20, "0")),
  receivedtime: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
});

describe("canonical members", () => {
  it("joined, they are canonicalJson of the object (property)", () => {
    fc.assert(
      fc.property(eventLike, (event) => {
        expect(joinMembers(canonicalMembers(event))).toBe(canonicalJson(event));
      }),
    );
  });

  it("with the server attributes merged in, they are byte for byte canonicalJson({ ...event, partition, sequence, receivedtime }) (property)", () => {
    fc.assert(
      fc.property(eventLike, serverAttributes, (event, server) => {
        const expected = canonicalJson({ ...event, ...server });
        const extra: Member[] = [
          ["partition", JSON.stringify(server.partition)],
          ["receivedtime", JSON.stringify(server.receivedtime)],
          ["sequence", JSON.stringify(server.sequence)],
        ];
        expect(joinMembers(canonicalMembers(event), extra)).toBe(expected);
        expect(joinMembers(mergeMembers(canonicalMembers(event), extra))).toBe(expected);
        expect(canonicalMembers({ ...event, ...server })).toEqual(mergeMembers(canonicalMembers(event), extra));
      }),
      { numRuns: 1000 },
    );
  });

  it("merging replaces members of the same key, as an object spread does (property)", () => {
    fc.assert(
      // Members never stand for undefined (canonicalMembers leaves such keys out), so `b` has none.
      fc.property(eventLike, fc.dictionary(attributeName, fc.jsonValue(), { maxKeys: 8 }), (a, b) => {
        expect(joinMembers(canonicalMembers(a), canonicalMembers(b))).toBe(canonicalJson({ ...a, ...b }));
      }),
    );
  });

  it("their UTF-8 size is that of the joined text (property)", () => {
    fc.assert(
      fc.property(eventLike, (event) => {
        expect(membersUtf8Length(canonicalMembers(event))).toBe(new TextEncoder().encode(canonicalJson(event)).byteLength);
      }),
    );
  });
});

describe("utf8Length", () => {
  it("is TextEncoder's byte length, lone surrogates included (property)", () => {
    const anyUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary" }), fc.string({ unit: "grapheme" }), fc.string({ unit: anyUnit })), (text) => {
        expect(utf8Length(text)).toBe(new TextEncoder().encode(text).byteLength);
      }),
    );
    for (const text of [
      "",
      "abc",
      "\ud800",
      "\udc00",
      "\udc00x",
      "\ud800\ud800",
      "a\ud800b",
      "\ud83d\ude00",
      "\ude00\ud83d",
      "\ud800\ud800\udc00",
      "é€😀",
    ]) {
      expect(utf8Length(text)).toBe(new TextEncoder().encode(text).byteLength);
    }
  });
});

describe("illFormedStringAt", () => {
  it("points at the first string value or member name with a lone surrogate, anywhere in the value", () => {
    expect(illFormedStringAt({ name: "ok 😀", grants: ["produce:orders"], n: 1, b: null })).toBeUndefined();
    expect(illFormedStringAt("x\udfff")).toBe("/");
    expect(illFormedStringAt({ name: "x\ud800" })).toBe("/name");
    expect(illFormedStringAt({ a: [{ "b/c": ["ok", "\udc00"] }] })).toBe("/a/0/b~1c/1");
    expect(illFormedStringAt({ filter: { "x\udfff": "y" } })).toBe("/filter/x\udfff");
    // The same as JSON.parse makes it from an escape.
    expect(illFormedStringAt(JSON.parse('{"customerId":"c\\udfff"}'))).toBe("/customerId");
  });

  it("agrees with isWellFormed on every string (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }), (text) => {
        expect(illFormedStringAt({ v: text }) === undefined).toBe(text.isWellFormed());
      }),
    );
  });
});

describe("sha256Hex", () => {
  it("is the lower-case hex SHA-256 of the UTF-8 text", async () => {
    expect(await sha256Hex("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(await sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: "binary" }), async (text) => {
        const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
        const expected = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
        expect(await sha256Hex(text)).toBe(expected);
      }),
    );
  });
});
