import { z } from "zod";
import config from "../../eventline.config";
import type { Member } from "../../shared/json";

/**
 * What the partition log accepts across the RPC boundary. RPC arguments are parsed, not trusted;
 * a failed parse throws a TypeError naming what was wrong.
 */

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const HASH = /^[0-9a-f]{64}$/;

/**
 * An event's columns and its stored form. The Worker has validated the full envelope and
 * serialized it once, as canonical members (sorted `[key, canonical JSON of the value]`, trace
 * context resolved); the log merges in its own attributes and stores the joined text. This
 * re-checks what the log itself relies on, cheaply: shapes, and that the columns agree with the
 * members they are indexed by.
 */
export const eventInput = z
  .object({
    source: z.string().min(1),
    id: z.string().min(1),
    type: z.string().min(1),
    subject: z.string().min(1).optional(),
    traceparent: z.string().regex(TRACEPARENT),
    /** SHA-256 (hex) of the event's canonical JSON without trace attributes: "same content". */
    hash: z.string().regex(HASH),
    /** `[key, text]` string pairs, at least one (a zod check that skips zod's per-element machinery). */
    members: z.custom<Member[]>(isMemberList, { message: "members must be a non-empty list of [key, JSON text] string pairs" }),
    /** The event joins its subject's stream and gets the next stream version (needs a subject). */
    stream: z.literal(true).optional(),
  })
  .refine(membersAgree, {
    message: "source/id must match the event's own, as must type, subject and traceparent; members sorted by key, specversion 1.0",
  })
  .refine((e) => e.stream === undefined || e.subject !== undefined, { message: "a stream event needs a subject" });

function isMemberList(value: unknown): value is Member[] {
  if (!Array.isArray(value) || value.length === 0) return false;
  for (const member of value) {
    if (!Array.isArray(member) || member.length !== 2 || typeof member[0] !== "string" || typeof member[1] !== "string") return false;
  }
  return true;
}

/**
 * True when the members are sorted by key without repeats, hold specversion "1.0", and the
 * columns are exactly the event's own attributes (an absent subject included).
 */
function membersAgree(e: {
  source: string;
  id: string;
  type: string;
  subject?: string | undefined;
  traceparent: string;
  members: Member[];
}): boolean {
  let seen = 0;
  let previous: string | undefined;
  for (const [key, text] of e.members) {
    if (previous !== undefined && !(previous < key)) return false;
    previous = key;
    switch (key) {
      case "id":
        if (text !== JSON.stringify(e.id)) return false;
        seen |= 1;
        break;
      case "source":
        if (text !== JSON.stringify(e.source)) return false;
        seen |= 2;
        break;
      case "specversion":
        if (text !== '"1.0"') return false;
        seen |= 4;
        break;
      case "type":
        if (text !== JSON.stringify(e.type)) return false;
        seen |= 8;
        break;
      case "traceparent":
        if (text !== JSON.stringify(e.traceparent)) return false;
        seen |= 16;
        break;
      case "subject":
        if (e.subject === undefined || text !== JSON.stringify(e.subject)) return false;
        seen |= 32;
        break;
      // The log's own attributes; an event never brings them.
      case "partition":
      case "receivedtime":
      case "sequence":
      case "streamversion":
        return false;
    }
  }
  return seen === (e.subject === undefined ? 31 : 63);
}

/**
 * What a stream append expects of the stream before it: `any` (no check), `no-stream` (version
 * 0), `exists` (version ≥ 1) or that exact version. Stream versions are contiguous from 1.
 */
export const expectedVersionSchema = z.union([z.enum(["any", "no-stream", "exists"]), z.number().int().nonnegative()]);
export type ExpectedVersion = z.output<typeof expectedVersionSchema>;

export const appendInputSchema = z
  .object({
    topic: z.string().min(1),
    partition: z.number().int().nonnegative(),
    events: z.array(eventInput).min(1),
    /** Optimistic concurrency for a stream append: every event must be a stream event of `subject`. */
    expect: z.object({ subject: z.string().min(1), version: expectedVersionSchema }).optional(),
  })
  .refine((a) => a.expect === undefined || a.events.every((e) => e.stream === true && e.subject === a.expect?.subject), {
    message: "with expect, every event must be a stream event (stream: true) of the expected subject",
  });
export type AppendInput = z.input<typeof appendInputSchema>;

/** Subscriptions' checkpoints in a partition, as callers pass them to stats() and metrics(). */
export const checkpointsSchema = z.record(z.string().min(1), z.number().int().nonnegative());

export const readInputSchema = z.object({
  from: z.number().int().min(1),
  limit: z.number().int().min(1).max(config.read.maxLimit),
});
export const subjectSchema = z.string().min(1).max(1024);
export const readStreamSchema = z.object({ subject: subjectSchema, from: z.number().int().min(1), limit: readInputSchema.shape.limit });
export const snapshotInputSchema = z.object({
  subject: subjectSchema,
  version: z.number().int().min(1),
  schema: z.number().int().nonnegative(),
  state: z.string().max(512 * 1024),
});

/** True when `expected` holds for a stream at `version`. */
export function versionMatches(expected: ExpectedVersion, version: number): boolean {
  if (expected === "any") return true;
  if (expected === "no-stream") return version === 0;
  if (expected === "exists") return version > 0;
  return version === expected;
}

/** RPC arguments are parsed, not trusted; the error names what was wrong across the RPC boundary. */
export const heldInputSchema = z
  .object({ subscription: z.string().min(1), from: z.number().int().min(1), to: z.number().int().min(0) })
  .refine((r) => r.to - r.from < 1000, { message: "at most 1,000 sequences" });

/**
 * The append input, checked by hand first: appendInputSchema's rules written out as plain tests,
 * which cost a fraction of zod's walk of every event on the hot path. It accepts only what the
 * schema accepts unchanged (no keys the schema would strip); anything else goes through zod, so a
 * refusal reads exactly as before (test/unit/partition-input.test.ts holds the two together).
 */
export function parseAppendInput(value: unknown): z.output<typeof appendInputSchema> {
  return isPlainAppendInput(value) ? value : parseArgs(appendInputSchema, value, "append input");
}

const APPEND_KEYS: ReadonlySet<string> = new Set(["topic", "partition", "events", "expect"]);
const EVENT_KEYS: ReadonlySet<string> = new Set(["source", "id", "type", "subject", "traceparent", "hash", "members", "stream"]);
const EXPECT_KEYS: ReadonlySet<string> = new Set(["subject", "version"]);
const EXPECTED_NAMES: ReadonlySet<unknown> = new Set(["any", "no-stream", "exists"]);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function onlyKeys(value: Record<string, unknown>, keys: ReadonlySet<string>): boolean {
  for (const key of Object.keys(value)) if (!keys.has(key)) return false;
  return true;
}

const nonEmpty = (value: unknown): value is string => typeof value === "string" && value.length > 0;
const optionalNonEmpty = (value: unknown) => value === undefined || nonEmpty(value);

/** What appendInputSchema accepts and returns unchanged (see parseAppendInput). */
export function isPlainAppendInput(value: unknown): value is z.output<typeof appendInputSchema> {
  if (!isRecord(value) || !onlyKeys(value, APPEND_KEYS)) return false;
  const { topic, partition, events, expect } = value;
  if (!nonEmpty(topic) || typeof partition !== "number" || !Number.isSafeInteger(partition) || partition < 0) return false;
  if (!Array.isArray(events) || events.length === 0) return false;
  if (expect !== undefined) {
    if (!isRecord(expect) || !onlyKeys(expect, EXPECT_KEYS) || !nonEmpty(expect.subject)) return false;
    const { version } = expect;
    if (!EXPECTED_NAMES.has(version) && !(typeof version === "number" && Number.isSafeInteger(version) && version >= 0)) return false;
  }
  for (const event of events) {
    if (!isRecord(event) || !onlyKeys(event, EVENT_KEYS)) return false;
    const { source, id, type, subject, traceparent, hash, members, stream } = event;
    if (!nonEmpty(source) || !nonEmpty(id) || !nonEmpty(type) || !optionalNonEmpty(subject)) return false;
    if (typeof traceparent !== "string" || !TRACEPARENT.test(traceparent) || typeof hash !== "string" || !HASH.test(hash)) return false;
    if (stream !== undefined && stream !== true) return false;
    if (!isMemberList(members)) return false;
    if (!membersAgree({ source, id, type, subject: subject as string | undefined, traceparent, members })) return false;
    if (stream !== undefined && subject === undefined) return false;
    if (expect !== undefined && !(stream === true && subject === expect.subject)) return false;
  }
  return true;
}

export function parseArgs<T extends z.ZodType>(schema: T, value: unknown, what: string): z.output<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new TypeError(`invalid ${what}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

export type EventInput = z.output<typeof eventInput>;
