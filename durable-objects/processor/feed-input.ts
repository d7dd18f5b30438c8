import { z } from "zod";
import { runHeadShape, runInOrder } from "../../sdk/messages";
import { INTERNAL_BATCH_MAX_INPUTS, type Repartitioned, repartitionedBatchSchema, repartitionedSchema } from "../../shared/processors";

/**
 * Checks of what a `feed` call receives, on the processor's hot path (ADR 0053): the partition
 * log's relay sends runs of internal-topic events, each checked here before the engine sees it.
 * As on ingest (ADR 0041), the common well-formed input is recognised by hand-written checks that
 * accept a strict subset of what the zod schemas accept — and only input the schemas would return
 * unchanged (no unknown key they would strip, no key present as `undefined`) — so it is used as
 * it came; anything else goes through the schemas, which word every refusal and strip what they strip.
 */

export const instanceArgs = z.object({ processor: z.string().min(1), instance: z.number().int().min(0) });

/** A run's event as an instance takes it: parsed (`event`), as stored text (`stored`, ADR 0056), or by reference (`ref`). */
const feedEventSchema = z
  .object({
    sequence: z.number().int().positive(),
    committedAt: z.number().int().nonnegative(),
    event: z.record(z.string(), z.unknown()).optional(),
    stored: z.string().optional(),
    ref: z.literal(true).optional(),
  })
  .refine((e) => [e.event !== undefined, e.stored !== undefined, e.ref === true].filter(Boolean).length === 1, {
    message: "exactly one of event, stored and ref",
  });

/** A run of the internal partition (sdk/messages.ts `runSchema`, whose events may also come as stored text). */
const feedRunSchema = z.object({ ...runHeadShape, events: z.array(feedEventSchema).min(1).max(1000) }).refine(...runInOrder);

export const feedArgs = instanceArgs.extend({ runs: z.array(feedRunSchema).min(1) });
export type FeedArgs = z.output<typeof feedArgs>;
/** A run as `feed` takes it. */
export type FeedRun = FeedArgs["runs"][number];

const FEED_KEYS = new Set(["processor", "instance", "runs"]);
const RUN_KEYS = new Set(["v", "subscription", "topic", "partition", "prev", "events"]);
const RUN_EVENT_KEYS = new Set(["sequence", "committedAt", "event", "stored", "ref"]);
const DATA_KEYS = new Set(["partition", "sequence", "committedAt", "id", "key", "eventTime", "value", "role", "trace"]);
const TRACE_KEYS = new Set(["traceparent", "tracestate", "correlationid"]);
const BATCH_KEYS = new Set(["inputs"]);
const RUN_MAX_EVENTS = 1000;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Own keys all in `allowed`, none holding `undefined`, and no `__proto__` own key (a record's copy would not keep it). */
function onlyKeys(value: Record<string, unknown>, allowed: ReadonlySet<string>): boolean {
  for (const key in value) {
    if (!Object.hasOwn(value, key)) return false;
    if (!allowed.has(key) || value[key] === undefined) return false;
  }
  return Object.getOwnPropertySymbols(value).length === 0 && !Object.hasOwn(value, "__proto__");
}

/** An array the schemas would copy as it is: no own member but its elements (a copy would not keep one). */
function isPlainArray(value: unknown): value is unknown[] {
  return Array.isArray(value) && Object.getPrototypeOf(value) === Array.prototype && Object.keys(value).length === value.length;
}

const isInt = (v: unknown, min: number): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= min;
const isText = (v: unknown, minLength: number): v is string => typeof v === "string" && v.length >= minLength;

/** A record the schemas would copy as it is: plain, no `__proto__` own key, no symbols, nothing undefined. */
function isPlainRecord(value: unknown): value is Record<string, unknown> {
  if (!isPlainObject(value) || Object.hasOwn(value, "__proto__") || Object.getOwnPropertySymbols(value).length > 0) return false;
  for (const key in value) if (!Object.hasOwn(value, key) || value[key] === undefined) return false;
  return true;
}

function isPlainRun(run: unknown): run is FeedRun {
  if (!isPlainObject(run) || !onlyKeys(run, RUN_KEYS)) return false;
  if (run.v !== 2 || !isText(run.subscription, 1) || !isText(run.topic, 1) || !isInt(run.partition, 0) || !isInt(run.prev, 0)) return false;
  const events = run.events;
  if (!isPlainArray(events) || events.length < 1 || events.length > RUN_MAX_EVENTS) return false;
  let last = run.prev;
  for (const e of events) {
    if (!isPlainObject(e) || !onlyKeys(e, RUN_EVENT_KEYS)) return false;
    if (!isInt(e.sequence, 1) || !isInt(e.committedAt, 0) || e.sequence <= last) return false;
    last = e.sequence;
    const forms = Number("event" in e) + Number("stored" in e) + Number("ref" in e);
    if (forms !== 1) return false;
    if ("event" in e ? !isPlainRecord(e.event) : "stored" in e ? typeof e.stored !== "string" : e.ref !== true) return false;
  }
  return true;
}

/** `feedArgs.parse(input)`, without the schemas' walk and copy for well-formed input. */
export function parseFeedArgs(input: unknown): FeedArgs {
  if (
    isPlainObject(input) &&
    onlyKeys(input, FEED_KEYS) &&
    isText(input.processor, 1) &&
    isInt(input.instance, 0) &&
    isPlainArray(input.runs) &&
    input.runs.length >= 1 &&
    input.runs.every(isPlainRun)
  ) {
    return input as FeedArgs;
  }
  return feedArgs.parse(input);
}

function isScalar(v: unknown): boolean {
  return v === null || typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v));
}

/** `repartitionedSchema.parse(data)`, without the schema's walk and copy for well-formed input. */
export function parseRepartitioned(data: unknown): Repartitioned {
  if (isPlainRepartitioned(data)) return data;
  return repartitionedSchema.parse(data);
}

function isPlainRepartitioned(data: unknown): data is Repartitioned {
  return (
    isPlainObject(data) &&
    onlyKeys(data, DATA_KEYS) &&
    isInt(data.partition, 0) &&
    isInt(data.sequence, 1) &&
    isInt(data.committedAt, Number.MIN_SAFE_INTEGER) &&
    isText(data.id, 1) &&
    typeof data.key === "string" &&
    isInt(data.eventTime, Number.MIN_SAFE_INTEGER) &&
    (data.value === undefined || (isPlainRecord(data.value) && Object.values(data.value).every(isScalar))) &&
    (data.role === undefined || data.role === "a" || data.role === "b") &&
    (data.trace === undefined ||
      (isPlainObject(data.trace) && onlyKeys(data.trace, TRACE_KEYS) && Object.values(data.trace).every((v) => typeof v === "string")))
  );
}

/**
 * The inputs of one internal-topic event's data: a batch `{ inputs: [...] }` (ADR 0056), or one
 * input as the internal topic held them before (still read: a topic written by an older version).
 */
export function parseInternalData(data: unknown): Repartitioned[] {
  if (isPlainObject(data) && "inputs" in data) {
    const inputs = data.inputs;
    if (
      onlyKeys(data, BATCH_KEYS) &&
      isPlainArray(inputs) &&
      inputs.length >= 1 &&
      inputs.length <= INTERNAL_BATCH_MAX_INPUTS &&
      inputs.every(isPlainRepartitioned)
    )
      return inputs as Repartitioned[];
    return repartitionedBatchSchema.parse(data).inputs;
  }
  return [parseRepartitioned(data)];
}

/** An internal-topic event as the log stores it: `sequence` is a zero-padded decimal string (shared/cloudevents.ts); `data` a batch (or one legacy input). */
const storedInputSchema = z.object({
  sequence: z
    .string()
    .regex(/^\d{1,20}$/)
    .transform(Number),
  data: z.unknown(),
});

/** An internal-topic event's data, from its stored text (how the log's relay sends it, ADR 0056). */
export function storedData(text: string): unknown {
  const event: unknown = JSON.parse(text);
  return typeof event === "object" && event !== null ? (event as { data?: unknown }).data : undefined;
}

/** An internal-topic event as stored (a catch-up page's): its sequence and the inputs it carries. */
export function storedItem(text: string): { sequence: number; inputs: Repartitioned[] } {
  const event = storedInputSchema.parse(JSON.parse(text));
  return { sequence: event.sequence, inputs: parseInternalData(event.data) };
}
