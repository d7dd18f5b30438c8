import { z } from "zod";
import { processorSpecSchema } from "./spec";
import type { EngineState } from "./state";

/**
 * Reading a stored state back: the host parses it rather than casting JSON.parse's result
 * (CONVENTIONS: parse, don't cast). The schema checks the shape the engine relies on; the
 * invariants between parts (every open item has its timer) are the engine's own and are kept by
 * only ever storing what the engine returned.
 */

const int = z.number().int();
const nullableInt = int.nullable();
const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const stamp = z.strictObject({ time: int, arrival: int });

const acc = z.discriminatedUnion("k", [
  z.strictObject({ k: z.literal("count"), n: int }),
  z.strictObject({ k: z.literal("sum"), sum: z.number() }),
  z.strictObject({ k: z.enum(["min", "max"]), v: z.number().nullable() }),
  z.strictObject({ k: z.literal("avg"), sum: z.number(), n: int }),
  z.strictObject({ k: z.enum(["first", "last"]), v: scalar, at: stamp.nullable() }),
  z.strictObject({
    k: z.literal("distinct"),
    values: z.record(z.string(), z.literal(1)).nullable(),
    size: int,
    hll: z
      .string()
      .regex(/^[0-Z]{4096}$/)
      .nullable(),
  }),
]);

const openWindow = z.strictObject({
  start: int,
  end: int,
  accs: z.array(acc),
  revision: int,
  last: z.strictObject({ id: z.string(), arrival: int }),
});

const patternKey = z.strictObject({
  as: z.array(z.strictObject({ id: z.string(), partition: int, sequence: int, time: int, arrival: int })),
  bs: z.array(z.strictObject({ id: z.string(), time: int, arrival: int })),
});

const counters = z.strictObject({
  accepted: int,
  duplicates: int,
  late: int,
  missedWindows: int,
  finals: int,
  updates: int,
  matches: int,
  cancelled: int,
});

export const engineStateSchema = z
  .strictObject({
    version: z.literal(1),
    spec: processorSpecSchema,
    time: z.strictObject({
      clock: nullableInt,
      startedAt: nullableInt,
      watermark: nullableInt,
      partitions: z.array(z.strictObject({ checkpoint: nullableInt, maxEventTime: nullableInt, lastActivity: nullableInt })),
    }),
    arrivals: int.min(0),
    counters,
    timers: z.array(z.strictObject({ at: int, key: z.string(), ref: int })),
    windows: z.record(z.string().startsWith("~"), z.array(openWindow)),
    patterns: z.record(z.string().startsWith("~"), patternKey),
  })
  .refine((s) => s.time.partitions.length === s.spec.partitions, "the state has one entry per input partition")
  .refine((s) => {
    const { spec } = s;
    if (spec.kind !== "aggregate") return true;
    return Object.values(s.windows).every((ws) => ws.every((w) => w.accs.length === spec.aggregates.length));
  }, "every open window has one accumulator per aggregate");

/** Parses a stored state (the text or its JSON value); throws a ZodError when it is not one the engine wrote. */
export function restoreState(stored: unknown): EngineState {
  const value: unknown = typeof stored === "string" ? JSON.parse(stored) : stored;
  return engineStateSchema.parse(value) satisfies EngineState;
}
