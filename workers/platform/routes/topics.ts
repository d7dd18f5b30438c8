import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Segment } from "../../../durable-objects/partition-log/archive/format";
import {
  ArchiveManifestSchema,
  ArchiveResponseSchema,
  EventPageSchema,
  PartitionParam,
  problemResponse,
  ReadQuery,
  TopicListSchema,
  TopicParam,
  TopicSchema,
} from "../../../shared/api-schemas";
import { BATCH_CONTENT_TYPE } from "../../../shared/cloudevents";
import type { EventlineConfig, TopicConfig } from "../../../shared/config";
import { access, canSee, topicParam } from "../auth/access";
import type { AppEnv } from "../context";
import { partitionStub, partitionUnavailable } from "../ingest/append";
import { revealForCaller } from "../reveal";
import { readLimit, requirePartition, requireTopic } from "../validation";

const listRoute = createRoute({
  method: "get",
  path: "/v1/topics",
  middleware: [access({ group: "read", action: "list" })] as const,
  tags: ["Topics"],
  summary: "List topics with per-partition head sequences",
  responses: { 200: { description: "Every configured topic", content: { "application/json": { schema: TopicListSchema } } } },
});

const topicRoute = createRoute({
  method: "get",
  path: "/v1/topics/{topic}",
  middleware: [access({ group: "read", action: "consume", topic: topicParam })] as const,
  tags: ["Topics"],
  summary: "One topic's config and per-partition head sequence and event count",
  request: { params: z.object({ topic: TopicParam }) },
  responses: {
    200: { description: "The topic", content: { "application/json": { schema: TopicSchema } } },
    404: problemResponse("Unknown topic"),
  },
});

const readRoute = createRoute({
  method: "get",
  path: "/v1/topics/{topic}/partitions/{partition}/events",
  middleware: [access({ group: "read", action: "consume", topic: topicParam })] as const,
  tags: ["Topics"],
  summary: "Read a partition's events in sequence order",
  description: `Events come back exactly as stored: CloudEvents in JSON format with the server-owned \`partition\`, \`sequence\` (zero-padded) and \`receivedtime\` attributes. Follow \`next.href\` for the next page. With \`Accept: ${BATCH_CONTENT_TYPE}\` the body is the bare batch and the next page is in a \`Link: <…>; rel="next"\` header.`,
  request: { params: z.object({ topic: TopicParam, partition: PartitionParam }), query: ReadQuery },
  responses: {
    200: {
      description: "A page of events",
      content: {
        "application/json": { schema: EventPageSchema },
        [BATCH_CONTENT_TYPE]: { schema: z.array(z.record(z.string(), z.unknown())) },
      },
    },
    400: problemResponse("Invalid partition, from or limit"),
    404: problemResponse("Unknown topic or partition"),
  },
});

const archiveRoute = createRoute({
  method: "post",
  path: "/v1/topics/{topic}/archive",
  middleware: [access({ group: "admin", action: "admin", topic: topicParam, audit: "archive.seal" })] as const,
  tags: ["Topics"],
  summary: "Seal and archive every partition's unarchived events to R2 now",
  description:
    "Each partition writes its unarchived events as segments (at most `archive.segmentEvents` each), stored with their SHA-256 (R2 refuses a mismatch), records them in its manifest, then trims archived events past the topic's retention that the outbox no longer needs. Normally a partition does this by itself from an alarm.",
  request: { params: z.object({ topic: TopicParam }) },
  responses: {
    200: { description: "What each partition sealed", content: { "application/json": { schema: ArchiveResponseSchema } } },
    404: problemResponse("Unknown topic"),
    503: problemResponse("R2 or a partition is unavailable; retry"),
  },
});

const manifestRoute = createRoute({
  method: "get",
  path: "/v1/topics/{topic}/archive",
  middleware: [access({ group: "admin", action: "admin", topic: topicParam })] as const,
  tags: ["Topics"],
  summary: "The archive manifest of every partition; `verify=true` checks every segment in R2",
  request: {
    params: z.object({ topic: TopicParam }),
    query: z.object({
      verify: z
        .enum(["true", "false"])
        .optional()
        .openapi({
          param: { name: "verify", in: "query" },
          description: "Read every segment back: presence, size, SHA-256, hash chain, sequences",
        }),
    }),
  },
  responses: {
    200: { description: "Segments per partition", content: { "application/json": { schema: ArchiveManifestSchema } } },
    404: problemResponse("Unknown topic"),
  },
});

const partitionsOf = (topic: TopicConfig) => Array.from({ length: topic.partitions }, (_, p) => p);

async function describeTopic(env: Env, topic: TopicConfig) {
  const partitionStats = await Promise.all(
    Array.from({ length: topic.partitions }, async (_, partition) => {
      // `unacknowledged` answers per checkpoint given; none is given here.
      const { unacknowledged: _none, ...stats } = await partitionStub(env, topic.name, partition).stats();
      return { partition, ...stats };
    }),
  );
  return {
    name: topic.name,
    ...(topic.description === undefined ? {} : { description: topic.description }),
    partitions: topic.partitions,
    retentionHours: topic.retentionHours,
    strictTypes: topic.strictTypes,
    schemaTypes: Object.keys(topic.schemas),
    partitionStats,
  };
}

/**
 * A segment as the API shows it: its commit times as RFC 3339 strings, like every timestamp of the
 * API (the manifest in R2 keeps them as epoch milliseconds, its own stored format).
 */
const segmentView = (segment: Segment) => ({
  ...segment,
  firstReceivedAt: new Date(segment.firstReceivedAt).toISOString(),
  lastReceivedAt: new Date(segment.lastReceivedAt).toISOString(),
});

export function topicRoutes(config: EventlineConfig) {
  return new OpenAPIHono<AppEnv>()
    .openapi(listRoute, async (c) => {
      // Only the topics the caller holds some grant on.
      const visible = config.topics.filter((t) => canSee(c.get("principal"), t.name, config));
      return c.json({ topics: await Promise.all(visible.map((t) => describeTopic(c.env, t))) }, 200);
    })
    .openapi(topicRoute, async (c) => c.json(await describeTopic(c.env, requireTopic(config, c.req.valid("param").topic)), 200))
    .openapi(archiveRoute, async (c) => {
      const topic = requireTopic(config, c.req.valid("param").topic);
      const partitions = await Promise.all(
        partitionsOf(topic).map(async (partition) => {
          try {
            const result = await partitionStub(c.env, topic.name, partition).archiveNow();
            return { partition, ...result, sealed: result.sealed.map(segmentView) };
          } catch (err) {
            c.get("log").warn("archive failed", { topic: topic.name, partition, error: err });
            // Nothing half-done stays behind (a retry seals the same range): retrying is safe.
            throw partitionUnavailable(err, `archiving ${topic.name}/${partition}`, 5);
          }
        }),
      );
      return c.json({ topic: topic.name, partitions }, 200);
    })
    .openapi(manifestRoute, async (c) => {
      const topic = requireTopic(config, c.req.valid("param").topic);
      const verify = c.req.valid("query").verify === "true";
      const partitions = await Promise.all(
        partitionsOf(topic).map(async (partition) => {
          const stub = partitionStub(c.env, topic.name, partition);
          const segments = ((await stub.manifest())?.segments ?? []).map(segmentView);
          return verify ? { partition, segments, verified: await stub.verify() } : { partition, segments };
        }),
      );
      return c.json({ topic: topic.name, partitions }, 200);
    })
    .openapi(readRoute, async (c) => {
      const { topic: name, partition } = c.req.valid("param");
      const topic = requireTopic(config, name);
      requirePartition(topic, partition);
      const query = c.req.valid("query");
      const from = Math.max(1, query.from ?? 1);
      const limit = readLimit(config, query.limit);
      const page = await partitionStub(c.env, name, partition).read(from, limit);
      page.events = await revealForCaller(c, name, page.events);
      const nextFrom = page.last === null ? from : page.last + 1;
      const hasMore = nextFrom <= page.head;
      const href = `/v1/topics/${encodeURIComponent(name)}/partitions/${partition}/events?from=${nextFrom}&limit=${limit}`;
      if ((c.req.header("accept") ?? "").includes(BATCH_CONTENT_TYPE)) {
        // `as never`: the body is stored JSON spliced as text, which the typed-response helper cannot see.
        return c.body(`[${page.events.join(",")}]`, 200, { "content-type": BATCH_CONTENT_TYPE, link: `<${href}>; rel="next"` }) as never;
      }
      // Stored events are spliced in as stored: no parse / re-serialise on the read path.
      const body = `{"topic":${JSON.stringify(name)},"partition":${partition},"head":${page.head},"first":${page.first},"events":[${page.events.join(",")}],"next":${JSON.stringify({ from: nextFrom, href })},"hasMore":${hasMore}}`;
      return c.body(body, 200, { "content-type": "application/json" }) as never;
    });
}
