import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { integerString, PartitionParam, problemResponse, TopicParam } from "../../../shared/api-schemas";
import type { EventlineConfig } from "../../../shared/config";
import { access, topicParam } from "../auth/access";
import type { AppEnv } from "../context";
import { traceEvent } from "../event-trace";
import { requireTopic } from "../validation";

const SequenceParam = integerString("sequence").openapi({
  param: { name: "sequence", in: "path" },
  example: "1",
  type: "integer",
  description: "Sequence of the event in the partition (1-based; leading zeros allowed, as the stored `sequence` has them)",
});

const TraceAttemptSchema = z
  .object({
    attempt: z.number().int().openapi({ description: "Delivery attempt, 1 for the first (Queues' `attempts`)" }),
    at: z.string().openapi({ description: "When the consumer settled the attempt (ISO 8601)" }),
    sentAt: z.string().nullable().openapi({ description: "When the queue accepted the message (ISO 8601), null if not known" }),
    outcome: z.enum(["handled", "failed", "dead_lettered", "duplicate", "deferred", "skipped", "parked"]).openapi({
      description:
        "`failed`: the handler failed and the message was retried; `deferred`: held back (order, circuit breaker); `parked`: waited for its predecessor as long as its queue allows, then acked — the partition log sends it again",
    }),
    error: z.string().optional().openapi({ description: "The failure, truncated to 500 characters" }),
  })
  .openapi("TraceAttempt");

const SubscriptionTraceSchema = z
  .object({
    subscription: z.string(),
    kind: z.enum(["worker", "webhook"]),
    matched: z.boolean().openapi({ description: "The subscription's filter matches the event as stored (as evaluated at commit)" }),
    routed: z
      .boolean()
      .openapi({ description: "The partition handed the event to this subscription's outbox (or the subscription recorded it)" }),
    attempts: z.array(TraceAttemptSchema).openapi({
      description:
        "Every delivery attempt the consumer SDK recorded, oldest first. A run that handled the event at its first delivery writes no record (batch settlement, ADR 0036): it is listed from the settlement, as one more `handled` attempt with `sentAt` null",
    }),
    state: z.enum(["pending", "routed", "in_transit", "redelivered", "handled", "dead_lettered", "filtered_out", "retrying"]).openapi({
      description:
        "`routed`: committed for it, not yet handed to its queue; `in_transit`: sent, not settled; `redelivered`: sent again by the partition log after its redelivery timeout; `retrying`: its handler failed and the queue retries it; `handled`, `dead_lettered`: settled; `pending`: not known",
    }),
    delivery: z
      .object({ sends: z.number().int(), sentAt: z.string().nullable() })
      .optional()
      .openapi({ description: "While unacknowledged: how often the partition handed the event to the queue, and when last" }),
    handledAt: z.string().optional(),
    deadLetteredAt: z.string().optional().openapi({ description: "Also kept after a redrive handled the event" }),
  })
  .openapi("SubscriptionTrace");

export const EventTraceSchema = z
  .object({
    topic: z.string(),
    partition: z.number().int(),
    sequence: z.number().int(),
    id: z.string(),
    source: z.string(),
    type: z.string(),
    subject: z.string().optional(),
    traceparent: z.string().openapi({ description: "W3C traceparent stored with the event" }),
    tracestate: z.string().optional(),
    correlationid: z.string().optional().openapi({ description: "The conversation this event belongs to (commands set it)" }),
    causationid: z.string().optional().openapi({ description: "Id of the event this one was emitted in reaction to" }),
    committed: z.object({ at: z.string().openapi({ description: "Commit time in the partition log (ISO 8601)" }) }),
    subscriptions: z.array(SubscriptionTraceSchema).openapi({
      description:
        "The topic's subscriptions: configured ones, then webhook ones that existed when the event was committed (or recorded it since)",
    }),
  })
  .openapi("EventTrace");

const traceRoute = createRoute({
  method: "get",
  path: "/v1/topics/{topic}/partitions/{partition}/events/{sequence}/trace",
  middleware: [access({ group: "read", action: "consume", topic: topicParam })] as const,
  tags: ["Topics"],
  summary: "An event's journey: trace context, commit, and per subscription routing, delivery attempts and state",
  description:
    "Works for archived events too. Attempts are recorded by the consumer SDK with each outcome (not while `EVENTLINE_METRICS` is `off`); `state` also uses the subscription's idempotency record and pending failures, so it is right without them.",
  request: { params: z.object({ topic: TopicParam, partition: PartitionParam, sequence: SequenceParam }) },
  responses: {
    200: { description: "The event's journey", content: { "application/json": { schema: EventTraceSchema } } },
    400: problemResponse("Invalid partition or sequence"),
    404: problemResponse("Unknown topic, partition or sequence"),
  },
});

export function traceRoutes(config: EventlineConfig) {
  return new OpenAPIHono<AppEnv>().openapi(traceRoute, async (c) => {
    const { topic: name, partition, sequence } = c.req.valid("param");
    return c.json(await traceEvent(c.env, config, requireTopic(config, name), partition, sequence), 200);
  });
}
