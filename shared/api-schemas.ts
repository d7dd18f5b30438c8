import { z } from "@hono/zod-openapi";
import { SEQUENCE_DIGITS } from "./cloudevents";

/** Response and parameter schemas of the HTTP API; the OpenAPI document is generated from them. */

export const TopicParam = z
  .string()
  .min(1)
  .openapi({ param: { name: "topic", in: "path" }, example: "events", description: "Topic name" });

/** The query of a dead-letter page (a subscription's DLQ, a processor's dead letters): a cursor and a page size. */
export const DeadLetterPageQuery = z.object({
  after: z.string().optional().openapi({ description: "Cursor: the `next` of the previous page" }),
  limit: z.coerce.number().int().min(1).max(500).optional().openapi({ description: "Page size (default 100, at most 500)" }),
});

/** A decimal string that must denote a safe integer (beyond 2^53 the number would be wrong). */
export const integerString = (what: string) =>
  z
    .string()
    .regex(/^\d+$/, `${what} must be a non-negative integer`)
    .transform(Number)
    .refine(Number.isSafeInteger, `${what} is too large`);

/** The `{name}` of a subscription in a path (configured or webhook). */
export const SubscriptionNameParam = z
  .string()
  .min(1)
  .openapi({ param: { name: "name", in: "path" }, example: "activity", description: "Subscription name" });

export const PartitionParam = integerString("partition").openapi({
  param: { name: "partition", in: "path" },
  example: "0",
  type: "integer",
  description: "Partition number, 0-based",
});

export const ReadQuery = z.object({
  from: integerString("from")
    .optional()
    .openapi({ param: { name: "from", in: "query" }, example: "1", type: "integer", description: "First sequence to return (default 1)" }),
  limit: integerString("limit")
    .optional()
    .openapi({
      param: { name: "limit", in: "query" },
      example: "100",
      type: "integer",
      description: "Page size (default 100, at most 1000)",
    }),
});

export const AppendedEventSchema = z
  .object({
    id: z.string(),
    partition: z.number().int(),
    sequence: z.number().int().openapi({ description: "Position in the partition log (1-based)" }),
    duplicate: z.boolean().openapi({ description: "True when this source+id was already stored; sequence is the original one" }),
    streamVersion: z
      .number()
      .int()
      .optional()
      .openapi({ description: "Version in its subject's stream, for an event partitioned by its subject" }),
  })
  .openapi("AppendedEvent");

export const IngestResponseSchema = z.object({ events: z.array(AppendedEventSchema) }).openapi("IngestResponse");

export const StoredCloudEventSchema = z
  .object({
    specversion: z.literal("1.0"),
    id: z.string(),
    source: z.string(),
    type: z.string(),
    subject: z.string().optional(),
    time: z.string().optional(),
    datacontenttype: z.string().optional(),
    dataschema: z.string().optional(),
    data: z.unknown().optional(),
    data_base64: z.string().optional(),
    partitionkey: z.string().optional(),
    traceparent: z.string().openapi({ description: "W3C traceparent: the producer's, the request's, or one Eventline generated" }),
    tracestate: z.string().optional(),
    partition: z.number().int().openapi({ description: "Partition the event is stored in (server-owned)" }),
    sequence: z
      .string()
      .length(SEQUENCE_DIGITS)
      .openapi({
        description: `Sequence in the partition, zero-padded to ${SEQUENCE_DIGITS} digits (server-owned)`,
        example: "00000000000000000001",
      }),
    receivedtime: z.string().openapi({ description: "When Eventline committed the event, RFC 3339 (server-owned)" }),
    streamversion: z
      .number()
      .int()
      .optional()
      .openapi({ description: "Version in the subject's stream, from 1, for an event partitioned by its subject (server-owned)" }),
  })
  .catchall(z.union([z.string(), z.boolean(), z.number().int()]))
  .openapi("StoredCloudEvent");

export const PartitionStatsSchema = z
  .object({
    partition: z.number().int(),
    head: z.number().int().openapi({ description: "Highest sequence committed (0 when empty)" }),
    count: z.number().int().openapi({ description: "Events held in the partition log" }),
    first: z.number().int().openapi({ description: "Lowest sequence held in the partition log itself (0 when empty)" }),
    archived: z
      .object({ first: z.number().int(), last: z.number().int(), segments: z.number().int(), bytes: z.number().int() })
      .nullable()
      .openapi({ description: "The range sealed into R2 segments (null: nothing archived yet); reads serve it transparently" }),
    outbox: z.record(z.string(), z.number().int()).openapi({ description: "Committed events not yet handed to each subscription's queue" }),
    inTransit: z.record(z.string(), z.number().int()).openapi({
      description:
        "Events handed to each subscription's queue and not yet acknowledged, as of the partition's last redelivery check (it sends them again after the subscription's redelivery timeout)",
    }),
    redelivered: z
      .record(z.string(), z.number().int())
      .openapi({ description: "Events the partition sent again to each subscription because they went unacknowledged" }),
    routed: z.record(z.string(), z.number().int()).openapi({ description: "Last sequence routed to each subscription" }),
  })
  .openapi("PartitionStats");

export const TopicSchema = z
  .object({
    name: z.string(),
    description: z.string().optional(),
    partitions: z.number().int(),
    retentionHours: z.number().int(),
    strictTypes: z.boolean(),
    schemaTypes: z.array(z.string()).openapi({ description: "Event types with a registered data schema" }),
    partitionStats: z.array(PartitionStatsSchema),
  })
  .openapi("Topic");

export const TopicListSchema = z.object({ topics: z.array(TopicSchema) }).openapi("TopicList");

export const EventPageSchema = z
  .object({
    topic: z.string(),
    partition: z.number().int(),
    head: z.number().int(),
    first: z.number().int(),
    events: z.array(StoredCloudEventSchema),
    next: z
      .object({ from: z.number().int(), href: z.string() })
      .openapi({ description: "Where the next page starts; when caught up, polling it returns new events as they arrive" }),
    hasMore: z.boolean().openapi({ description: "True when events beyond this page are already stored" }),
  })
  .openapi("EventPage");

export const ProblemSchema = z
  .object({
    type: z.string().url(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string().optional(),
    code: z.string(),
    requestId: z.string(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    events: z
      .array(z.record(z.string(), z.unknown()))
      .optional()
      .openapi({ description: "For a batch that failed in some partitions: what happened to each event" }),
  })
  .openapi("Problem");

/** An OpenAPI response entry for an RFC 9457 problem document. */
export const problemResponse = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: ProblemSchema } },
});

/** A refinement for strings that become keys: a lone UTF-16 surrogate has no UTF-8 form (docs/security.md). */
export const wellFormed = [(value: string) => value.isWellFormed(), "must be well-formed Unicode (no lone UTF-16 surrogate)"] as const;

export const SubjectParam = z
  .string()
  .min(1)
  .max(1024)
  .refine(...wellFormed)
  .openapi({ param: { name: "subject", in: "path" }, example: "order-123", description: "Stream subject (percent-encode '/')" });

export const ExpectedVersionQuery = z.object({
  expectedVersion: z
    .union([z.enum(["any", "no-stream", "exists"]), integerString("expectedVersion")])
    .optional()
    .openapi({
      param: { name: "expectedVersion", in: "query" },
      example: "3",
      description: "`any` (default), `no-stream` (version 0), `exists` (version ≥ 1) or the exact current version",
    }),
});

export const StreamReadQuery = z.object({
  fromVersion: integerString("fromVersion")
    .optional()
    .openapi({ param: { name: "fromVersion", in: "query" }, example: "1", type: "integer", description: "First version (default 1)" }),
  limit: ReadQuery.shape.limit,
});

export const StreamInfoSchema = z
  .object({
    topic: z.string(),
    subject: z.string(),
    partition: z.number().int().openapi({ description: "The partition the subject hashes to" }),
    version: z.number().int().openapi({ description: "Current version: the number of events in the stream (0: none)" }),
    lastSequence: z.number().int().openapi({ description: "Partition sequence of the last event (0: none)" }),
    updatedAt: z.string().nullable().openapi({ description: "When the last event was committed, RFC 3339" }),
  })
  .openapi("StreamInfo");

export const StreamAppendResponseSchema = z
  .object({
    topic: z.string(),
    subject: z.string(),
    partition: z.number().int(),
    version: z.number().int().openapi({ description: "The stream's version after the append" }),
    events: z.array(AppendedEventSchema.required({ streamVersion: true })),
  })
  .openapi("StreamAppendResponse");

export const StreamPageSchema = z
  .object({
    topic: z.string(),
    subject: z.string(),
    partition: z.number().int(),
    version: z.number().int(),
    events: z.array(StoredCloudEventSchema),
    next: z.object({ fromVersion: z.number().int(), href: z.string() }),
    hasMore: z.boolean(),
  })
  .openapi("StreamPage");

export const SegmentSchema = z
  .object({
    first: z.number().int(),
    last: z.number().int(),
    count: z.number().int(),
    firstReceivedAt: z.string().openapi({
      format: "date-time",
      description: "When the segment's first event was committed (RFC 3339, UTC)",
      example: "2026-12-07T03:22:37.512Z",
    }),
    lastReceivedAt: z.string().openapi({
      format: "date-time",
      description: "When its newest event was committed (RFC 3339, UTC)",
      example: "2026-12-07T03:24:01.090Z",
    }),
    bytes: z.number().int(),
    sha256: z.string(),
    chain: z.string().openapi({ description: "SHA-256 of the previous segment's chain + this sha256 (genesis: 64 zeros)" }),
    key: z.string().openapi({ example: "topics/events/0/00000000000000000001-00000000000000000100.ndjson.gz" }),
  })
  .openapi("Segment");

export const ArchiveResponseSchema = z
  .object({
    topic: z.string(),
    partitions: z.array(
      z.object({
        partition: z.number().int(),
        sealed: z.array(SegmentSchema),
        archivedThrough: z.number().int(),
        trimmed: z.number().int().openapi({ description: "Events that left the partition log (archived and past retention)" }),
      }),
    ),
  })
  .openapi("ArchiveResult");

export const ArchiveManifestSchema = z
  .object({
    topic: z.string(),
    partitions: z.array(
      z.object({
        partition: z.number().int(),
        segments: z.array(SegmentSchema),
        verified: z
          .object({ ok: z.boolean(), segments: z.number().int(), problems: z.array(z.object({ key: z.string(), problem: z.string() })) })
          .optional(),
      }),
    ),
  })
  .openapi("ArchiveManifest");
