import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { defineConsumer, type HandleContext } from "../../sdk/consumer";
import {
  childTraceparent,
  isValidTraceparent,
  newTraceparent,
  type ReactionAttributes,
  reactionAttributes,
  traceparentFromHeader,
} from "../../sdk/trace";
import { delivery, FakeMessage } from "../consumer/helpers";

const PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const parts = (traceparent: string) => {
  const [version, traceId, parentId, flags] = traceparent.split("-");
  return { version, traceId, parentId, flags };
};

describe("trace context helpers", () => {
  it("accepts W3C traceparents and refuses malformed, all-zero and version-ff ones", () => {
    expect(isValidTraceparent(PARENT)).toBe(true);
    expect(isValidTraceparent(newTraceparent())).toBe(true);
    for (const bad of [
      "",
      "00-xyz",
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    ]) {
      expect(isValidTraceparent(bad), bad).toBe(false);
    }
    expect(traceparentFromHeader(` ${PARENT} `)).toBe(PARENT);
    expect(traceparentFromHeader("garbage")).toBeUndefined();
  });

  it("a child span keeps the trace id and flags and gets a new parent id", () => {
    fc.assert(
      fc.property(fc.constantFrom("00", "01"), (flags) => {
        const parent = `00-${parts(newTraceparent()).traceId}-${parts(newTraceparent()).parentId}-${flags}`;
        const child = childTraceparent(parent);
        expect(isValidTraceparent(child)).toBe(true);
        expect(parts(child)).toMatchObject({ version: "00", traceId: parts(parent).traceId, flags });
        expect(parts(child).parentId).not.toBe(parts(parent).parentId);
      }),
      { numRuns: 50 },
    );
    // Not a valid parent: a new trace rather than a broken one.
    const fresh = childTraceparent("00-xyz");
    expect(isValidTraceparent(fresh)).toBe(true);
  });
});

describe("reactionAttributes: what an event emitted in reaction carries", () => {
  it("causation is the trigger, correlation is inherited, the trace continues in a child span with its tracestate", () => {
    const trigger = { id: "evt-2", correlationid: "cmd-1", traceparent: PARENT, tracestate: "vendor=abc" };
    const reaction = reactionAttributes(trigger);
    expect(reaction).toMatchObject({ causationid: "evt-2", correlationid: "cmd-1", tracestate: "vendor=abc" });
    expect(parts(reaction.traceparent).traceId).toBe(parts(PARENT).traceId);
    expect(parts(reaction.traceparent).parentId).not.toBe(parts(PARENT).parentId);
  });

  it("a trigger without a correlationid starts the conversation: its own id correlates", () => {
    expect(reactionAttributes({ id: "evt-1", traceparent: PARENT })).toMatchObject({ causationid: "evt-1", correlationid: "evt-1" });
    expect(reactionAttributes({ id: "evt-1", correlationid: "", traceparent: PARENT }).correlationid).toBe("evt-1");
    expect(reactionAttributes({ id: "evt-1", correlationid: 7, traceparent: PARENT }).correlationid).toBe("evt-1");
  });

  it("a trigger without a valid trace starts a new one, without a tracestate", () => {
    const reaction = reactionAttributes({ id: "evt-1", traceparent: "garbage", tracestate: "vendor=abc" });
    expect(isValidTraceparent(reaction.traceparent)).toBe(true);
    expect(reaction).not.toHaveProperty("tracestate");
    expect(Object.keys(reactionAttributes({ id: "evt-1" })).sort()).toEqual(["causationid", "correlationid", "traceparent"]);
  });

  it("every mix of valid, invalid and missing traceparent and tracestate: the trace continues, and carries its state, only from a valid parent", () => {
    const traceparents: [string, unknown, boolean][] = [
      ["valid", PARENT, true],
      ["valid, not sampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true],
      ["malformed", "garbage", false],
      ["all-zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false],
      ["all-zero parent id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false],
      ["version ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false],
      ["upper case", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false],
      ["not a string", 7, false],
      ["missing", undefined, false],
    ];
    const tracestates: [string, unknown, boolean][] = [
      ["valid", "vendor=abc", true],
      ["empty", "", false],
      ["control character", "vendor=\u0001", false],
      ["too long", `v=${"x".repeat(511)}`, false],
      ["not a string", 7, false],
      ["missing", undefined, false],
    ];
    for (const [tpCase, traceparent, tpValid] of traceparents) {
      for (const [tsCase, tracestate, tsValid] of tracestates) {
        const label = `traceparent ${tpCase}, tracestate ${tsCase}`;
        const trigger = {
          id: "evt-1",
          ...(traceparent === undefined ? {} : { traceparent }),
          ...(tracestate === undefined ? {} : { tracestate }),
        };
        const reaction = reactionAttributes(trigger);
        const carried = tpValid && tsValid;
        expect(Object.keys(reaction).sort(), label).toEqual(
          ["causationid", "correlationid", "traceparent", ...(carried ? ["tracestate"] : [])].sort(),
        );
        if (carried) expect(reaction.tracestate, label).toBe(tracestate);
        expect(isValidTraceparent(reaction.traceparent), label).toBe(true);
        const child = parts(reaction.traceparent);
        if (tpValid) {
          const parent = parts(traceparent as string);
          expect(child, label).toMatchObject({ version: "00", traceId: parent.traceId, flags: parent.flags });
          expect(child.parentId, label).not.toBe(parent.parentId);
        } else {
          // A new trace, sampled, as newTraceparent() starts one.
          expect(child.traceId, label).not.toBe(parts(PARENT).traceId);
          expect(child.flags, label).toBe("01");
        }
      }
    }
  });

  it("a chain of reactions keeps one trace and one correlation, each step caused by the one before", () => {
    let event: { id: string } & Partial<ReactionAttributes> = { id: "e0", traceparent: PARENT };
    const seen = new Set<string>();
    for (let i = 1; i <= 5; i++) {
      const next: { id: string } & ReactionAttributes = { id: `e${i}`, ...reactionAttributes(event) };
      expect(next.causationid).toBe(`e${i - 1}`);
      expect(next.correlationid).toBe("e0");
      expect(parts(next.traceparent).traceId).toBe(parts(PARENT).traceId);
      seen.add(next.traceparent);
      event = next;
    }
    expect(seen.size).toBe(5);
  });

  it("the SDK hands it to the handler: the same attributes for every event emitted in one attempt", async () => {
    const got: ReactionAttributes[] = [];
    const consumer = defineConsumer<Env>({
      subscription: "trace-unit",
      db: (e) => e.DB,
      maxRetries: 3,
      handle: async (_event, ctx: HandleContext<Env>) => {
        got.push(ctx.reactionAttributes(), ctx.reactionAttributes());
        return [];
      },
    });
    const message = new FakeMessage(
      delivery({
        subscription: "trace-unit",
        event: { specversion: "1.0", id: "trigger-1", source: "/unit", type: "t", traceparent: PARENT, correlationid: "c-9", data: {} },
      }),
    );
    expect(await consumer.process(message, env)).toBe("handled");
    expect(got).toHaveLength(2);
    expect(got[0]).toEqual(got[1]);
    expect(got[0]).toMatchObject({ causationid: "trigger-1", correlationid: "c-9" });
    expect(parts(got[0]?.traceparent ?? "").traceId).toBe(parts(PARENT).traceId);
    expect(got[0]?.traceparent).not.toBe(PARENT);
  });
});
