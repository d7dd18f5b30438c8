import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { ReadResult } from "../../../durable-objects/live-stream/types";
import { PartitionParam, problemResponse, TopicParam } from "../../../shared/api-schemas";
import type { EventlineConfig } from "../../../shared/config";
import { EventlineError } from "../../../shared/errors";
import { compileFilter, type Filter, FilterError } from "../../../shared/filter";
import { formatOffset, HEADER, type ReadFrom } from "../../../shared/live-stream/protocol";
import { isAllowed } from "../../../shared/security/grants";
import { access, topicParam } from "../auth/access";
import type { AppEnv } from "../context";
import { partitionStub } from "../ingest/append";
import { revealForCaller } from "../reveal";
import { requirePartition, requireTopic } from "../validation";
import { SECURITY_HEADERS } from "./answers";
import { answerRead, type StreamReader } from "./live";
import { liveWaitMs, readQuery } from "./request";

/**
 * Every topic partition, followed live through the Durable Streams protocol's read side (ADR
 * 0046): `GET /v1/topics/{topic}/partitions/{p}/stream` (and HEAD), read-only, JSON mode. An
 * offset's position is the last sequence read (`-1`: before the first, `now`: the head); catch-up
 * pages the log and the archive as the events route does, with sensitive fields shown as that
 * route shows them to the caller; live reads wait on the partition object's hibernatable sockets.
 * `filter` (the subscription filter language, as JSON) narrows what is sent; offsets still pass
 * the events it leaves out.
 */

const PATH = "/v1/topics/{topic}/partitions/{partition}/stream";
const encoder = new TextEncoder();

function parseFilter(text: string | undefined): { text: string; test: Filter } | undefined {
  if (text === undefined) return undefined;
  let pattern: unknown;
  try {
    pattern = JSON.parse(text);
  } catch {
    throw new EventlineError("invalid_parameter", "filter must be a JSON filter pattern", {
      issues: [{ path: "/query/filter", message: "not JSON" }],
    });
  }
  try {
    return { text, test: compileFilter(pattern) };
  } catch (err) {
    if (!(err instanceof FilterError)) throw err;
    throw new EventlineError("invalid_parameter", err.message, {
      issues: err.issues.map((i) => ({ path: `/query/filter${i.path}`, message: i.message })),
    });
  }
}

/** The partition as a StreamReader (live.ts): stored CloudEvents, revealed for the caller, filtered. */
export function partitionReader(
  c: Context<AppEnv>,
  topic: string,
  partition: number,
  limit: number,
  filter?: { text: string; test: Filter },
): StreamReader {
  const stub = partitionStub(c.env, topic, partition);
  // What a range's bytes depend on besides the range: decryption for the caller, and the filter (ETags differ).
  const view = `${topic}/${partition}/${isAllowed(c.get("principal").grants, "decrypt", topic) ? "plain" : "stored"}/${encodeURIComponent(filter?.text ?? "")}`;
  return {
    fetch: (input, init) => stub.fetch(input, init),
    async read(from: ReadFrom): Promise<ReadResult> {
      const position = from === "now" ? (await stub.stats()).head : from;
      const page = await stub.read(position + 1, limit);
      if (position > page.head) return { kind: "bad_request", detail: `the offset is past the partition's head (${page.head})` };
      let events = await revealForCaller(c, topic, page.events);
      if (filter !== undefined) events = events.filter((e) => filter.test(JSON.parse(e) as Record<string, unknown>));
      const next = page.last ?? position;
      return {
        kind: "read",
        contentType: "application/json",
        next,
        closed: false,
        ttlSeconds: null,
        expiresAt: null,
        data: encoder.encode(events.join(",")),
        messages: events.length,
        from: position,
        upToDate: next >= page.head,
        incarnation: view,
      };
    },
  };
}

const route = createRoute({
  method: "get",
  path: PATH,
  tags: ["Topics"],
  summary: "Follow a partition live (Durable Streams read side: catch-up, long-poll, SSE); HEAD: its head offset",
  description:
    "JSON mode: a catch-up answer is an array of the stored CloudEvents (with `partition` and `sequence`); SSE `data` events are such arrays and `control` events carry `streamNextOffset`. An offset's position is the last sequence read: `offset=-1` starts at the first event (archived ones included), `offset=now` at the head. Resume from the last `Stream-Next-Offset` / `streamNextOffset` to get every later event exactly once, in order. `filter` (a subscription filter pattern, JSON) narrows the events sent. Sensitive fields appear as on the events route: decrypted only for a `decrypt` grant. Needs `consume` on the topic.",
  request: {
    params: z.object({ topic: TopicParam, partition: PartitionParam }),
    query: z.object({
      offset: z
        .string()
        .optional()
        .openapi({ param: { name: "offset", in: "query" }, description: "`-1`, `now` or an offset returned before" }),
      live: z
        .enum(["long-poll", "sse"])
        .optional()
        .openapi({ param: { name: "live", in: "query" } }),
      cursor: z
        .string()
        .optional()
        .openapi({ param: { name: "cursor", in: "query" } }),
      filter: z
        .string()
        .optional()
        .openapi({ param: { name: "filter", in: "query" }, description: 'Filter pattern as JSON, e.g. `{"type":["order.placed"]}`' }),
    }),
  },
  responses: {
    200: {
      description: "Events (JSON array) or an SSE stream",
      content: { "application/json": { schema: z.array(z.record(z.string(), z.unknown())) } },
    },
    204: { description: "Long-poll: no new event before the wait ended" },
    304: { description: "Not modified (`If-None-Match`)" },
    400: problemResponse("Invalid partition, offset, live mode or filter"),
    404: problemResponse("Unknown topic or partition"),
  },
});

export function partitionStreamRoutes(config: EventlineConfig) {
  const app = new OpenAPIHono<AppEnv>();
  app.openAPIRegistry.registerPath(route);
  app.get("/v1/topics/:topic/partitions/:partition/stream", access({ group: "read", action: "consume", topic: topicParam }), async (c) => {
    const topic = requireTopic(config, c.req.param("topic"));
    const partitionText = c.req.param("partition");
    const partition = Number(partitionText);
    if (!/^\d{1,9}$/.test(partitionText)) {
      throw new EventlineError("invalid_parameter", "partition must be a non-negative integer", {
        issues: [{ path: "/param/partition", message: "not a non-negative integer" }],
      });
    }
    requirePartition(topic, partition);
    if (c.req.method === "HEAD") {
      const { head } = await partitionStub(c.env, topic.name, partition).stats();
      const headers = new Headers(SECURITY_HEADERS);
      headers.set("content-type", "application/json");
      headers.set(HEADER.nextOffset, formatOffset(head));
      headers.set("cache-control", "no-store");
      return new Response(null, { status: 200, headers });
    }
    const query = readQuery(c);
    const reader = partitionReader(c, topic.name, partition, config.read.maxLimit, parseFilter(c.req.query("filter")));
    return answerRead(reader, query, liveWaitMs(c), c.req.header("if-none-match"));
  });
  return app;
}
