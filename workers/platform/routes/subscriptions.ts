import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { readCheckpoints } from "../../../sdk/consumer-store";
import { deliverySchema, MAX_BATCH_MESSAGES } from "../../../sdk/messages";
import { DeadLetterPageQuery, problemResponse, SubscriptionNameParam } from "../../../shared/api-schemas";
import type { EventlineConfig } from "../../../shared/config";
import { EventlineError } from "../../../shared/errors";
import { redactUrl } from "../../../shared/redact-url";
import { isAllowed } from "../../../shared/security/grants";
import { lagEvents, queueBinding } from "../../../shared/subscriptions";
import { access, may, subscriptionResource, subscriptionTopic } from "../auth/access";
import type { Principal } from "../auth/principal";
import type { AppEnv } from "../context";
import { partitionStub } from "../ingest/append";
import { findSubscriptionView, listSubscriptionViews, type SubscriptionView } from "../subscription-registry";

const PartitionStatusSchema = z
  .object({
    partition: z.number().int(),
    head: z.number().int().openapi({ description: "Highest sequence committed in the partition" }),
    checkpoint: z.number().int().openapi({ description: "Highest sequence settled in order by the subscription (0: none yet)" }),
    routed: z.number().int().openapi({
      description:
        "Last sequence of the partition routed to the subscription (its filter matched); 0: none. Sequences its filter skips never count as lag",
    }),
    lag: z.number().int().openapi({
      description: "Events routed to the subscription above its checkpoint and not yet acknowledged (0 when routed ≤ checkpoint)",
    }),
    outbox: z.number().int().openapi({ description: "Committed events not yet handed to the queue" }),
  })
  .openapi("SubscriptionPartitionStatus");

const SubscriptionSchema = z
  .object({
    name: z.string(),
    topic: z.string(),
    description: z.string().optional(),
    kind: z.enum(["worker", "webhook"]).openapi({ description: "worker: declared in config, own queue; webhook: created at runtime" }),
    filter: z.record(z.string(), z.unknown()).nullable(),
    target: z.object({
      queue: z.string(),
      binding: z.string(),
      url: z.string().optional(),
      previousSecretExpiresAt: z.string().optional().openapi({
        description:
          "Webhooks during a signing-secret rotation's overlap: until when deliveries also carry a signature under the previous secret",
      }),
    }),
    ordering: z.enum(["none", "partition"]),
    maxRetries: z.number().int(),
    backoff: z.object({ baseSeconds: z.number().int(), capSeconds: z.number().int() }),
    circuit: z.object({ state: z.string(), consecutiveFailures: z.number().int(), openedAt: z.string().nullable() }),
    counts: z.object({ handled: z.number().int(), retried: z.number().int(), deadLettered: z.number().int() }),
    dlqDepth: z.number().int(),
    lag: z.number().int().openapi({ description: "The partitions' lag, summed" }),
    partitions: z.array(PartitionStatusSchema),
  })
  .openapi("Subscription");

const DeadLetterSchema = z
  .object({
    id: z.string(),
    topic: z.string(),
    partition: z.number().int(),
    sequence: z.number().int(),
    eventId: z.string().nullable(),
    reason: z.string().openapi({ description: "max_retries, permanent, unsupported_schema_version or invalid_message" }),
    error: z.string(),
    attempts: z.number().int(),
    firstFailureAt: z.string(),
    lastFailureAt: z.string(),
    deadLetteredAt: z.string(),
    message: z.unknown().openapi({ description: "The delivery message as received (event included)" }),
  })
  .openapi("DeadLetter");

const listRoute = createRoute({
  method: "get",
  path: "/v1/subscriptions",
  middleware: [access({ group: "read", action: "list" })] as const,
  tags: ["Subscriptions"],
  summary: "Every subscription on a topic the caller may consume, with its status",
  responses: {
    200: {
      description: "Subscriptions",
      content: { "application/json": { schema: z.object({ subscriptions: z.array(SubscriptionSchema) }) } },
    },
  },
});

const getRoute = createRoute({
  method: "get",
  path: "/v1/subscriptions/{name}",
  middleware: [access({ group: "read", action: "consume", topic: subscriptionTopic })] as const,
  tags: ["Subscriptions"],
  summary: "A subscription: filter, target, per-partition checkpoint and lag, DLQ depth, circuit state, counts",
  request: { params: z.object({ name: SubscriptionNameParam }) },
  responses: {
    200: { description: "The subscription", content: { "application/json": { schema: SubscriptionSchema } } },
    404: problemResponse("Unknown subscription"),
  },
});

const dlqRoute = createRoute({
  method: "get",
  path: "/v1/subscriptions/{name}/dlq",
  middleware: [access({ group: "admin", action: "admin", topic: subscriptionTopic })] as const,
  tags: ["Subscriptions"],
  summary: "Dead letters of a subscription, oldest first, paged",
  request: {
    params: z.object({ name: SubscriptionNameParam }),
    query: DeadLetterPageQuery,
  },
  responses: {
    200: {
      description: "A page of dead letters",
      content: {
        "application/json": {
          schema: z.object({ deadLetters: z.array(DeadLetterSchema), total: z.number().int(), next: z.string().nullable() }),
        },
      },
    },
    404: problemResponse("Unknown subscription"),
  },
});

const redriveRoute = createRoute({
  method: "post",
  path: "/v1/subscriptions/{name}/dlq/redrive",
  middleware: [
    access({ group: "admin", action: "admin", topic: subscriptionTopic, audit: "dlq.redrive", resource: subscriptionResource }),
  ] as const,
  tags: ["Subscriptions"],
  summary: "Re-enqueue dead letters to the subscription's queue",
  description:
    '`{}` redrives every dead letter of the subscription, `{"ids": [...]}` the listed ones. A letter leaves the DLQ only after its message was accepted by the queue; the consumer then applies it (exactly once) even though the subscription has moved past its position.',
  request: {
    params: z.object({ name: SubscriptionNameParam }),
    body: {
      required: false,
      content: { "application/json": { schema: z.object({ ids: z.array(z.string().min(1)).min(1).max(10_000).optional() }).strict() } },
    },
  },
  responses: {
    200: {
      description: "What was redriven",
      content: {
        "application/json": {
          schema: z.object({
            redriven: z.number().int(),
            remaining: z.number().int(),
            notFound: z.array(z.string()),
            skipped: z
              .array(z.string())
              .openapi({ description: "Letters whose message is not a delivery (reason invalid_message): they stay" }),
          }),
        },
      },
    },
    400: problemResponse("Invalid body"),
    404: problemResponse("Unknown subscription"),
    503: problemResponse("The queue did not accept the messages; nothing was removed from the DLQ"),
  },
});

interface DeadLetterRow {
  id: string;
  topic: string;
  partition: number;
  sequence: number;
  event_id: string | null;
  body: string;
  reason: string;
  error: string;
  attempts: number;
  first_failure_at: number;
  last_failure_at: number;
  dead_lettered_at: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

async function requireSubscription(db: D1Database, name: string): Promise<SubscriptionView> {
  const sub = await findSubscriptionView(db, name);
  if (sub === undefined) throw new EventlineError("not_found", `subscription ${JSON.stringify(name)} does not exist`);
  return sub;
}

/**
 * A webhook URL may carry credentials (tokens in the path or query): only admins of the topic see
 * it whole; other readers get its origin.
 */
function forCaller<T extends { topic: string; target: { url?: string } }>(view: T, principal: Principal): T {
  const url = view.target.url;
  if (url === undefined || isAllowed(principal.grants, "admin", view.topic)) return view;
  return { ...view, target: { ...view.target, url: redactUrl(url) } };
}

/** A webhook's URL, and the end of its signing-secret overlap while one lasts (never a secret). */
function webhookTarget(webhook: SubscriptionView["webhook"], now = Date.now()): { url?: string; previousSecretExpiresAt?: string } {
  if (webhook === undefined) return {};
  const overlap = webhook.previousSecret;
  return overlap !== undefined && overlap.expiresAt > now
    ? { url: webhook.url, previousSecretExpiresAt: iso(overlap.expiresAt) }
    : { url: webhook.url };
}

export async function describeSubscription(env: Env, config: EventlineConfig, sub: SubscriptionView) {
  const topic = config.topics.find((t) => t.name === sub.topic);
  const partitions = topic?.partitions ?? 0;
  // The checkpoints first: each partition counts what is routed to the subscription above its own.
  const checkpoints = await readCheckpoints(env.DB, sub.name, sub.topic);
  const [stats, counts, circuit, dlq] = await Promise.all([
    Promise.all(
      Array.from({ length: partitions }, (_, p) => partitionStub(env, sub.topic, p).stats({ [sub.name]: checkpoints.get(p) ?? 0 })),
    ),
    env.DB.prepare("SELECT handled, retried, dead_lettered FROM subscription_stats WHERE subscription = ?")
      .bind(sub.name)
      .first<{ handled: number; retried: number; dead_lettered: number }>(),
    env.DB.prepare("SELECT state, consecutive_failures, opened_at FROM circuit_state WHERE subscription = ?")
      .bind(sub.name)
      .first<{ state: string; consecutive_failures: number; opened_at: number | null }>(),
    env.DB.prepare("SELECT COUNT(*) AS n FROM dead_letters WHERE subscription = ?").bind(sub.name).first<{ n: number }>(),
  ]);
  const partitionStatus = stats.map((s, partition) => {
    const checkpoint = checkpoints.get(partition) ?? 0;
    return {
      partition,
      head: s.head,
      checkpoint,
      routed: s.routed[sub.name] ?? 0,
      lag: lagEvents(checkpoint, s.head, s.routed[sub.name], s.unacknowledged[sub.name]?.events),
      outbox: s.outbox[sub.name] ?? 0,
    };
  });
  return {
    name: sub.name,
    topic: sub.topic,
    ...(sub.description === undefined ? {} : { description: sub.description }),
    kind: sub.kind,
    filter: sub.filter ?? null,
    target: { queue: sub.queue, binding: sub.binding, ...webhookTarget(sub.webhook) },
    ordering: sub.ordering,
    maxRetries: sub.maxRetries,
    backoff: sub.backoff,
    circuit: {
      state: circuit?.state ?? "closed",
      consecutiveFailures: circuit?.consecutive_failures ?? 0,
      openedAt: circuit?.opened_at ? iso(circuit.opened_at) : null,
    },
    counts: { handled: counts?.handled ?? 0, retried: counts?.retried ?? 0, deadLettered: counts?.dead_lettered ?? 0 },
    dlqDepth: dlq?.n ?? 0,
    lag: partitionStatus.reduce((sum, p) => sum + p.lag, 0),
    partitions: partitionStatus,
  };
}

function toDeadLetter(row: DeadLetterRow) {
  let message: unknown = null;
  try {
    message = JSON.parse(row.body);
  } catch {
    message = row.body;
  }
  return {
    id: row.id,
    topic: row.topic,
    partition: row.partition,
    sequence: row.sequence,
    eventId: row.event_id,
    reason: row.reason,
    error: row.error,
    attempts: row.attempts,
    firstFailureAt: iso(row.first_failure_at),
    lastFailureAt: iso(row.last_failure_at),
    deadLetteredAt: iso(row.dead_lettered_at),
    message,
  };
}

/** Cursor = "<dead_lettered_at>:<id>" of the last row of the page. */
function parseCursor(after: string | undefined): [number, string] {
  if (after === undefined) return [0, ""];
  const m = /^(\d+):(.+)$/.exec(after);
  if (!m)
    throw new EventlineError("invalid_parameter", "after must be the `next` value of a previous page", {
      issues: [{ path: "/query/after", message: "malformed cursor" }],
    });
  return [Number(m[1]), m[2] ?? ""];
}

export function subscriptionRoutes(config: EventlineConfig) {
  return new OpenAPIHono<AppEnv>()
    .openapi(listRoute, async (c) =>
      c.json(
        {
          subscriptions: await Promise.all(
            // The single view's rule (consume on the subscription's topic): a producer does not see
            // the consumers of its topic, their filters, counts and lag.
            (await listSubscriptionViews(c.env.DB))
              .filter((s) => may(config, c.get("principal"), "consume", s.topic))
              .map(async (s) => forCaller(await describeSubscription(c.env, config, s), c.get("principal"))),
          ),
        },
        200,
      ),
    )
    .openapi(getRoute, async (c) =>
      c.json(
        forCaller(
          await describeSubscription(c.env, config, await requireSubscription(c.env.DB, c.req.valid("param").name)),
          c.get("principal"),
        ),
        200,
      ),
    )
    .openapi(dlqRoute, async (c) => {
      const sub = await requireSubscription(c.env.DB, c.req.valid("param").name);
      const { after, limit = 100 } = c.req.valid("query");
      const [at, id] = parseCursor(after);
      const [page, total] = await Promise.all([
        c.env.DB.prepare(
          `SELECT * FROM dead_letters WHERE subscription = ? AND (dead_lettered_at > ? OR (dead_lettered_at = ? AND id > ?))
           ORDER BY dead_lettered_at, id LIMIT ?`,
        )
          .bind(sub.name, at, at, id, limit)
          .all<DeadLetterRow>(),
        c.env.DB.prepare("SELECT COUNT(*) AS n FROM dead_letters WHERE subscription = ?").bind(sub.name).first<{ n: number }>(),
      ]);
      const last = page.results.at(-1);
      const next = last !== undefined && page.results.length === limit ? `${last.dead_lettered_at}:${last.id}` : null;
      return c.json({ deadLetters: page.results.map(toDeadLetter), total: total?.n ?? 0, next }, 200);
    })
    .openapi(redriveRoute, async (c) => {
      const sub = await requireSubscription(c.env.DB, c.req.valid("param").name);
      const ids = c.req.valid("json")?.ids;
      const log = c.get("log").with({ subscription: sub.name });
      const queue = queueBinding(c.env, sub.binding);
      const db = c.env.DB;
      let redriven = 0;
      // "Every letter" means those there when the request came: a redriven letter that fails again
      // while this request runs comes back as a new letter, which this request must not redrive again.
      const startedAt = Date.now();
      const notFound: string[] = [];
      const skipped: string[] = [];

      // Pages of letters to redrive: the listed ids, or every letter in keyset order.
      let cursor: [number, string] = [0, ""];
      const nextPage = async (): Promise<DeadLetterRow[]> => {
        if (ids !== undefined) {
          const slice = ids.splice(0, MAX_BATCH_MESSAGES);
          if (slice.length === 0) return [];
          const rows = (
            await db
              .prepare(`SELECT * FROM dead_letters WHERE subscription = ? AND id IN (${slice.map(() => "?").join(",")})`)
              .bind(sub.name, ...slice)
              .all<DeadLetterRow>()
          ).results;
          const found = new Set(rows.map((r) => r.id));
          notFound.push(...slice.filter((x) => !found.has(x)));
          return rows.length > 0 ? rows : nextPage();
        }
        const rows = (
          await db
            .prepare(
              `SELECT * FROM dead_letters WHERE subscription = ? AND (dead_lettered_at > ? OR (dead_lettered_at = ? AND id > ?))
                 AND dead_lettered_at <= ?
               ORDER BY dead_lettered_at, id LIMIT ?`,
            )
            .bind(sub.name, cursor[0], cursor[0], cursor[1], startedAt, MAX_BATCH_MESSAGES)
            .all<DeadLetterRow>()
        ).results;
        const last = rows.at(-1);
        if (last !== undefined) cursor = [last.dead_lettered_at, last.id];
        return rows;
      };

      for (let rows = await nextPage(); rows.length > 0; rows = await nextPage()) {
        const messages: { id: string; body: unknown }[] = [];
        for (const row of rows) {
          // A letter that never was a delivery (reason invalid_message) cannot be re-sent.
          const parsed = deliverySchema.safeParse(JSON.parse(row.body));
          if (parsed.success) messages.push({ id: row.id, body: { ...parsed.data, redrive: { deadLetterId: row.id } } });
          else skipped.push(row.id);
        }
        if (messages.length === 0) continue;
        try {
          await queue.sendBatch(messages.map((m) => ({ body: m.body, contentType: "json" })));
        } catch (err) {
          log.error("redrive send failed", { error: err, redriven });
          throw new EventlineError(
            "unavailable",
            `the queue did not accept the messages; ${redriven} were redriven before, the rest stay in the DLQ`,
            {
              retryAfter: 5,
            },
          );
        }
        // Only once the queue accepted them do they leave the DLQ.
        await db.batch(messages.map((m) => db.prepare("DELETE FROM dead_letters WHERE id = ?").bind(m.id)));
        redriven += messages.length;
        log.info("redrive progress", { redriven });
      }
      const remaining = await db
        .prepare("SELECT COUNT(*) AS n FROM dead_letters WHERE subscription = ?")
        .bind(sub.name)
        .first<{ n: number }>();
      return c.json({ redriven, remaining: remaining?.n ?? 0, notFound, skipped }, 200);
    });
}
