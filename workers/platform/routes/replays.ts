import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { problemResponse } from "../../../shared/api-schemas";
import type { EventlineConfig } from "../../../shared/config";
import { EventlineError } from "../../../shared/errors";
import type { FilterPattern } from "../../../shared/filter";
import { access, bodyTopic, may, replayTopic, subscriptionTopic } from "../auth/access";
import type { AppEnv } from "../context";
import { findSubscriptionView } from "../subscription-registry";
import { requireTopic, requireValidFilter } from "../validation";

/**
 * Replays (a ReplayJob object per job) and projection rebuilds (truncate the read model, then
 * replay the whole topic to its subscription as the live order chain).
 */

const PositionSchema = z.union(
  [
    z.object({ sequence: z.number().int().min(1) }).strict(),
    z.object({ time: z.iso.datetime({ offset: true }).openapi({ example: "2026-11-28T00:00:00Z" }) }).strict(),
  ],
  {
    // The union's own "Invalid input" names neither form; say what is expected.
    error: (issue) =>
      issue.input === undefined
        ? 'required: {"sequence": n} (n ≥ 1, per partition) or {"time": "<ISO 8601 with offset>"}'
        : 'expected {"sequence": n} (an integer ≥ 1) or {"time": "<ISO 8601 with offset>"}, nothing else',
  },
);

const CreateReplaySchema = z
  .object({
    topic: z.string().min(1),
    partitions: z.array(z.number().int().nonnegative()).min(1).optional().openapi({ description: "Default: every partition" }),
    from: PositionSchema.openapi({ description: "`{sequence}` (per partition) or `{time}` (first event committed at or after it)" }),
    to: PositionSchema.optional().openapi({ description: "Inclusive; default: each partition's head when the job starts" }),
    filter: z
      .record(z.string(), z.unknown())
      .optional()
      .openapi({ description: "Content filter (the subscription's own filter applies too)" }),
    subscription: z.string().min(1).openapi({ description: "The one subscription that receives the events" }),
    rate: z.number().int().min(1).max(10_000).optional().openapi({ description: "Events per second sent (default 1000)" }),
  })
  .strict()
  .openapi("CreateReplay");

/** What a job has seen settled, per event (ADR 0035); in total and per partition. */
const CountersShape = {
  handled: z.number().int().openapi({
    description:
      "Events the subscription settled after the job reached them (applied by this replay, or by the live delivery it was left to)",
  }),
  alreadyHandled: z
    .number()
    .int()
    .openapi({ description: "Events the subscription had settled before the job reached them (absorbed; a webhook receives them again)" }),
  deadLettered: z.number().int().openapi({ description: "Events whose settlement is a dead letter" }),
  held: z.number().int().openapi({
    description: "Events the partition log still held for the subscription (routed, not acknowledged): left to its delivery, not sent",
  }),
  awaiting: z.number().int().openapi({ description: "Events sent or held whose settlement the job has not seen yet" }),
};

const ReplayViewSchema = z
  .object({
    id: z.string(),
    topic: z.string(),
    subscription: z.string(),
    state: z.enum(["running", "done", "cancelled", "failed"]),
    rate: z.number().int(),
    from: PositionSchema,
    to: PositionSchema.nullable(),
    filter: z.record(z.string(), z.unknown()).nullable(),
    chain: z.boolean().openapi({ description: "True for a rebuild: messages carry the live order chain" }),
    createdAt: z.string(),
    updatedAt: z.string(),
    finishedAt: z.string().nullable(),
    error: z.string().nullable().openapi({ description: "Last error of a tick (the job retries)" }),
    settlement: z.enum(["watched", "sent"]).openapi({
      description:
        "`watched`: the job reads the subscription's settlement records and is `done` when every event it sent (or left to the partition log) is settled — delivered, not merely sent. `sent`: the platform cannot see the subscription's state; `done` means sent",
    }),
    partitions: z.array(
      z
        .object({
          partition: z.number().int(),
          from: z.number().int(),
          to: z.number().int(),
          position: z.number().int().openapi({ description: "Last sequence scanned" }),
          scanned: z.number().int(),
          sent: z.number().int(),
          done: z.boolean().openapi({ description: "Scanned to `to` and (watched) every event sent or held settled" }),
        })
        .extend(CountersShape),
    ),
    scanned: z.number().int(),
    sent: z.number().int(),
    ...CountersShape,
    resent: z.number().int().openapi({ description: "Events sent again after a resume (absorbed by consumers' idempotency)" }),
    total: z.number().int().openapi({ description: "Events in the ranges to scan" }),
    eventsPerSecond: z.number(),
    etaSeconds: z.number().int().nullable(),
  })
  .openapi("Replay");

const IdParam = z
  .string()
  .regex(/^rpl_[0-9a-f]{32}$/, "a replay id, rpl_ + 32 hex digits")
  .openapi({ param: { name: "id", in: "path" }, example: "rpl_3f0c9a2e1b7d4c5a8e6f1d2b3c4a5e6f" });

const createReplay = createRoute({
  method: "post",
  path: "/v1/replays",
  middleware: [access({ group: "admin", action: "replay", topic: bodyTopic, audit: "replays.create" })] as const,
  tags: ["Replays"],
  summary: "Replay a range of a topic to one subscription",
  description:
    "Starts a job that reads the range from the R2 archive and the partition logs in sequence order per partition, keeps the events that match `filter` (and the subscription's own filter), and delivers every one the subscription has not handled — including events committed before it existed — to that subscription's queue only, as runs marked `replay: {jobId, history}`, at `rate` events/s. Events the partition log is still delivering to it are left to that delivery. Consumers built with the SDK absorb events they already settled (webhooks receive them again). The job is `done` when every event is settled (handled, already handled or dead-lettered); for an ordered subscription it sends one run per partition at a time, so replayed events are applied in partition order. Progress is checkpointed after every batch; the job resumes after restarts.",
  request: { body: { required: true, content: { "application/json": { schema: CreateReplaySchema } } } },
  responses: {
    201: { description: "The job, running", content: { "application/json": { schema: ReplayViewSchema } } },
    400: problemResponse("Invalid body, or a range that ends before it starts"),
    404: problemResponse("Unknown topic or subscription"),
    422: problemResponse("The subscription is on another topic, a partition does not exist, or the filter is invalid"),
  },
});

const listReplays = createRoute({
  method: "get",
  path: "/v1/replays",
  middleware: [access({ group: "admin", action: "list" })] as const,
  tags: ["Replays"],
  summary: "Replay jobs, newest first (the last 100)",
  responses: {
    200: { description: "Jobs", content: { "application/json": { schema: z.object({ replays: z.array(ReplayViewSchema) }) } } },
  },
});

const getReplay = createRoute({
  method: "get",
  path: "/v1/replays/{id}",
  middleware: [access({ group: "admin", action: "replay", topic: replayTopic })] as const,
  tags: ["Replays"],
  summary: "A replay's state, per-partition position, events scanned and sent, rate and ETA",
  request: { params: z.object({ id: IdParam }) },
  responses: {
    200: { description: "The job", content: { "application/json": { schema: ReplayViewSchema } } },
    404: problemResponse("No such replay"),
  },
});

const cancelReplay = createRoute({
  method: "delete",
  path: "/v1/replays/{id}",
  middleware: [
    access({
      group: "admin",
      action: "replay",
      topic: replayTopic,
      audit: "replays.cancel",
      resource: (c) => `replay:${c.req.param("id")}`,
    }),
  ] as const,
  tags: ["Replays"],
  summary: "Cancel a replay (what was sent stays sent; cancelling a finished job changes nothing)",
  request: { params: z.object({ id: IdParam }) },
  responses: {
    200: { description: "The job, cancelled (or as it finished)", content: { "application/json": { schema: ReplayViewSchema } } },
    404: problemResponse("No such replay"),
  },
});

/** Read models a rebuild may truncate, by projection subscription. */
export const PROJECTION_TABLES: Record<string, string[]> = {
  activity: ["event_type_activity"],
  greetings: ["greetings"],
  "orders-view": ["orders_view"],
  "customer-summary": ["customer_summaries", "customer_spend", "customer_summary_orders"],
};

const rebuildRoute = createRoute({
  method: "post",
  path: "/v1/projections/{name}/rebuild",
  middleware: [
    access({
      group: "admin",
      action: "admin",
      topic: subscriptionTopic,
      audit: "projections.rebuild",
      resource: (c) => `projection:${c.req.param("name")}`,
    }),
  ] as const,
  tags: ["Replays"],
  summary: "Rebuild a read model from the log and the archive",
  description:
    "Marks the read model `rebuilding` (queries report it in `freshness`), empties its tables and its subscription's idempotency records and checkpoints, then replays the whole topic to the subscription from sequence 1 as the live order chain: live events arriving meanwhile wait for the replay to reach them, and each event is applied once.",
  request: {
    params: z.object({ name: z.string().openapi({ param: { name: "name", in: "path" }, example: "orders-view" }) }),
    body: {
      required: false,
      content: { "application/json": { schema: z.object({ rate: z.number().int().min(1).max(10_000).optional() }).strict() } },
    },
  },
  responses: {
    202: {
      description: "Rebuilding",
      content: {
        "application/json": { schema: z.object({ projection: z.string(), state: z.literal("rebuilding"), replay: ReplayViewSchema }) },
      },
    },
    404: problemResponse("Not a projection"),
    409: problemResponse("A rebuild of this projection is running"),
  },
});

const newReplayId = () => `rpl_${crypto.randomUUID().replaceAll("-", "")}`;

export function replayRoutes(config: EventlineConfig) {
  const app = new OpenAPIHono<AppEnv>();

  async function start(
    env: Env,
    input: {
      topic: string;
      partitions?: number[] | undefined;
      from: z.output<typeof PositionSchema>;
      to?: z.output<typeof PositionSchema> | undefined;
      filter?: Record<string, unknown> | undefined;
      subscription: string;
      rate?: number | undefined;
      chain?: boolean;
      id?: string;
    },
  ) {
    const topic = requireTopic(config, input.topic);
    const sub = await findSubscriptionView(env.DB, input.subscription);
    if (sub === undefined) throw new EventlineError("not_found", `subscription ${JSON.stringify(input.subscription)} does not exist`);
    if (sub.topic !== topic.name) {
      throw new EventlineError("unprocessable_request", `subscription ${sub.name} is on topic ${sub.topic}, not ${topic.name}`, {
        issues: [{ path: "/subscription", message: `subscribed to ${sub.topic}` }],
      });
    }
    const partitions = input.partitions ?? Array.from({ length: topic.partitions }, (_, p) => p);
    const bad = partitions.filter((p) => p >= topic.partitions);
    if (bad.length > 0 || new Set(partitions).size !== partitions.length) {
      throw new EventlineError("unprocessable_request", `topic ${topic.name} has partitions 0-${topic.partitions - 1}, each listed once`, {
        issues: [{ path: "/partitions", message: bad.length > 0 ? `no partition ${bad.join(", ")}` : "a partition is listed twice" }],
      });
    }
    requireValidFilter(input.filter);
    if (input.to !== undefined) {
      const before =
        "sequence" in input.from && "sequence" in input.to
          ? input.to.sequence < input.from.sequence
          : "time" in input.from && "time" in input.to && Date.parse(input.to.time) < Date.parse(input.from.time);
      if (before) {
        throw new EventlineError("invalid_parameter", "the range ends before it starts", {
          issues: [{ path: "/to", message: "before from" }],
        });
      }
    }
    const id = input.id ?? newReplayId();
    return env.REPLAY_JOB.getByName(id).start({
      id,
      topic: topic.name,
      partitions,
      from: input.from,
      ...(input.to === undefined ? {} : { to: input.to }),
      ...(input.filter === undefined ? {} : { filter: input.filter as FilterPattern }),
      subscription: sub.name,
      ...(sub.filter === undefined ? {} : { subscriptionFilter: sub.filter }),
      binding: sub.binding,
      rate: input.rate ?? 1000,
      chain: input.chain ?? false,
      // Every subscription here settles in the platform's D1 (ADR 0030), so the job can watch it.
      settlement: "watched",
      ordering: sub.ordering,
      replays: sub.kind === "webhook" ? "always" : "once",
    });
  }

  app.openapi(createReplay, async (c) => {
    const view = await start(c.env, c.req.valid("json"));
    return c.json(view, 201, { location: `/v1/replays/${view.id}` });
  });

  app.openapi(listReplays, async (c) => {
    const rows = await c.env.DB.prepare("SELECT view FROM replay_jobs ORDER BY created_at DESC LIMIT 100").all<{ view: string }>();
    const views = rows.results.map((r) => JSON.parse(r.view) as z.output<typeof ReplayViewSchema>);
    // Only jobs on topics the caller may replay (the rule of GET /v1/replays/{id}).
    return c.json({ replays: views.filter((v) => may(config, c.get("principal"), "replay", v.topic)) }, 200);
  });

  app.openapi(getReplay, async (c) => {
    const { id } = c.req.valid("param");
    const view = await c.env.REPLAY_JOB.getByName(id).status();
    if (view === null) throw new EventlineError("not_found", `replay ${id} does not exist`);
    return c.json(view, 200);
  });

  app.openapi(cancelReplay, async (c) => {
    const { id } = c.req.valid("param");
    const view = await c.env.REPLAY_JOB.getByName(id).cancel();
    if (view === null) throw new EventlineError("not_found", `replay ${id} does not exist`);
    return c.json(view, 200);
  });

  app.openapi(rebuildRoute, async (c) => {
    const { name } = c.req.valid("param");
    const tables = PROJECTION_TABLES[name];
    const sub = config.subscriptions.find((s) => s.name === name);
    if (tables === undefined || sub === undefined) {
      throw new EventlineError(
        "not_found",
        `${JSON.stringify(name)} is not a projection; projections: ${Object.keys(PROJECTION_TABLES).join(", ")}`,
      );
    }
    const running = await c.env.DB.prepare("SELECT replay_id FROM projection_state WHERE projection = ? AND state = 'rebuilding'")
      .bind(name)
      .first<{ replay_id: string | null }>();
    if (running?.replay_id) {
      const job = await c.env.REPLAY_JOB.getByName(running.replay_id).status();
      if (job?.state === "running") {
        throw new EventlineError("conflict", `projection ${name} is being rebuilt by replay ${running.replay_id}`, {
          extensions: { replay: running.replay_id },
        });
      }
    }
    const db = c.env.DB;
    const now = Date.now();
    // The job's id is chosen first and recorded with the truncation, so a failed start leaves a
    // record a retry can see (its job does not exist, so the retry rebuilds again).
    const replayId = newReplayId();
    await db.batch([
      ...tables.map((t) => db.prepare(`DELETE FROM ${t}`)),
      db.prepare("DELETE FROM processed_events WHERE subscription = ?").bind(name),
      db.prepare("DELETE FROM checkpoints WHERE subscription = ?").bind(name),
      db.prepare("DELETE FROM delivery_failures WHERE subscription = ?").bind(name),
      db
        .prepare(
          `INSERT INTO projection_state (projection, state, replay_id, started_at, finished_at) VALUES (?, 'rebuilding', ?, ?, NULL)
           ON CONFLICT (projection) DO UPDATE SET state = 'rebuilding', replay_id = excluded.replay_id, started_at = excluded.started_at, finished_at = NULL`,
        )
        .bind(name, replayId, now),
    ]);
    const rate = (c.req.valid("json") as { rate?: number } | undefined)?.rate;
    const replay = await start(c.env, { topic: sub.topic, from: { sequence: 1 }, subscription: name, rate, chain: true, id: replayId });
    c.get("log").info("projection rebuild started", { projection: name, replay: replay.id, tables });
    return c.json({ projection: name, state: "rebuilding" as const, replay }, 202);
  });

  return app;
}
