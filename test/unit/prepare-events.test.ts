import fc from "fast-check";
import { describe, expect, it } from "vitest";
import config from "../../eventline.config";
import type { CloudEvent } from "../../shared/cloudevents";
import { findTopic } from "../../shared/config";
import { EventlineError } from "../../shared/errors";
import { canonicalJson, canonicalMembers, membersUtf8Length, sha256Hex } from "../../shared/json";
import { configSource } from "../../workers/platform/ingest/data-schema";
import { prepareEvents } from "../../workers/platform/ingest/parse";

/**
 * What prepareEvents derives from each event — its content hash, its serialized size (checked
 * against the event limit) and its stored members — against their definitions, computed the
 * plain way: the hash of the canonical JSON without trace attributes, the UTF-8 length of the
 * event's canonical JSON as sent.
 */

const topic = findTopic(config, "events");
if (topic === undefined) throw new Error("the shipped config has no events topic");
const REQUEST_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const OWN_TRACE = "00-11111111111111111111111111111111-2222222222222222-01";

const text = fc.string({ minLength: 1, maxLength: 20, unit: fc.constantFrom("a", "Z", "0", "é", "€", "😀", '"', "\\", "\n") });
const event = fc
  .record(
    {
      id: text,
      type: text,
      subject: text,
      data: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.parse(JSON.stringify(v)) as unknown),
      traceparent: fc.constant(OWN_TRACE),
      tracestate: fc.constantFrom("a=1", "congo=t61rcWkgMzE"),
      ext: fc.oneof(text, fc.integer({ min: -5, max: 5 }), fc.boolean()),
    },
    { requiredKeys: ["id", "type"] },
  )
  .map((e): CloudEvent => {
    const { tracestate, ...rest } = e;
    // A tracestate is kept only beside the event's own traceparent.
    return {
      specversion: "1.0",
      source: "/prepare",
      ...rest,
      ...(rest.traceparent !== undefined && tracestate !== undefined && { tracestate }),
    };
  });

const withLimit = (maxEventBytes: number) => ({ ...config, limits: { ...config.limits, maxEventBytes } });
const trace = { traceparent: REQUEST_TRACE, tracestate: "req=1", batch: true, schemas: configSource(topic, "https://eventline.example") };

describe("prepareEvents", () => {
  it("hashes the canonical JSON without trace attributes and stores the event with its trace resolved (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(event, { minLength: 1, maxLength: 3 }), async (events) => {
        const unique = events.map((e, i) => ({ ...e, id: `${e.id}-${i}` }));
        const prepared = await prepareEvents(unique, topic, config, trace);
        for (const [i, e] of unique.entries()) {
          const { traceparent, tracestate, ...content } = e;
          const p = prepared[i];
          expect(p?.hash).toBe(await sha256Hex(canonicalJson(content)));
          const stored =
            traceparent === undefined
              ? { ...content, traceparent: REQUEST_TRACE, tracestate: "req=1" }
              : { ...content, traceparent, tracestate };
          expect(p?.members).toEqual(canonicalMembers(stored));
        }
      }),
      { numRuns: 200 },
    );
  });

  it("holds each event to the limit by the UTF-8 length of its canonical JSON as sent, own trace included (property)", async () => {
    await fc.assert(
      fc.asyncProperty(event, async (e) => {
        const size = membersUtf8Length(canonicalMembers(e));
        expect(size).toBe(new TextEncoder().encode(canonicalJson(e)).byteLength);
        await expect(prepareEvents([e], topic, withLimit(size), trace)).resolves.toHaveLength(1);
        const refused = await prepareEvents([e], topic, withLimit(size - 1), trace).then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(refused).toBeInstanceOf(EventlineError);
        expect((refused as EventlineError).detail).toBe(`event /0 is ${size} bytes serialized; the limit is ${size - 1}`);
      }),
      { numRuns: 200 },
    );
  });
});
