import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import {
  ExpectedVersionQuery,
  problemResponse,
  StreamAppendResponseSchema,
  StreamInfoSchema,
  StreamPageSchema,
  StreamReadQuery,
  SubjectParam,
  TopicParam,
} from "../../../shared/api-schemas";
import { BATCH_CONTENT_TYPE, type CloudEvent, STRUCTURED_CONTENT_TYPE } from "../../../shared/cloudevents";
import type { EventlineConfig } from "../../../shared/config";
import type { ProblemIssue } from "../../../shared/errors";
import { streamPartition } from "../../../shared/partitioner";
import { createFieldProtector } from "../../../shared/security/fields";
import { access, topicParam } from "../auth/access";
import type { AppEnv } from "../context";
import { appendToStream, partitionStub } from "../ingest/append";
import { registrySource } from "../ingest/data-schema";
import { decodeIngest, envelopeError, prepareRequestEvents } from "../ingest/parse";
import { revealForCaller } from "../reveal";
import { invalidParameter, readLimit, requireTopic } from "../validation";

/**
 * Streams (event sourcing): the events of one subject within a topic, in the partition the
 * subject hashes to, versioned 1, 2, 3… Appends can name the version they expect (optimistic
 * concurrency); every event partitioned by its subject, however it was published, is in its stream.
 */

const streamParams = z.object({ topic: TopicParam, subject: SubjectParam });

const appendRoute = createRoute({
  method: "post",
  path: "/v1/topics/{topic}/streams/{subject}/events",
  tags: ["Streams"],
  summary: "Append events to a stream, optionally at an expected version",
  description: `Same body modes as ingest (structured, batch, binary). Every event belongs to the stream: its \`subject\` is set to the path's when absent and must equal it when present; a \`partitionkey\` other than the subject is refused (a stream lives in its subject's partition). The events are appended atomically, with versions following the stream's current one, or not at all. With \`expectedVersion\` the append happens only if the stream is at that version (else 409 with \`currentVersion\`). Re-sending an append that already committed returns 200 with the original positions and \`duplicate: true\`.`,
  request: {
    params: streamParams,
    query: ExpectedVersionQuery,
    body: {
      required: true,
      content: {
        [STRUCTURED_CONTENT_TYPE]: { schema: z.record(z.string(), z.unknown()) },
        [BATCH_CONTENT_TYPE]: { schema: z.array(z.record(z.string(), z.unknown())) },
        "*/*": { schema: z.string().openapi({ format: "binary", description: "Binary mode: the event's data, with ce-* headers" }) },
      },
    },
  },
  responses: {
    200: {
      description: "The same append was already committed: the original positions",
      content: { "application/json": { schema: StreamAppendResponseSchema } },
    },
    201: { description: "Every event is committed to the stream", content: { "application/json": { schema: StreamAppendResponseSchema } } },
    400: problemResponse("Malformed body, invalid envelope, a subject or partitionkey other than the stream's, or a bad expectedVersion"),
    404: problemResponse("Unknown topic"),
    409: problemResponse(
      "`version_conflict`: the stream is not at the expected version (`currentVersion` says where it is); or an event id reused with different content",
    ),
    413: problemResponse("Body, event or batch over its limit"),
    415: problemResponse("Unsupported content type"),
    422: problemResponse("`data` fails the schema the topic registers for its `type`"),
    503: problemResponse("The partition is overloaded or unavailable; retry after `Retry-After` seconds"),
  },
});

const infoRoute = createRoute({
  method: "get",
  path: "/v1/topics/{topic}/streams/{subject}",
  middleware: [access({ group: "read", action: "consume", topic: topicParam })] as const,
  tags: ["Streams"],
  summary: "A stream's current version (also as `Eventline-Stream-Version` and `ETag`; HEAD for headers only)",
  request: { params: streamParams },
  responses: {
    200: { description: "The stream (version 0 when it has no events)", content: { "application/json": { schema: StreamInfoSchema } } },
    404: problemResponse("Unknown topic"),
  },
});

const readRoute = createRoute({
  method: "get",
  path: "/v1/topics/{topic}/streams/{subject}/events",
  middleware: [access({ group: "read", action: "consume", topic: topicParam })] as const,
  tags: ["Streams"],
  summary: "Read a stream's events in version order",
  request: { params: streamParams, query: StreamReadQuery },
  responses: {
    200: {
      description: "A page of the stream's events, exactly as stored (each with `streamversion`)",
      content: {
        "application/json": { schema: StreamPageSchema },
        [BATCH_CONTENT_TYPE]: { schema: z.array(z.record(z.string(), z.unknown())) },
      },
    },
    400: problemResponse("Invalid fromVersion or limit"),
    404: problemResponse("Unknown topic"),
  },
});

/** Puts every event of a stream append in the stream: subject filled in or checked, no other partition key. */
function assignToStream(events: CloudEvent[], subject: string, batch: boolean): CloudEvent[] {
  const issues: ProblemIssue[] = [];
  const out = events.map((event, i) => {
    const base = batch ? `/${i}` : "";
    if (event.subject !== undefined && event.subject !== subject) {
      issues.push({ path: `${base}/subject`, message: `must be the stream's subject ${JSON.stringify(subject)} (or absent)` });
    }
    if (event.partitionkey !== undefined && event.partitionkey !== subject) {
      issues.push({ path: `${base}/partitionkey`, message: "a stream lives in its subject's partition: leave partitionkey out" });
    }
    return event.subject === undefined ? { ...event, subject } : event;
  });
  if (issues.length > 0) throw envelopeError(issues);
  return out;
}

export function parseExpectedVersion(c: Context<AppEnv>) {
  const parsed = ExpectedVersionQuery.safeParse({ expectedVersion: c.req.query("expectedVersion") });
  if (!parsed.success) throw invalidParameter(parsed.error.issues, "query");
  return parsed.data.expectedVersion ?? "any";
}

export function streamRoutes(config: EventlineConfig) {
  const app = new OpenAPIHono<AppEnv>();
  app.openAPIRegistry.registerPath(appendRoute);
  // Like ingest, the body is dispatched on Content-Type by decodeIngest rather than the generic validator.
  app.post("/v1/topics/:topic/streams/:subject/events", access({ group: "ingest", action: "produce", topic: topicParam }), async (c) => {
    const topic = requireTopic(config, c.req.param("topic"));
    const subject = c.req.param("subject");
    const params = streamParams.safeParse({ topic: topic.name, subject });
    if (!params.success) throw invalidParameter(params.error.issues, "param");
    const expected = parseExpectedVersion(c);
    const { mode, events } = await decodeIngest(c.req.raw, config);
    const inStream = assignToStream(events, subject, mode === "batch");
    const parsed = await prepareRequestEvents(
      c.req.raw,
      mode,
      inStream,
      topic,
      config,
      registrySource(c.env.DB, topic, new URL(c.req.url).origin, config.partitionLog.retryAfterSeconds),
      c.get("incomingTraceparent"),
      createFieldProtector(c.env),
    );
    c.set("traceparent", parsed.traceparent);
    const log = c.get("log").with({ traceparent: parsed.traceparent });
    const result = await appendToStream(c.env, topic, subject, parsed.events, expected, log, config.partitionLog.retryAfterSeconds);
    const fresh = result.events.some((e) => !e.duplicate);
    return c.json({ topic: topic.name, ...result }, fresh ? 201 : 200, { "eventline-stream-version": String(result.version) });
  });

  return app
    .openapi(infoRoute, async (c) => {
      const { topic: name, subject } = c.req.valid("param");
      const topic = requireTopic(config, name);
      const partition = streamPartition(subject, topic.partitions);
      const info = await partitionStub(c.env, topic.name, partition).streamInfo(subject);
      return c.json(
        {
          topic: topic.name,
          subject,
          partition,
          version: info.version,
          lastSequence: info.lastSequence,
          updatedAt: info.updatedAt === null ? null : new Date(info.updatedAt).toISOString(),
        },
        200,
        { "eventline-stream-version": String(info.version), etag: `"${info.version}"` },
      );
    })
    .openapi(readRoute, async (c) => {
      const { topic: name, subject } = c.req.valid("param");
      const topic = requireTopic(config, name);
      const query = c.req.valid("query");
      const from = Math.max(1, query.fromVersion ?? 1);
      const limit = readLimit(config, query.limit);
      const partition = streamPartition(subject, topic.partitions);
      const page = await partitionStub(c.env, topic.name, partition).readStream(subject, from, limit);
      page.events = await revealForCaller(c, topic.name, page.events);
      const nextFrom = page.last === null ? from : page.last + 1;
      const href = `/v1/topics/${encodeURIComponent(topic.name)}/streams/${encodeURIComponent(subject)}/events?fromVersion=${nextFrom}&limit=${limit}`;
      const headers = { "eventline-stream-version": String(page.version) };
      if ((c.req.header("accept") ?? "").includes(BATCH_CONTENT_TYPE)) {
        return c.body(`[${page.events.join(",")}]`, 200, {
          ...headers,
          "content-type": BATCH_CONTENT_TYPE,
          link: `<${href}>; rel="next"`,
        }) as never;
      }
      // Stored events are spliced in as stored, as on the partition read path.
      const body = `{"topic":${JSON.stringify(topic.name)},"subject":${JSON.stringify(subject)},"partition":${partition},"version":${page.version},"events":[${page.events.join(",")}],"next":${JSON.stringify({ fromVersion: nextFrom, href })},"hasMore":${nextFrom <= page.version}}`;
      return c.body(body, 200, { ...headers, "content-type": "application/json" }) as never;
    });
}
