import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileFilter, FilterError, patternKeys } from "../../shared/filter";

const ev = (extra: Record<string, unknown> = {}) => ({ specversion: "1.0", id: "1", source: "/s", type: "orders.placed", ...extra });

describe("filter operators", () => {
  it.each([
    ["exact string", { type: ["orders.placed"] }, ev(), true],
    ["exact string, other value", { type: ["orders.paid"] }, ev(), false],
    ["any of several values", { type: ["x", "orders.placed"] }, ev(), true],
    ["exact number", { data: { n: [5] } }, ev({ data: { n: 5 } }), true],
    ["exact boolean", { data: { vip: [true] } }, ev({ data: { vip: false } }), false],
    ["exact null", { data: { c: [null] } }, ev({ data: { c: null } }), true],
    ["prefix", { type: [{ prefix: "orders." }] }, ev(), true],
    ["prefix mismatch", { type: [{ prefix: "users." }] }, ev(), false],
    ["suffix", { source: [{ suffix: "/s" }] }, ev(), true],
    ["suffix on a number", { data: { n: [{ suffix: "5" }] } }, ev({ data: { n: 5 } }), false],
    ["anything-but value", { type: [{ "anything-but": "orders.paid" }] }, ev(), true],
    ["anything-but list hit", { type: [{ "anything-but": ["orders.placed", "x"] }] }, ev(), false],
    ["anything-but prefix", { type: [{ "anything-but": { prefix: "users." } }] }, ev(), true],
    ["anything-but suffix hit", { type: [{ "anything-but": { suffix: ".placed" } }] }, ev(), false],
    ["anything-but needs the field", { subject: [{ "anything-but": "x" }] }, ev(), false],
    ["numeric range inside", { data: { total: [{ numeric: [">=", 100, "<", 1000] }] } }, ev({ data: { total: 100 } }), true],
    ["numeric range upper bound", { data: { total: [{ numeric: [">=", 100, "<", 1000] }] } }, ev({ data: { total: 1000 } }), false],
    ["numeric equals", { data: { total: [{ numeric: ["=", 3] }] } }, ev({ data: { total: 3 } }), true],
    ["numeric on a string", { data: { total: [{ numeric: [">", 0] }] } }, ev({ data: { total: "5" } }), false],
    ["exists true", { subject: [{ exists: true }] }, ev({ subject: "a" }), true],
    ["exists true, missing", { subject: [{ exists: true }] }, ev(), false],
    ["exists false, missing", { subject: [{ exists: false }] }, ev(), true],
    ["exists false, nested missing", { data: { coupon: [{ exists: false }] } }, ev({ data: {} }), true],
    ["nested path", { data: { customer: { tier: ["gold"] } } }, ev({ data: { customer: { tier: "gold" } } }), true],
    ["nested path, no data", { data: { customer: { tier: ["gold"] } } }, ev(), false],
    ["array value, any element", { data: { tags: ["red"] } }, ev({ data: { tags: ["blue", "red"] } }), true],
    ["AND across fields", { type: ["orders.placed"], subject: ["a"] }, ev({ subject: "b" }), false],
    ["$or: one alternative", { $or: [{ subject: ["a"] }, { type: [{ prefix: "orders." }] }] }, ev(), true],
    ["$or: none", { $or: [{ subject: ["a"] }, { type: ["x"] }] }, ev(), false],
    ["extension attribute", { tenant: ["acme"] }, ev({ tenant: "acme" }), true],
    ["exists true on an empty array", { data: { tags: [{ exists: true }] } }, ev({ data: { tags: [] } }), true],
    ["exists false on an empty array", { data: { tags: [{ exists: false }] } }, ev({ data: { tags: [] } }), false],
  ])("%s", (_name, pattern, event, expected) => {
    expect(compileFilter(pattern)(event)).toBe(expected);
  });

  it("no filter matches everything", () => {
    expect(compileFilter(undefined)(ev())).toBe(true);
  });

  it.each([
    [[], "/"],
    [{}, "/"],
    [{ type: "orders.placed" }, "/type"],
    [{ type: [] }, "/type"],
    [{ type: [{ prefix: "" }] }, "/type/0"],
    [{ type: [{ numeric: ["~", 1] }] }, "/type/0"],
    [{ type: [{ wat: 1 }] }, "/type/0"],
    [{ $or: [{ type: ["a"] }] }, "/$or"],
    [{ data: { a: { b: "c" } } }, "/data/a/b"],
  ])("rejects invalid pattern %j, naming %s", (pattern, path) => {
    try {
      compileFilter(pattern);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(FilterError);
      expect((err as FilterError).issues.map((i) => i.path)).toContain(path);
    }
  });
});

describe("filter properties", () => {
  const value = fc.oneof(fc.string({ maxLength: 6 }), fc.integer({ min: -50, max: 50 }));
  const event = fc.record({ subject: fc.option(value, { nil: undefined }), data: fc.record({ n: fc.option(value, { nil: undefined }) }) });
  const clean = (e: { subject: unknown; data: { n: unknown } }) =>
    JSON.parse(JSON.stringify({ specversion: "1.0", id: "x", source: "/", type: "t", ...e })) as Record<string, unknown>;

  it("exists:true and exists:false partition all events", () => {
    fc.assert(
      fc.property(event, (e) => {
        const x = clean(e);
        expect(compileFilter({ subject: [{ exists: true }] })(x)).not.toBe(compileFilter({ subject: [{ exists: false }] })(x));
      }),
    );
  });

  it("a value list and its anything-but partition the events that have the field", () => {
    fc.assert(
      fc.property(event, fc.array(value, { minLength: 1, maxLength: 3 }), (e, values) => {
        const x = clean(e);
        fc.pre(x.subject !== undefined);
        expect(compileFilter({ subject: values })(x)).not.toBe(compileFilter({ subject: [{ "anything-but": values }] })(x));
      }),
    );
  });

  it("prefix and anything-but prefix partition string fields", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 6 }), fc.string({ minLength: 1, maxLength: 3 }), (subject, prefix) => {
        const x = { subject };
        expect(compileFilter({ subject: [{ prefix }] })(x)).not.toBe(compileFilter({ subject: [{ "anything-but": { prefix } }] })(x));
      }),
    );
  });

  it("a numeric range and its complement partition numeric fields", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -100, max: 100 }),
        fc.integer({ min: -100, max: 100 }),
        fc.integer({ min: 0, max: 50 }),
        (n, lo, width) => {
          const x = { data: { n } };
          const inside = compileFilter({ data: { n: [{ numeric: [">=", lo, "<", lo + width] }] } })(x);
          const outside = compileFilter({ data: { n: [{ numeric: ["<", lo] }, { numeric: [">=", lo + width] }] } })(x);
          expect(inside).not.toBe(outside);
        },
      ),
    );
  });

  it("$or of a pattern and anything equals the union", () => {
    fc.assert(
      fc.property(event, (e) => {
        const x = clean(e);
        const a = { subject: [{ exists: true }] };
        const b = { data: { n: [{ numeric: [">", 0] }] } };
        expect(compileFilter({ $or: [a, b] })(x)).toBe(compileFilter(a)(x) || compileFilter(b)(x));
      }),
    );
  });
});

describe("patternKeys", () => {
  it("lists the top-level attributes a pattern reads, through $or, so envelope-only filters skip parsing the event", () => {
    expect([...patternKeys({ type: [{ prefix: "a" }], subject: [{ exists: true }] })].sort()).toEqual(["subject", "type"]);
    expect([...patternKeys({ $or: [{ source: ["/a"] }, { data: { n: [1] } }] })].sort()).toEqual(["data", "source"]);
    expect([...patternKeys({ streamversion: [{ exists: true }] })]).toEqual(["streamversion"]);
  });
});
