import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createLogger, type LogFields } from "../../sdk/logger";

/** The line format, as first written: one JSON object, fields in this order, `error` expanded. */
function reference(level: string, msg: string, time: string, base: LogFields, fields: LogFields | undefined): string {
  const record: LogFields = { level, msg, time, ...base, ...fields };
  if ("error" in record && record.error instanceof Error) {
    const e = record.error;
    record.error = { name: e.name, message: e.message, stack: e.stack };
  }
  return JSON.stringify(record);
}

function written(base: LogFields, extra: LogFields | undefined, fields: LogFields | undefined, msg = "m"): string {
  const lines: string[] = [];
  let log = createLogger(base, (l) => lines.push(l));
  if (extra !== undefined) log = log.with(extra);
  log.info(msg, fields);
  return lines[0] ?? "";
}

describe("logger", () => {
  const cases: [LogFields, LogFields | undefined, LogFields | undefined][] = [
    [{ requestId: "r1" }, { traceparent: "t" }, { topic: "events", partition: 1, firstSequence: null, durationMs: 3 }],
    [{}, undefined, undefined],
    [{ requestId: "r1" }, undefined, {}],
    [{ requestId: "r1" }, undefined, { requestId: "override", a: undefined }],
    [{ requestId: "r1" }, undefined, { error: new Error("boom") }],
    [{ error: "base error" }, undefined, { k: 1 }],
    [{ level: "base level" }, undefined, { k: 1 }],
    [{ requestId: "r1" }, undefined, { msg: "field msg", time: 0 }],
    [{ requestId: "r1" }, undefined, { "10": "integer-like", b: 2 }],
    [{ "7": "integer-like base" }, undefined, { b: 2 }],
    [{ requestId: "r1" }, undefined, { toJSON: "x", nested: { d: new Date(0), s: 'q"\n\u2028é' } }],
  ];
  it("writes exactly the reference line", () => {
    for (const [base, extra, fields] of cases) {
      const line = written(base, extra, fields, 'a "msg"\n');
      const time = (JSON.parse(line) as { time: string }).time;
      // Fields may override `time` (as any field), else it is the ISO timestamp of the line.
      if (!("time" in { ...base, ...extra, ...fields })) expect(time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(line).toBe(reference("info", 'a "msg"\n', time, { ...base, ...extra }, fields));
    }
  });

  it("writes exactly the reference line for any fields (property)", () => {
    const fields = fc.dictionary(
      fc.oneof(fc.string(), fc.constantFrom("level", "msg", "time", "error", "requestId", "1")),
      fc.jsonValue(),
      {
        maxKeys: 6,
      },
    );
    fc.assert(
      fc.property(fields, fields, fc.option(fields, { nil: undefined }), fc.string(), (base, extra, own, msg) => {
        const line = written(base, extra, own, msg);
        const time = (JSON.parse(line) as { time: string }).time;
        expect(line).toBe(reference("info", msg, time, { ...base, ...extra }, own));
      }),
    );
  });
});
