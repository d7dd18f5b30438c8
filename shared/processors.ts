import { z } from "zod";
import type { EventlineConfig } from "./config";
import { compileFilter, type Filter } from "./filter";
import { resolveJsonPointer } from "./json";
import type { ProcessorInput, ProcessorResult, Scalar } from "./processing";
import { type ProcessorPlan, planProcessor } from "./processors-config";

/**
 * What the processor host does to events (ADR 0053), pure: a processor's plan from the config,
 * the re-partition step's extraction (key, event time, values, role) from an input event, and
 * the CloudEvent a result becomes.
 */

export type { ProcessorPlan } from "./processors-config";

const plans = new WeakMap<EventlineConfig, Map<string, ProcessorPlan>>();

/** The config's processors by name, planned once per config object (the config validated them). */
export function processorPlans(config: EventlineConfig): Map<string, ProcessorPlan> {
  let byName = plans.get(config);
  if (byName === undefined) {
    byName = new Map();
    for (const p of config.processors) {
      const input = config.topics.find((t) => t.name === p.input.topic);
      const plan = planProcessor(p, input?.partitions ?? 1);
      if ("issues" in plan) throw new Error(`processor ${p.name}: ${plan.issues.map((i) => i.message).join("; ")}`);
      byName.set(p.name, plan);
    }
    plans.set(config, byName);
  }
  return byName;
}

/** A value of the event: an attribute by name, or a JSON Pointer into the event as stored. */
export function extract(event: Record<string, unknown>, expression: string): unknown {
  if (!expression.startsWith("/")) return Object.hasOwn(event, expression) ? event[expression] : undefined;
  return resolveJsonPointer(event, expression);
}

const scalarOf = (v: unknown): Scalar | undefined =>
  typeof v === "string" || typeof v === "boolean" || v === null ? v : typeof v === "number" && Number.isFinite(v) ? v : undefined;

/** Longest key and string value carried to the processor (longer ones are cut; documented). */
export const MAX_KEY_CHARS = 512;
const MAX_VALUE_CHARS = 1024;

/**
 * An input event as the re-partition step writes it to the processor's internal topic: its place
 * in the input topic (the processor's watermarks and checkpoints are per input partition), what
 * the processor reads of it, and the trace context its results continue.
 */
export const repartitionedSchema = z.object({
  partition: z.number().int().min(0),
  sequence: z.number().int().min(1),
  committedAt: z.number().int(),
  id: z.string().min(1),
  key: z.string(),
  eventTime: z.number().int(),
  value: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])).optional(),
  role: z.enum(["a", "b"]).optional(),
  trace: z
    .object({ traceparent: z.string().optional(), tracestate: z.string().optional(), correlationid: z.string().optional() })
    .optional(),
});
export type Repartitioned = z.infer<typeof repartitionedSchema>;

/**
 * Most inputs one internal-topic event carries (ADR 0056): the re-partition step appends one event
 * per (input run, instance) holding that run's inputs for the instance, in input order, cut into
 * events of at most this many inputs and INTERNAL_BATCH_MAX_BYTES.
 */
export const INTERNAL_BATCH_MAX_INPUTS = 500;
/** Most bytes of inputs one internal-topic event carries: well under a run's inline limit, so batches travel inline. */
export const INTERNAL_BATCH_MAX_BYTES = 64 * 1024;

/** An internal-topic event's data: a batch of re-partitioned inputs from one input partition, in input order (ADR 0056). */
export const repartitionedBatchSchema = z.object({ inputs: z.array(repartitionedSchema).min(1).max(INTERNAL_BATCH_MAX_INPUTS) });
export type RepartitionedBatch = z.infer<typeof repartitionedBatchSchema>;

export type Skip = { skip: "no_key" | "no_role" | "future_time" };

const roleFilters = new WeakMap<ProcessorPlan, { a: Filter; b: Filter }>();

/** The processor's view of one input event, or why it is not an input (no key; a pattern event that is neither "a" nor "b"). */
export function repartitioned(
  plan: ProcessorPlan,
  event: Record<string, unknown>,
  at: { partition: number; sequence: number; committedAt: number },
): Repartitioned | Skip {
  let role: "a" | "b" | undefined;
  if (plan.roles !== undefined) {
    let filters = roleFilters.get(plan);
    if (filters === undefined) {
      filters = { a: compileFilter(plan.roles.a), b: compileFilter(plan.roles.b) };
      roleFilters.set(plan, filters);
    }
    role = filters.a(event) ? "a" : filters.b(event) ? "b" : undefined;
    if (role === undefined) return { skip: "no_role" };
  }
  const rawKey = scalarOf(extract(event, plan.config.key));
  if (rawKey === undefined || rawKey === null) return { skip: "no_key" };
  const key = String(rawKey).slice(0, MAX_KEY_CHARS);
  const parsedTime = typeof event.time === "string" ? Date.parse(event.time) : Number.NaN;
  const eventTime = plan.config.eventTime === "time" && Number.isSafeInteger(parsedTime) ? parsedTime : at.committedAt;
  if (eventTime > at.committedAt + plan.maxAheadMs) return { skip: "future_time" };
  const out: Repartitioned = { ...at, id: String(event.id), key, eventTime };
  if (plan.fields.length > 0) {
    const value: Record<string, Scalar> = {};
    for (const field of plan.fields) {
      const v = scalarOf(extract(event, field));
      if (v !== undefined) value[field] = typeof v === "string" ? v.slice(0, MAX_VALUE_CHARS) : v;
    }
    out.value = value;
  }
  if (role !== undefined) out.role = role;
  const trace: NonNullable<Repartitioned["trace"]> = {};
  if (typeof event.traceparent === "string") trace.traceparent = event.traceparent;
  if (typeof event.tracestate === "string") trace.tracestate = event.tracestate;
  if (typeof event.correlationid === "string" && event.correlationid !== "") trace.correlationid = event.correlationid;
  if (Object.keys(trace).length > 0) out.trace = trace;
  return out;
}

/** The engine's input for a re-partitioned event. */
export function engineInput(r: Repartitioned): ProcessorInput {
  const input: ProcessorInput = {
    partition: r.partition,
    sequence: r.sequence,
    id: r.id,
    key: r.key,
    eventTime: r.eventTime,
    receivedTime: r.committedAt,
  };
  if (r.value !== undefined) input.value = r.value;
  if (r.role !== undefined) input.role = r.role;
  return input;
}

export const processorSource = (processor: string) => `/eventline/processors/${processor}`;

/** The CloudEvent type of a result: derived from the processor and what the result is. */
export function resultType(result: ProcessorResult): string {
  const what = result.kind === "window" ? `window.${result.emit}` : result.kind;
  return `eventline.processor.${result.processor}.${what}`;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** A result's data: window results `{ key, windowStart, windowEnd, …aggregates }` with RFC 3339 bounds. */
export function resultData(result: ProcessorResult): Record<string, unknown> {
  if (result.kind === "window") {
    const data: Record<string, unknown> = { key: result.key, windowStart: iso(result.windowStart), windowEnd: iso(result.windowEnd) };
    for (const [name, value] of Object.entries(result.aggregates)) if (!Object.hasOwn(data, name)) data[name] = value;
    if (result.emit === "update") data.revision = result.revision;
    if (result.approximate.length > 0) data.approximate = result.approximate;
    return data;
  }
  return {
    key: result.key,
    a: { id: result.a.id, time: iso(result.a.eventTime) },
    b: result.b === null ? null : { id: result.b.id, time: iso(result.b.eventTime) },
    deadline: iso(result.deadline),
  };
}

/** A result's event time: a window's end, a sequence's "b", an absence's deadline. */
export function resultTime(result: ProcessorResult): number {
  if (result.kind === "window") return result.windowEnd;
  return result.kind === "sequence" && result.b !== null ? result.b.eventTime : result.deadline;
}
