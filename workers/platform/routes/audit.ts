import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { problemResponse } from "../../../shared/api-schemas";
import type { EventlineConfig } from "../../../shared/config";
import { EventlineError } from "../../../shared/errors";
import { AUDIT_TOPIC } from "../audit";
import { access } from "../auth/access";
import type { AppEnv } from "../context";
import { partitionStub } from "../ingest/append";

/** Reading the audit log: its topic's one partition, filtered (global admins only). */

/** Events looked at per request at most; the response's `next` continues the scan. */
const SCAN_BUDGET = 5000;
const PAGE = 500;

const AuditQuery = z.object({
  from: z.iso
    .datetime({ offset: true })
    .optional()
    .openapi({ param: { name: "from", in: "query" }, description: "Records at or after this time" }),
  to: z.iso
    .datetime({ offset: true })
    .optional()
    .openapi({ param: { name: "to", in: "query" }, description: "Records before this time" }),
  actor: z
    .string()
    .min(1)
    .max(300)
    .optional()
    .openapi({ param: { name: "actor", in: "query" }, example: "key:k3x9q0w2m4ab" }),
  action: z
    .string()
    .min(1)
    .max(100)
    .optional()
    .openapi({ param: { name: "action", in: "query" }, example: "keys.", description: "Exact action, or a prefix ending in `.`" }),
  outcome: z
    .enum(["success", "failure", "denied"])
    .optional()
    .openapi({ param: { name: "outcome", in: "query" } }),
  cursor: z
    .string()
    .regex(/^\d{1,15}$/)
    .optional()
    .openapi({ param: { name: "cursor", in: "query" }, description: "`next.cursor` of the previous page" }),
  limit: z
    .string()
    .regex(/^\d{1,4}$/)
    .optional()
    .openapi({ param: { name: "limit", in: "query" }, description: "Records per page (default 100, at most 1000)" }),
});

const AuditRecordSchema = z
  .object({
    sequence: z.number().int(),
    time: z.string(),
    action: z.string(),
    outcome: z.enum(["success", "failure", "denied"]),
    resource: z.string(),
    actor: z.record(z.string(), z.unknown()),
    requestId: z.string(),
  })
  .catchall(z.unknown())
  .openapi("AuditRecord");

const auditRoute = createRoute({
  method: "get",
  path: "/v1/audit",
  middleware: [access({ group: "admin", action: "global" })] as const,
  tags: ["Security"],
  summary: "Search the audit log",
  description: `Oldest first. A request scans at most ${SCAN_BUDGET} records; when more remain, \`next.cursor\` continues where it stopped (also when this page has fewer than \`limit\` matches).`,
  request: { query: AuditQuery },
  responses: {
    200: {
      description: "Matching records",
      content: {
        "application/json": {
          schema: z.object({
            records: z.array(AuditRecordSchema),
            scanned: z.number().int(),
            next: z.object({ cursor: z.string(), href: z.string() }).nullable(),
          }),
        },
      },
    },
    400: problemResponse("Invalid filter"),
  },
});

interface StoredAudit {
  sequence: string;
  time: string;
  data: { action: string; outcome: string; resource: string; actor: { id: string }; requestId: string } & Record<string, unknown>;
}

export function auditRoutes(config: EventlineConfig) {
  return new OpenAPIHono<AppEnv>().openapi(auditRoute, async (c) => {
    const q = c.req.valid("query");
    if (config.topics.every((t) => t.name !== AUDIT_TOPIC)) throw new EventlineError("not_found", "the audit topic is not configured");
    const limit = Math.min(Number(q.limit ?? 100), 1000);
    if (limit < 1)
      throw new EventlineError("invalid_parameter", "limit must be at least 1", { issues: [{ path: "/query/limit", message: "≥ 1" }] });
    const fromMs = q.from === undefined ? undefined : Date.parse(q.from);
    const toMs = q.to === undefined ? undefined : Date.parse(q.to);
    const log = partitionStub(c.env, AUDIT_TOPIC, 0);
    let position = q.cursor !== undefined ? Number(q.cursor) : fromMs !== undefined ? await log.locate(fromMs) : 1;
    const records: z.output<typeof AuditRecordSchema>[] = [];
    let scanned = 0;
    /** Nothing further can match: the log's end, or past `to`. */
    let exhausted = false;
    while (!exhausted && records.length < limit && scanned < SCAN_BUDGET) {
      const page = await log.read(position, Math.min(PAGE, SCAN_BUDGET - scanned));
      if (page.last === null) {
        exhausted = true;
        break;
      }
      for (const raw of page.events) {
        scanned++;
        const event = JSON.parse(raw) as StoredAudit;
        const sequence = Number(event.sequence);
        position = sequence + 1;
        const time = Date.parse(event.time);
        if (toMs !== undefined && time >= toMs) {
          exhausted = true;
          break;
        }
        if (fromMs !== undefined && time < fromMs) continue;
        const d = event.data;
        if (q.actor !== undefined && d.actor?.id !== q.actor) continue;
        if (q.action !== undefined && !(q.action.endsWith(".") ? d.action.startsWith(q.action) : d.action === q.action)) continue;
        if (q.outcome !== undefined && d.outcome !== q.outcome) continue;
        records.push({ sequence, time: event.time, ...d } as z.output<typeof AuditRecordSchema>);
        if (records.length >= limit) break;
      }
      if (position > page.head) exhausted = true;
    }
    const more = !exhausted;
    const params = new URLSearchParams(
      Object.entries({ ...q, cursor: String(position) }).filter((e): e is [string, string] => e[1] !== undefined),
    );
    return c.json({ records, scanned, next: more ? { cursor: String(position), href: `/v1/audit?${params}` } : null }, 200);
  });
}
