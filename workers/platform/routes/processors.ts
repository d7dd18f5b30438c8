import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { DeadLetterPageQuery, problemResponse } from "../../../shared/api-schemas";
import type { EventlineConfig } from "../../../shared/config";
import { EventlineError } from "../../../shared/errors";
import { type ProcessorPlan, processorPlans } from "../../../shared/processors";
import { processorRouteOf } from "../../../shared/processors-config";
import { access, may, type NamedResource } from "../auth/access";
import type { AppEnv } from "../context";
import { processorView } from "../processors";
import { ProcessorDeadLetterPageSchema, ProcessorNameParam, ProcessorResetSchema, ProcessorSchema } from "./processor-schemas";

/**
 * Stream processors (docs/processors.md): their views, reset/rebuild and late-event dead letters.
 * A processor is a consumer of its input topic, so it is guarded like a subscription of it:
 * reading needs `consume` on the input topic, dead letters and reset need `admin` there (reset is
 * audited as `processors.reset`). Results and the D1 table are written by the platform only.
 */

/** `topic` resolver: the `{name}` processor and its input topic, undefined if no such processor. */
const processorTopic = (c: Context<AppEnv>): NamedResource => {
  const name = c.req.param("name") ?? "";
  return { name: `processor:${name}`, topic: processorPlans(c.get("config")).get(name)?.config.input.topic };
};

const processorResource = (c: Context<AppEnv>) => `processor:${c.req.param("name")}`;

const listRoute = createRoute({
  method: "get",
  path: "/v1/processors",
  middleware: [access({ group: "read", action: "list" })] as const,
  tags: ["Processors"],
  summary: "Every stream processor on a topic the caller may consume, with watermarks, lag, open windows and late events",
  responses: {
    200: { description: "Processors", content: { "application/json": { schema: z.object({ processors: z.array(ProcessorSchema) }) } } },
  },
});

const getRoute = createRoute({
  method: "get",
  path: "/v1/processors/{name}",
  middleware: [access({ group: "read", action: "consume", topic: processorTopic })] as const,
  tags: ["Processors"],
  summary: "A processor: its declaration, and per instance its watermark, inputs (idle or not), lag, open windows, late events",
  request: { params: z.object({ name: ProcessorNameParam }) },
  responses: {
    200: { description: "The processor", content: { "application/json": { schema: ProcessorSchema } } },
    404: problemResponse("Unknown processor"),
  },
});

const resetRoute = createRoute({
  method: "post",
  path: "/v1/processors/{name}/reset",
  middleware: [
    access({ group: "admin", action: "admin", topic: processorTopic, audit: "processors.reset", resource: processorResource }),
  ] as const,
  tags: ["Processors"],
  summary: "Drop a processor's window state on every instance and rebuild it from its input topic's whole history (log and archive)",
  description:
    "Each instance forgets its state, checkpoints and unsent outputs, then reads the input topic again from sequence 1 of every partition (the archive, then the log) through its head at the reset, in commit order across partitions, applies the inputs whose key is its own, and then continues with its partition of `processor.<name>` after that partition's head at the reset (`rebuildThrough`). Results are appended under the same deterministic ids, so a result already in the output topic is a duplicate, not a second event; window rows in D1 are upserted again; late events are dead-lettered again under the same ids (once). Follow the rebuild with GET /v1/processors/{name}: `backfill` shows the input events read of the total; it is done once `backfill` is null and `catchingUp` false on every partition. A reset of a processor already rebuilding starts it over.",
  request: { params: z.object({ name: ProcessorNameParam }) },
  responses: {
    202: { description: "Every instance was reset and is rebuilding", content: { "application/json": { schema: ProcessorResetSchema } } },
    404: problemResponse("Unknown processor"),
    503: problemResponse("An instance did not answer; the others were reset. Send the request again (a reset can be repeated)"),
  },
});

const deadLettersRoute = createRoute({
  method: "get",
  path: "/v1/processors/{name}/dead-letters",
  middleware: [access({ group: "admin", action: "admin", topic: processorTopic })] as const,
  tags: ["Processors"],
  summary: "A processor's dead letters (late events, events without a key), newest first, paged",
  request: {
    params: z.object({ name: ProcessorNameParam }),
    query: DeadLetterPageQuery,
  },
  responses: {
    200: { description: "A page of dead letters", content: { "application/json": { schema: ProcessorDeadLetterPageSchema } } },
    400: problemResponse("Invalid limit or cursor"),
    404: problemResponse("Unknown processor"),
  },
});

interface ProcessorDeadLetterRow {
  id: string;
  topic: string;
  partition: number;
  sequence: number;
  event_id: string | null;
  body: string;
  reason: string;
  error: string;
  dead_lettered_at: number;
}

function requirePlan(config: EventlineConfig, name: string): ProcessorPlan {
  const plan = processorPlans(config).get(name);
  if (plan === undefined) {
    const known = [...processorPlans(config).keys()];
    throw new EventlineError(
      "not_found",
      `processor ${JSON.stringify(name)} does not exist${known.length > 0 ? `; processors: ${known.join(", ")}` : ""}`,
    );
  }
  return plan;
}

/** Cursor = "<dead_lettered_at>:<id>" of the last row of the page (pages go newest first). */
function parseCursor(after: string | undefined): [number, string] | undefined {
  if (after === undefined) return undefined;
  const m = /^(\d{1,15}):(.+)$/.exec(after);
  if (m === null)
    throw new EventlineError("invalid_parameter", "after must be the `next` value of a previous page", {
      issues: [{ path: "/query/after", message: "malformed cursor" }],
    });
  return [Number(m[1]), m[2] ?? ""];
}

function toDeadLetter(row: ProcessorDeadLetterRow) {
  let input: unknown;
  try {
    input = JSON.parse(row.body);
  } catch {
    input = row.body;
  }
  return {
    id: row.id,
    topic: row.topic,
    partition: row.partition,
    sequence: row.sequence,
    eventId: row.event_id,
    reason: row.reason,
    error: row.error,
    deadLetteredAt: new Date(row.dead_lettered_at).toISOString(),
    input,
  };
}

export function processorRoutes(config: EventlineConfig) {
  return new OpenAPIHono<AppEnv>()
    .openapi(listRoute, async (c) => {
      const principal = c.get("principal");
      // The single view's rule (consume on the input topic), as for subscriptions.
      const visible = [...processorPlans(config).values()].filter((p) => may(config, principal, "consume", p.config.input.topic));
      return c.json({ processors: await Promise.all(visible.map((plan) => processorView(c.env, config, plan))) }, 200);
    })
    .openapi(getRoute, async (c) => {
      const plan = requirePlan(config, c.req.valid("param").name);
      return c.json(await processorView(c.env, config, plan), 200);
    })
    .openapi(resetRoute, async (c) => {
      const plan = requirePlan(config, c.req.valid("param").name);
      const name = plan.config.name;
      const instances = Array.from({ length: plan.instances }, (_, i) => i);
      const outcomes = await Promise.allSettled(
        instances.map((instance) => c.env.PROCESSOR.getByName(`${name}/${instance}`).reset({ processor: name, instance })),
      );
      const failed = instances.filter((i) => outcomes[i]?.status === "rejected");
      if (failed.length > 0) {
        c.get("log").warn("processor reset incomplete", {
          processor: name,
          failed,
          error: outcomes.find((o) => o.status === "rejected")?.reason,
        });
        throw new EventlineError(
          "unavailable",
          `instances ${failed.join(", ")} of processor ${name} did not answer; the other ${instances.length - failed.length} were reset. Send the reset again`,
          { retryAfter: 5 },
        );
      }
      // What each instance took at its reset: the heads it reads the input topic through, and where its internal partition continues.
      const rebuilt = instances.map((partition) => {
        const o = outcomes[partition];
        const taken = o?.status === "fulfilled" ? o.value : { rebuildThrough: 0, inputThrough: [] };
        return { partition, rebuildThrough: taken.rebuildThrough, inputThrough: taken.inputThrough };
      });
      const events = Math.max(0, ...rebuilt.map((r) => r.inputThrough.reduce((n, h) => n + h, 0)));
      c.set("auditDetails", { instances: instances.length, events });
      c.get("log").info("processor reset", { processor: name, route: processorRouteOf(name), instances: instances.length, events });
      const status = `/v1/processors/${encodeURIComponent(name)}`;
      return c.json({ processor: name, state: "rebuilding" as const, instances: rebuilt, events, status }, 202, { location: status });
    })
    .openapi(deadLettersRoute, async (c) => {
      const plan = requirePlan(config, c.req.valid("param").name);
      const { after, limit = 100 } = c.req.valid("query");
      const cursor = parseCursor(after);
      const subscription = processorRouteOf(plan.config.name);
      const db = c.env.DB;
      const page =
        cursor === undefined
          ? db
              .prepare(`SELECT * FROM dead_letters WHERE subscription = ? ORDER BY dead_lettered_at DESC, id DESC LIMIT ?`)
              .bind(subscription, limit)
          : db
              .prepare(
                `SELECT * FROM dead_letters WHERE subscription = ? AND (dead_lettered_at < ? OR (dead_lettered_at = ? AND id < ?))
                 ORDER BY dead_lettered_at DESC, id DESC LIMIT ?`,
              )
              .bind(subscription, cursor[0], cursor[0], cursor[1], limit);
      const [rows, total] = await Promise.all([
        page.all<ProcessorDeadLetterRow>(),
        db.prepare("SELECT COUNT(*) AS n FROM dead_letters WHERE subscription = ?").bind(subscription).first<{ n: number }>(),
      ]);
      const last = rows.results.at(-1);
      const next = last !== undefined && rows.results.length === limit ? `${last.dead_lettered_at}:${last.id}` : null;
      return c.json({ deadLetters: rows.results.map(toDeadLetter), total: total?.n ?? 0, next }, 200);
    });
}
