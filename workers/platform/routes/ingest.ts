import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { IngestResponseSchema, problemResponse, TopicParam } from "../../../shared/api-schemas";
import { BATCH_CONTENT_TYPE, envelopeSchema, STRUCTURED_CONTENT_TYPE } from "../../../shared/cloudevents";
import type { EventlineConfig } from "../../../shared/config";
import { createFieldProtector } from "../../../shared/security/fields";
import { access, topicParam } from "../auth/access";
import type { AppEnv } from "../context";
import { appendToPartitions } from "../ingest/append";
import { registrySource } from "../ingest/data-schema";
import { parseIngest } from "../ingest/parse";
import { recordIngestAccepted } from "../metrics-model";
import { requireTopic } from "../validation";

/** The validating envelope schema itself, named for the document. */
const CloudEventSchema = envelopeSchema.openapi("CloudEvent", {
  description:
    "A CloudEvent in the JSON event format. Also enforced (not expressible here): source is a URI-reference, time is RFC 3339, dataschema an absolute URI, attribute names match ^[a-z0-9]+$, data and data_base64 are exclusive, partition/sequence/receivedtime are server-owned.",
});

export const ingestRoute = createRoute({
  method: "post",
  path: "/v1/topics/{topic}/events",
  tags: ["Ingest"],
  summary: "Publish CloudEvents to a topic",
  description: `Accepts the three CloudEvents 1.0 HTTP modes: structured (\`${STRUCTURED_CONTENT_TYPE}\`), batch (\`${BATCH_CONTENT_TYPE}\`, all events validated before any is stored) and binary (\`ce-*\` headers, percent-decoded; \`Content-Type\` is \`datacontenttype\`; the body is \`data\`). Each event goes to partition FNV-1a-32(partitionkey ?? subject ?? id) mod partitions. The 202 is sent only after every event is durably committed. Repeating an event (same source and id, same content) is safe: it returns the original position with \`duplicate: true\`. For a type with data schema versions, \`data\` is checked against the version \`dataschema\` names (an Eventline schema URI of the event's topic and type, any origin, stored as sent) or, when absent, the latest, whose URI is then added to the stored event (not to the content compared for duplicates).`,
  request: {
    params: z.object({ topic: TopicParam }),
    body: {
      required: true,
      // Described by reference, not as zod schemas: a zod body schema would make the route validate
      // (and parse) every JSON body before the handler, which dispatches on Content-Type itself
      // (parseIngest) with the ingest limits and error details.
      content: {
        [STRUCTURED_CONTENT_TYPE]: { schema: { $ref: "#/components/schemas/CloudEvent" } },
        [BATCH_CONTENT_TYPE]: { schema: { type: "array", items: { $ref: "#/components/schemas/CloudEvent" } } },
        "*/*": { schema: { type: "string", format: "binary", description: "Binary mode: the event's data, with ce-* headers" } },
      },
    },
  },
  responses: {
    202: { description: "Every event is committed", content: { "application/json": { schema: IngestResponseSchema } } },
    400: problemResponse("Malformed body or invalid CloudEvents envelope; `issues` lists each failing path"),
    404: problemResponse("Unknown topic"),
    409: problemResponse("An event reuses a source+id already stored with different content"),
    413: problemResponse("Body, event or batch over its limit"),
    415: problemResponse("Unsupported content type"),
    422: problemResponse(
      "`data` fails the schema version it is checked against, `dataschema` names a version its type does not have (an issue at `/dataschema` lists the versions), or the type is not accepted",
    ),
    503: problemResponse(
      "A partition is overloaded or unavailable, or the schema registry cannot be read; retry after `Retry-After` seconds (retrying the whole request is safe)",
    ),
  },
});

export function ingestRoutes(config: EventlineConfig) {
  const app = new OpenAPIHono<AppEnv>();
  app.openAPIRegistry.register("CloudEvent", CloudEventSchema);
  // One registration for the document and the handler; the body is described by reference (above),
  // so only the path parameter is validated before parseIngest.
  app.openapi({ ...ingestRoute, middleware: [access({ group: "ingest", action: "produce", topic: topicParam })] as const }, async (c) => {
    const started = Date.now();
    const name = c.req.param("topic");
    const topic = requireTopic(config, name);
    const parsed = await parseIngest(
      c.req.raw,
      topic,
      config,
      registrySource(c.env.DB, topic, new URL(c.req.url).origin, config.partitionLog.retryAfterSeconds),
      c.get("incomingTraceparent"),
      createFieldProtector(c.env),
      // Without a traceparent header the request has one already (app.ts): its events share it.
      c.get("traceparent"),
    );
    c.set("traceparent", parsed.traceparent);
    const log = c.get("log").with({ traceparent: parsed.traceparent });
    const events = await appendToPartitions(c.env, topic, parsed.events, log, config.partitionLog.retryAfterSeconds);
    // Committed: one Analytics Engine data point (fire and forget; rejects are counted in onError).
    recordIngestAccepted(c.env, topic.name, events, Date.now() - started);
    return c.json({ events }, 202);
  });
  return app;
}
