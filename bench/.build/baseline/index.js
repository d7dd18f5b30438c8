// bench/baseline-worker.js
import { DurableObject } from "cloudflare:workers";
var CREATE_EVENTS = `CREATE TABLE IF NOT EXISTS events (
  sequence    INTEGER PRIMARY KEY,
  source      TEXT NOT NULL,
  id          TEXT NOT NULL,
  hash        TEXT NOT NULL,
  type        TEXT NOT NULL,
  subject     TEXT,
  traceparent TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  body        TEXT NOT NULL
)`;
var INSERT = `INSERT INTO events (sequence, source, id, hash, type, subject, traceparent, received_at, body)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`;
var NO_HASH = "0".repeat(64);
var NO_TRACE = "00-00000000000000000000000000000001-0000000000000001-01";
var BareLog = class extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(CREATE_EVENTS);
    this.head = this.sql.exec("SELECT COALESCE(MAX(sequence), 0) AS head FROM events").one().head;
  }
  /** Inserts rows in one transaction; durability comes from the output gate on the RPC reply. */
  insert(rows) {
    return this.ctx.storage.transactionSync(() => {
      const first = this.head + 1;
      let head = this.head;
      const receivedAt = Date.now();
      for (const row of rows) {
        head += 1;
        this.sql.exec(INSERT, head, row.source, row.id, NO_HASH, row.type, row.subject, NO_TRACE, receivedAt, row.body);
      }
      this.head = head;
      return { first, last: head };
    });
  }
};
function toRow(event) {
  return {
    source: String(event.source),
    id: String(event.id),
    type: String(event.type),
    subject: typeof event.subject === "string" ? event.subject : null,
    body: JSON.stringify(event)
  };
}
var baseline_worker_default = {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (request.method !== "POST" || pathname !== "/one" && pathname !== "/batch") {
      return new Response("POST /one or /batch\n", { status: 404 });
    }
    let parsed;
    try {
      parsed = await request.json();
    } catch {
      return new Response("body is not JSON\n", { status: 400 });
    }
    const events = pathname === "/one" ? [parsed] : parsed;
    if (!Array.isArray(events) || events.length === 0) return new Response("expected a JSON array\n", { status: 400 });
    const result = await env.BARE_LOG.getByName("bench").insert(events.map(toRow));
    return Response.json(result, { status: 202 });
  }
};
export {
  BareLog,
  baseline_worker_default as default
};
