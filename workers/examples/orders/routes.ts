import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { and, desc, eq, type SQL, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import type { Context } from "hono";
import { problemResponse, wellFormed } from "../../../shared/api-schemas";
import type { EventlineConfig } from "../../../shared/config";
import { customerSpend, customerSummaries, ordersView } from "../../../shared/db/schema";
import { EventlineError } from "../../../shared/errors";
import { sha256Hex } from "../../../shared/json";
import { streamPartition } from "../../../shared/partitioner";
import { access, fixedTopic } from "../../platform/auth/access";
import { type CommandResult, executeCommand } from "../../platform/commands/execute";
import type { AppEnv } from "../../platform/context";
import { type Freshness, freshness, parsePosition, waitForPosition } from "../../platform/read-models";
import { ORDERS_TOPIC, ordersAggregate } from "./aggregate";
import { commandBodies, type OrderCommand, placeOrderBody } from "./domain";
import { CUSTOMER_SUMMARY, ORDERS_VIEW } from "./projections";

/**
 * The orders demo domain over HTTP. Commands (POST) run against the order's stream through the
 * decide/evolve aggregate; queries (GET) read the D1 read models the projections maintain, and can
 * wait for a position a command returned (read-your-writes).
 */

const OrderIdParam = z
  .string()
  .min(1)
  .max(128)
  .refine(...wellFormed)
  .openapi({ param: { name: "id", in: "path" }, example: "ord_5f2c9a0e1b7d4c3a8e6f1d2b", description: "Order id" });

const IdempotencyHeaders = z.object({
  "idempotency-key": z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,128}$/, "1-128 characters of A-Z a-z 0-9 _ . : -")
    .optional()
    .openapi({
      param: { name: "idempotency-key", in: "header" },
      description: "Re-sending a command with the same key returns its first result instead of running it again",
    }),
});

const PositionSchema = z
  .object({ partition: z.number().int(), sequence: z.number().int() })
  .openapi("Position", { description: "Where the command's last event is in the orders topic" });

const CommandResultSchema = z
  .object({
    orderId: z.string(),
    command: z.string(),
    version: z.number().int().openapi({ description: "The order stream's version after the command" }),
    position: PositionSchema,
    after: z.string().openapi({ description: "The position as `?after=` takes it for read-your-writes", example: "2:17" }),
    events: z.array(z.object({ id: z.string(), type: z.string(), streamVersion: z.number().int(), sequence: z.number().int() })),
    conflictRetries: z.number().int().openapi({ description: "Times the command was decided again after losing a version race" }),
    replayed: z
      .boolean()
      .openapi({ description: "True when this is the stored result of an earlier request with the same Idempotency-Key" }),
  })
  .openapi("CommandResult");

const LineSchema = z.object({ sku: z.string(), quantity: z.number().int(), unitPrice: z.number().int() });

const OrderSchema = z
  .object({
    orderId: z.string(),
    customerId: z.string(),
    status: z.enum(["open", "paid", "shipped", "cancelled"]),
    currency: z.string(),
    lines: z.array(LineSchema),
    total: z.number().int().openapi({ description: "Minor units (cents)" }),
    paid: z.number().int(),
    version: z.number().int().openapi({ description: "Stream version the view reflects" }),
    placedAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Order");

const FreshnessSchema = z
  .object({
    projection: z.string(),
    behindEvents: z.number().int().openapi({ description: "Committed events the read model does not reflect yet" }),
    partitions: z.array(
      z.object({ partition: z.number().int(), applied: z.number().int(), committed: z.number().int(), behind: z.number().int() }),
    ),
    waitedMs: z.number().int().optional().openapi({ description: "How long the query waited for `after`" }),
    rebuilding: z.boolean().openapi({ description: "True while the read model is rebuilt from the log (incomplete until done)" }),
  })
  .openapi("Freshness", { description: "How far the read model is behind the log" });

const ConsistencyQuery = z.object({
  after: z
    .string()
    .optional()
    .openapi({
      param: { name: "after", in: "query" },
      example: "2:17",
      description: "Wait until the read model has applied this position (a command's `after`); also `Eventline-After` header",
    }),
  wait: z
    .string()
    .regex(/^\d{1,6}$/, "milliseconds")
    .transform(Number)
    .optional()
    .openapi({
      param: { name: "wait", in: "query" },
      type: "integer",
      description: "Longest wait for `after`, ms (default 5000, at most 10000)",
    }),
});

const ListQuery = ConsistencyQuery.extend({
  status: z
    .enum(["open", "paid", "shipped", "cancelled"])
    .optional()
    .openapi({ param: { name: "status", in: "query" } }),
  customer: z
    .string()
    .min(1)
    .max(128)
    .optional()
    .openapi({ param: { name: "customer", in: "query" } }),
  limit: z
    .string()
    .regex(/^\d{1,4}$/, "a number")
    .transform(Number)
    .refine((n) => n >= 1 && n <= 100, "between 1 and 100")
    .optional()
    .openapi({ param: { name: "limit", in: "query" }, type: "integer", description: "Page size (default 20, at most 100)" }),
  cursor: z
    .string()
    .max(512)
    .optional()
    .openapi({ param: { name: "cursor", in: "query" }, description: "`next` of the previous page" }),
});

const placeRoute = createRoute({
  method: "post",
  path: "/v1/orders",
  middleware: [access({ group: "commands", action: "produce", topic: fixedTopic(ORDERS_TOPIC) })] as const,
  tags: ["Orders"],
  summary: "Place an order (returns its new id)",
  request: {
    headers: IdempotencyHeaders,
    body: { required: true, content: { "application/json": { schema: placeOrderBody } } },
  },
  responses: {
    201: { description: "Placed", content: { "application/json": { schema: CommandResultSchema } } },
    400: problemResponse("Malformed body or header"),
    422: problemResponse("The order breaks a rule (duplicate SKUs, too many lines)"),
    503: problemResponse("The order's partition is unavailable; retry (with the same Idempotency-Key)"),
  },
});

const COMMANDS = ["add-line", "remove-line", "pay", "ship", "cancel"] as const;
type CommandKind = (typeof COMMANDS)[number];
const commandSummaries: Record<CommandKind, string> = {
  "add-line": "Add a line while the order is open",
  "remove-line": "Remove a line while the order is open (not the last one)",
  pay: "Pay the order: amount and currency must equal its total",
  ship: "Ship a paid order",
  cancel: "Cancel an order that has not shipped",
};

const commandRoute = (kind: CommandKind) =>
  createRoute({
    method: "post",
    path: `/v1/orders/{id}/${kind}`,
    middleware: [access({ group: "commands", action: "produce", topic: fixedTopic(ORDERS_TOPIC) })] as const,
    tags: ["Orders"],
    summary: commandSummaries[kind],
    request: {
      params: z.object({ id: OrderIdParam }),
      headers: IdempotencyHeaders,
      body: { required: kind !== "ship" && kind !== "cancel", content: { "application/json": { schema: commandBodies[kind] } } },
    },
    responses: {
      200: { description: "Done", content: { "application/json": { schema: CommandResultSchema } } },
      400: problemResponse("Malformed body or header"),
      404: problemResponse("No such order"),
      409: problemResponse("Other writers kept changing the order; `currentVersion` says where it is"),
      422: problemResponse("The order's state forbids the command (for example paying twice); nothing was recorded"),
      503: problemResponse("The order's partition is unavailable; retry (with the same Idempotency-Key)"),
    },
  });

const getRoute = createRoute({
  method: "get",
  path: "/v1/orders/{id}",
  middleware: [access({ group: "read", action: "consume", topic: fixedTopic(ORDERS_TOPIC) })] as const,
  tags: ["Orders"],
  summary: "One order from the orders read model",
  request: { params: z.object({ id: OrderIdParam }), query: ConsistencyQuery },
  responses: {
    200: {
      description: "The order and how fresh the view is",
      content: { "application/json": { schema: z.object({ order: OrderSchema, freshness: FreshnessSchema }) } },
    },
    400: problemResponse("Invalid parameter"),
    404: problemResponse("No such order in the read model (it may not have caught up: pass `after`)"),
    503: problemResponse("The read model did not reach `after` in time; retry"),
  },
});

const listRoute = createRoute({
  method: "get",
  path: "/v1/orders",
  middleware: [access({ group: "read", action: "consume", topic: fixedTopic(ORDERS_TOPIC) })] as const,
  tags: ["Orders"],
  summary: "Orders from the read model, newest first, by status and/or customer",
  request: { query: ListQuery },
  responses: {
    200: {
      description: "A page of orders",
      content: {
        "application/json": {
          schema: z.object({ orders: z.array(OrderSchema), next: z.string().nullable(), freshness: FreshnessSchema }),
        },
      },
    },
    400: problemResponse("Invalid parameter"),
    503: problemResponse("The read model did not reach `after` in time; retry"),
  },
});

const summaryRoute = createRoute({
  method: "get",
  path: "/v1/customers/{id}/summary",
  middleware: [access({ group: "read", action: "consume", topic: fixedTopic(ORDERS_TOPIC) })] as const,
  tags: ["Orders"],
  summary: "A customer's order count and money spent per currency (paid, less cancelled)",
  request: {
    params: z.object({
      id: z
        .string()
        .min(1)
        .max(128)
        .openapi({ param: { name: "id", in: "path" }, example: "cust-1" }),
    }),
    query: ConsistencyQuery,
  },
  responses: {
    200: {
      description: "The summary (zero for a customer without orders)",
      content: {
        "application/json": {
          schema: z.object({
            summary: z.object({
              customerId: z.string(),
              orderCount: z.number().int(),
              totalSpent: z.record(z.string(), z.number().int()).openapi({ description: "Minor units per currency" }),
              updatedAt: z.string().nullable(),
            }),
            freshness: FreshnessSchema,
          }),
        },
      },
    },
    400: problemResponse("Invalid parameter"),
    503: problemResponse("The read model did not reach `after` in time; retry"),
  },
});

type OrderRow = typeof ordersView.$inferSelect;
const toOrder = (row: OrderRow) => ({
  orderId: row.orderId,
  customerId: row.customerId,
  status: row.status as "open" | "paid" | "shipped" | "cancelled",
  currency: row.currency,
  lines: row.lines,
  total: row.total,
  paid: row.paid,
  version: row.version,
  placedAt: row.placedAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
});

function encodeCursor(row: OrderRow): string {
  return btoa(JSON.stringify([row.placedAt.getTime(), row.orderId]))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replaceAll("=", "");
}

function decodeCursor(text: string): [number, string] {
  try {
    const value = JSON.parse(atob(text.replaceAll("-", "+").replaceAll("_", "/"))) as unknown;
    if (Array.isArray(value) && typeof value[0] === "number" && typeof value[1] === "string") return [value[0], value[1]];
  } catch {
    // falls through to the error below
  }
  throw new EventlineError("invalid_parameter", "cursor is not one this API returned", {
    issues: [{ path: "/query/cursor", message: "pass `next` from the previous page unchanged" }],
  });
}

export function orderRoutes(config: EventlineConfig) {
  const topic = ordersAggregate.topic;
  const app = new OpenAPIHono<AppEnv>();

  async function run(c: Context<AppEnv>, orderId: string, command: OrderCommand, key: string | undefined) {
    const result: CommandResult = await executeCommand(c.env, ordersAggregate, orderId, command, {
      config,
      idempotencyKey: key,
      correlationId: c.get("requestId"),
      traceparent: c.get("traceparent"),
      origin: new URL(c.req.url).origin,
      log: c.get("log").with({ orderId, command: command.kind }),
    });
    const after = `${result.partition}:${result.sequence}`;
    const headers: Record<string, string> = { "eventline-position": after };
    if (result.replayed) headers["idempotent-replayed"] = "true";
    const body = {
      orderId,
      command: command.kind,
      version: result.version,
      position: { partition: result.partition, sequence: result.sequence },
      after,
      events: result.events,
      conflictRetries: result.conflictRetries,
      replayed: result.replayed,
    };
    return { body, headers };
  }

  /** Waits for `after` (query or Eventline-After header) when given; then reports freshness. */
  async function consistency(
    c: Context<AppEnv>,
    projection: string,
    query: { after?: string | undefined; wait?: number | undefined },
    partitions?: number[],
  ): Promise<Freshness> {
    const afterText = query.after ?? c.req.header("eventline-after");
    let waitedMs: number | undefined;
    if (afterText !== undefined) {
      const position = parsePosition(afterText, topic, query.after !== undefined ? "/query/after" : "/header/eventline-after");
      const waitMs = Math.min(query.wait ?? config.commands.defaultWaitMs, config.commands.maxWaitMs);
      waitedMs = await waitForPosition(c.env, projection, topic, position, waitMs);
    }
    const fresh = await freshness(c.env, projection, topic, partitions);
    c.header("eventline-read-model-behind", String(fresh.behindEvents));
    return waitedMs === undefined ? fresh : { ...fresh, waitedMs };
  }

  app.openapi(placeRoute, async (c) => {
    const key = c.req.valid("header")["idempotency-key"];
    // With a key, a retried placement reaches the same order (and finds its first result).
    const orderId =
      key === undefined ? `ord_${crypto.randomUUID().replaceAll("-", "")}` : `ord_${(await sha256Hex(`place:${key}`)).slice(0, 32)}`;
    const { body, headers } = await run(c, orderId, { kind: "place", orderId, ...c.req.valid("json") }, key);
    return c.json(body, 201, { ...headers, location: `/v1/orders/${orderId}?after=${body.after}` });
  });

  for (const kind of COMMANDS) {
    app.openapi(commandRoute(kind), async (c) => {
      const { id } = c.req.valid("param");
      const input = (c.req.valid("json") as Record<string, unknown> | undefined) ?? {};
      const { body, headers } = await run(c, id, { kind, ...input } as OrderCommand, c.req.valid("header")["idempotency-key"]);
      return c.json(body, 200, headers);
    });
  }

  // Any other command name: say which exist.
  app.post("/v1/orders/:id/:command", access({ group: "commands", action: "produce", topic: fixedTopic(ORDERS_TOPIC) }), (c) => {
    throw new EventlineError(
      "not_found",
      `unknown order command ${JSON.stringify(c.req.param("command"))}; commands: ${COMMANDS.join(", ")}`,
    );
  });

  app.openapi(getRoute, async (c) => {
    const { id } = c.req.valid("param");
    const partition = streamPartition(id, topic.partitions);
    const fresh = await consistency(c, ORDERS_VIEW, c.req.valid("query"), [partition]);
    const row = (await drizzle(c.env.DB).select().from(ordersView).where(eq(ordersView.orderId, id)).limit(1))[0];
    if (row === undefined) {
      const behind =
        fresh.behindEvents > 0 ? ` (the view is ${fresh.behindEvents} event(s) behind: pass ?after=<position> to wait for it)` : "";
      throw new EventlineError("not_found", `order ${JSON.stringify(id)} is not in the orders view${behind}`, {
        extensions: { freshness: fresh },
      });
    }
    return c.json({ order: toOrder(row), freshness: fresh }, 200);
  });

  app.openapi(listRoute, async (c) => {
    const query = c.req.valid("query");
    const fresh = await consistency(c, ORDERS_VIEW, query);
    const limit = query.limit ?? 20;
    const where: SQL[] = [];
    if (query.status !== undefined) where.push(eq(ordersView.status, query.status));
    if (query.customer !== undefined) where.push(eq(ordersView.customerId, query.customer));
    if (query.cursor !== undefined) {
      const [placedAt, orderId] = decodeCursor(query.cursor);
      where.push(sql`(${ordersView.placedAt}, ${ordersView.orderId}) < (${placedAt}, ${orderId})`);
    }
    const rows = await drizzle(c.env.DB)
      .select()
      .from(ordersView)
      .where(and(...where))
      .orderBy(desc(ordersView.placedAt), desc(ordersView.orderId))
      .limit(limit + 1);
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    const next = rows.length > limit && last !== undefined ? encodeCursor(last) : null;
    return c.json({ orders: page.map(toOrder), next, freshness: fresh }, 200);
  });

  app.openapi(summaryRoute, async (c) => {
    const { id } = c.req.valid("param");
    const fresh = await consistency(c, CUSTOMER_SUMMARY, c.req.valid("query"));
    const db = drizzle(c.env.DB);
    const [summary, spend] = await Promise.all([
      db.select().from(customerSummaries).where(eq(customerSummaries.customerId, id)).limit(1),
      db.select().from(customerSpend).where(eq(customerSpend.customerId, id)),
    ]);
    const row = summary[0];
    return c.json(
      {
        summary: {
          customerId: id,
          orderCount: row?.orderCount ?? 0,
          totalSpent: Object.fromEntries(spend.map((s) => [s.currency, s.totalSpent])),
          updatedAt: row === undefined ? null : row.updatedAt.toISOString(),
        },
        freshness: fresh,
      },
      200,
    );
  });

  return app;
}
