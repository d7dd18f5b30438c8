import { DurableObject } from "cloudflare:workers";
import { z } from "zod";
import config from "../eventline.config";
import { formatSequence } from "../shared/cloudevents";
import { compileFilter } from "../shared/filter";
import { joinMembers, type Member } from "../shared/json";
import { createLogger } from "../shared/logger";
import type { Delivery } from "../shared/messages";
import { findSubscription, queueBinding, type Route, routesFor } from "../shared/subscriptions";
import { createOutboxTable, drainOutbox, OutboxWrites, outboxDepths, type SendBatch } from "./outbox";

/** When a relay attempt fails (or was never finished), the alarm tries again after this. */
const RELAY_RETRY_MS = 2_000;
const RELAY_RETRY_MAX_MS = 60_000;

/**
 * One partition of one topic: an ordered, durable, append-only event log in the object's
 * SQLite storage. Every append call is one SQLite transaction, so a call's events are stored
 * all together or not at all; the RPC result reaches the caller only after the runtime has
 * made that transaction durable (the output gate), which is what lets the Worker answer 202.
 */

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/**
 * An event's columns and its stored form. The Worker has validated the full envelope and
 * serialized it once, as canonical members (sorted `[key, canonical JSON of the value]`, trace
 * context resolved); the log merges in its own attributes and stores the joined text. This
 * re-checks what the log itself relies on, cheaply: shapes, and that the columns agree with the
 * members they are indexed by.
 */
const eventInput = z
  .object({
    source: z.string().min(1),
    id: z.string().min(1),
    type: z.string().min(1),
    subject: z.string().min(1).optional(),
    traceparent: z.string().regex(TRACEPARENT),
    /** SHA-256 (hex) of the event's canonical JSON without trace attributes: "same content". */
    hash: z.string().regex(/^[0-9a-f]{64}$/),
    /** `[key, text]` string pairs, at least one (a zod check that skips zod's per-element machinery). */
    members: z.custom<Member[]>(isMemberList, { message: "members must be a non-empty list of [key, JSON text] string pairs" }),
  })
  .refine(membersAgree, {
    message: "source/id must match the event's own, as must type, subject and traceparent; members sorted by key, specversion 1.0",
  });

function isMemberList(value: unknown): boolean {
  if (!Array.isArray(value) || value.length === 0) return false;
  for (const member of value) {
    if (!Array.isArray(member) || member.length !== 2 || typeof member[0] !== "string" || typeof member[1] !== "string") return false;
  }
  return true;
}

/**
 * True when the members are sorted by key without repeats, hold specversion "1.0", and the
 * columns are exactly the event's own attributes (an absent subject included).
 */
function membersAgree(e: {
  source: string;
  id: string;
  type: string;
  subject?: string | undefined;
  traceparent: string;
  members: Member[];
}): boolean {
  let seen = 0;
  let previous: string | undefined;
  for (const [key, text] of e.members) {
    if (previous !== undefined && !(previous < key)) return false;
    previous = key;
    switch (key) {
      case "id":
        if (text !== JSON.stringify(e.id)) return false;
        seen |= 1;
        break;
      case "source":
        if (text !== JSON.stringify(e.source)) return false;
        seen |= 2;
        break;
      case "specversion":
        if (text !== '"1.0"') return false;
        seen |= 4;
        break;
      case "type":
        if (text !== JSON.stringify(e.type)) return false;
        seen |= 8;
        break;
      case "traceparent":
        if (text !== JSON.stringify(e.traceparent)) return false;
        seen |= 16;
        break;
      case "subject":
        if (e.subject === undefined || text !== JSON.stringify(e.subject)) return false;
        seen |= 32;
        break;
    }
  }
  return seen === (e.subject === undefined ? 31 : 63);
}

export const appendInputSchema = z.object({
  topic: z.string().min(1),
  partition: z.number().int().nonnegative(),
  events: z.array(eventInput).min(1),
});
export type AppendInput = z.input<typeof appendInputSchema>;

export interface AppendedEvent {
  id: string;
  source: string;
  sequence: number;
  duplicate: boolean;
}

export type AppendResult =
  | { ok: true; events: AppendedEvent[]; head: number; queued: number }
  | { ok: false; code: "duplicate_conflict"; detail: string; source: string; id: string; sequence: number }
  | { ok: false; code: "overloaded"; detail: string; retryAfter: number };

export interface ReadResult {
  /** Stored events, exactly as committed (canonical JSON text). */
  events: string[];
  head: number;
  /** Lowest sequence still held locally (0 when empty). */
  first: number;
  /** Sequence of the last event returned, null when none was. */
  last: number | null;
}

export interface PartitionStats {
  head: number;
  count: number;
  first: number;
  /** Committed events not yet handed to each subscription's queue. */
  outbox: Record<string, number>;
  /** Last sequence routed to each subscription (what it will have seen once caught up). */
  routed: Record<string, number>;
}

/** Runtime (webhook) subscriptions of this partition's topic, pushed by the Worker. */
const runtimeRoutesSchema = z.array(z.object({ name: z.string().min(1), filter: z.record(z.string(), z.unknown()).nullable() })).max(1000);
export type RuntimeRoutes = z.input<typeof runtimeRoutesSchema>;
/** Every runtime subscription is delivered through the shared webhook queue. */
const RUNTIME_ROUTE_QUEUE = "WEBHOOK_DELIVERY";

/**
 * Routes of subscriptions without a filter: every event matches them (compileFilter(undefined)),
 * so the commit path needn't parse the stored event for them. Configured ones are found here,
 * runtime ones are added as they are compiled.
 */
const UNFILTERED = new WeakSet<Route>(
  config.topics.flatMap((t) => routesFor(t.name).filter((r) => findSubscription(r.name)?.filter === undefined)),
);
const isUnfiltered = (route: Route) => UNFILTERED.has(route);

const readInputSchema = z.object({
  from: z.number().int().min(1),
  limit: z.number().int().min(1).max(config.read.maxLimit),
});

/** RPC arguments are parsed, not trusted; the error names what was wrong across the RPC boundary. */
function parseArgs<T extends z.ZodType>(schema: T, value: unknown, what: string): z.output<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new TypeError(`invalid ${what}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

class ConflictAbort extends Error {
  constructor(
    readonly source: string,
    readonly id: string,
    readonly sequence: number,
  ) {
    super("duplicate id with different content");
  }
}

export class PartitionLog extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  /**
   * Highest sequence ever assigned. Not written on every commit: rows are only ever appended,
   * so at startup it is max(meta 'head', MAX(sequence)). Anything that deletes events (e.g.
   * retention trimming) MUST first persist the head to meta 'head', in the same transaction as
   * the delete, or trimming the newest rows would let their numbers be assigned again.
   */
  private head = 0;
  /** Last sequence routed to each subscription, as committed (see OutboxWrites); filled lazily. */
  private routed = new Map<string, number>();
  /** "<topic>/<partition>" this object serves, recorded by its first append. */
  private name: string | undefined;
  /** Appends whose transaction ran but whose durability the caller is still waiting for. */
  private inFlight = 0;
  /** Bound on `inFlight`; an instance field so tests can lower it for one object. */
  maxInFlight = config.partitionLog.maxInFlightAppends;
  /** The running relay, if any; a second request while it runs makes it loop once more. */
  private relaying: Promise<void> | undefined;
  private relayAgain = false;
  private relayFailures = 0;
  private alarmAt: number | null = null;
  private readonly log = createLogger({ component: "partition-log" });
  /** Webhook subscriptions created at runtime, compiled; persisted in `runtime_routes`. */
  private runtimeRoutes: Route[] = [];
  /** How the relay hands messages to a queue; an instance field so tests can inject failures. */
  send: SendBatch = async (binding: string, bodies: Delivery[]) => {
    await queueBinding(this.env, binding).sendBatch(bodies.map((body) => ({ body, contentType: "json" })));
  };

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
      this.sql.exec(`CREATE TABLE IF NOT EXISTS events (
        sequence    INTEGER PRIMARY KEY,
        source      TEXT NOT NULL,
        id          TEXT NOT NULL,
        hash        TEXT NOT NULL,
        type        TEXT NOT NULL,
        subject     TEXT,
        traceparent TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        body        TEXT NOT NULL
      )`);
      // The idempotency record lives in the event row itself, so it is kept exactly as long
      // as the event is.
      this.sql.exec(`CREATE UNIQUE INDEX IF NOT EXISTS events_source_id ON events (source, id)`);
      createOutboxTable(this.sql);
      this.sql.exec(`CREATE TABLE IF NOT EXISTS runtime_routes (name TEXT PRIMARY KEY, filter TEXT)`);
      this.runtimeRoutes = this.compileRuntimeRoutes(
        this.sql.exec<{ name: string; filter: string | null }>(`SELECT name, filter FROM runtime_routes ORDER BY name`).toArray(),
      );
      this.alarmAt = await ctx.storage.getAlarm();
      const row = this.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = 'head'`).toArray()[0];
      const last = this.sql.exec<{ s: number | null }>(`SELECT MAX(sequence) AS s FROM events`).one().s ?? 0;
      this.head = Math.max(row ? Number(row.value) : 0, last);
      this.name = this.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = 'name'`).toArray()[0]?.value;
    });
  }

  async append(input: AppendInput): Promise<AppendResult> {
    const { topic, partition, events } = parseArgs(appendInputSchema, input, "append input");
    if (this.inFlight >= this.maxInFlight) {
      return {
        ok: false,
        code: "overloaded",
        detail: `partition ${topic}/${partition} has ${this.inFlight} appends in flight`,
        retryAfter: config.partitionLog.retryAfterSeconds,
      };
    }
    this.inFlight++;
    try {
      let result: AppendResult;
      try {
        // Configured subscriptions of the topic, then runtime (webhook) ones.
        const routes = this.runtimeRoutes.length === 0 ? routesFor(topic) : [...routesFor(topic), ...this.runtimeRoutes];
        const outbox = routes.length > 0 ? new OutboxWrites(this.sql, routes, this.routed, isUnfiltered) : undefined;
        result = this.ctx.storage.transactionSync(() => this.commit(topic, partition, events, outbox));
        // Only once the transaction committed; a rollback leaves the in-memory state untouched.
        this.name = `${topic}/${partition}`;
        if (outbox !== undefined) this.routed = outbox.routed;
      } catch (err) {
        if (!(err instanceof ConflictAbort)) throw err;
        return {
          ok: false,
          code: "duplicate_conflict",
          detail: `event ${JSON.stringify(err.id)} from source ${JSON.stringify(err.source)} was already stored at sequence ${err.sequence} with different content`,
          source: err.source,
          id: err.id,
          sequence: err.sequence,
        };
      }
      // The alarm is the relay's safety net: set before the commit is acknowledged, so an
      // eviction right after the 202 still delivers.
      if (result.ok && result.queued > 0) await this.ensureAlarm(RELAY_RETRY_MS);
      // Resolves once the transaction is on disk; meanwhile later appends may run, which is
      // what the in-flight bound counts.
      await this.ctx.storage.sync();
      // Relay right after the commit, without holding the caller's response. While the relay is
      // failing, the alarm (due within RELAY_RETRY_MS, see above) retries it with backoff instead:
      // each attempt reads the outbox backlog, so retrying on every commit during a queue outage
      // would make every append pay for the whole backlog.
      if (result.ok && result.queued > 0 && this.relayFailures === 0) void this.relay();
      return result;
    } finally {
      this.inFlight--;
    }
  }

  private commit(topic: string, partition: number, events: z.output<typeof eventInput>[], outbox: OutboxWrites | undefined): AppendResult {
    this.assertIdentity(topic, partition);
    let head = this.head;
    const out: AppendedEvent[] = [];
    const receivedAt = Date.now();
    // The server attributes, as canonical members in key order: partition < receivedtime < sequence.
    const partitionMember: Member = ["partition", JSON.stringify(partition)];
    const receivedMember: Member = ["receivedtime", JSON.stringify(new Date(receivedAt).toISOString())];
    let queued = 0;
    for (const { source, id, type, subject, traceparent, hash, members } of events) {
      const sequence = head + 1;
      // canonicalJson({ ...event, partition, sequence, receivedtime }), from the event's members.
      const body = joinMembers(members, [partitionMember, receivedMember, ["sequence", JSON.stringify(formatSequence(sequence))]]);
      // The idempotency check is the unique index: a (source, id) already stored inserts nothing.
      const inserted =
        this.sql.exec(
          `INSERT INTO events (sequence, source, id, hash, type, subject, traceparent, received_at, body)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, id) DO NOTHING`,
          sequence,
          source,
          id,
          hash,
          type,
          subject ?? null,
          traceparent,
          receivedAt,
          body,
        ).rowsWritten > 0;
      if (!inserted) {
        const existing = this.sql
          .exec<{ sequence: number; hash: string }>(`SELECT sequence, hash FROM events WHERE source = ? AND id = ?`, source, id)
          .one();
        if (existing.hash !== hash) throw new ConflictAbort(source, id, existing.sequence);
        out.push({ id, source, sequence: existing.sequence, duplicate: true });
        continue;
      }
      head = sequence;
      // Filters see the event exactly as stored.
      if (outbox !== undefined) queued += outbox.add(sequence, () => JSON.parse(body) as Record<string, unknown>);
      out.push({ id, source, sequence, duplicate: false });
    }
    outbox?.finish();
    // Only after every statement succeeded; a throw above rolls the transaction back and
    // leaves the in-memory head untouched.
    this.head = head;
    return { ok: true, events: out, head, queued };
  }

  /** A partition object serves exactly one (topic, partition) for its whole life. */
  private assertIdentity(topic: string, partition: number): void {
    const name = `${topic}/${partition}`;
    if (this.name === undefined) {
      // Part of the append transaction; `this.name` is set by append() once it committed.
      this.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('name', ?)`, name);
    } else if (this.name !== name) {
      throw new Error(`partition object for ${this.name} was called as ${name}`);
    }
  }

  read(from: number, limit: number): ReadResult {
    const args = parseArgs(readInputSchema, { from, limit }, "read input");
    const rows = this.sql
      .exec<{ sequence: number; body: string }>(
        `SELECT sequence, body FROM events WHERE sequence >= ? ORDER BY sequence LIMIT ?`,
        args.from,
        args.limit,
      )
      .toArray();
    return { events: rows.map((r) => r.body), head: this.head, first: this.firstSequence(), last: rows.at(-1)?.sequence ?? null };
  }

  stats(): PartitionStats {
    // Sequences are contiguous and only a prefix is ever removed, so the count is derived
    // rather than counted (COUNT(*) would scan the whole log).
    const first = this.firstSequence();
    const routed = this.sql
      .exec<{ subscription: string; last_sequence: number }>(`SELECT subscription, last_sequence FROM routing`)
      .toArray();
    return {
      head: this.head,
      count: first === 0 ? 0 : this.head - first + 1,
      first,
      outbox: outboxDepths(this.sql),
      routed: Object.fromEntries(routed.map((r) => [r.subscription, r.last_sequence])),
    };
  }

  /**
   * Replaces the runtime subscriptions this partition routes to; they apply to events committed
   * from now on, like configured ones (filters evaluated at commit time).
   */
  setRuntimeRoutes(routes: RuntimeRoutes): number {
    const parsed = parseArgs(runtimeRoutesSchema, routes, "runtime routes");
    const compiled = this.compileRuntimeRoutes(
      parsed.map((r) => ({ name: r.name, filter: r.filter === null ? null : JSON.stringify(r.filter) })),
    );
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(`DELETE FROM runtime_routes`);
      for (const r of parsed)
        this.sql.exec(
          `INSERT INTO runtime_routes (name, filter) VALUES (?, ?)`,
          r.name,
          r.filter === null ? null : JSON.stringify(r.filter),
        );
    });
    this.runtimeRoutes = compiled;
    return compiled.length;
  }

  private compileRuntimeRoutes(rows: { name: string; filter: string | null }[]): Route[] {
    return rows.map((r) => {
      const route = {
        name: r.name,
        queue: RUNTIME_ROUTE_QUEUE,
        matches: compileFilter(r.filter === null ? undefined : JSON.parse(r.filter)),
      };
      if (r.filter === null) UNFILTERED.add(route);
      return route;
    });
  }

  /** The relay's retry: sends whatever the outbox still holds. */
  override async alarm(): Promise<void> {
    this.alarmAt = null;
    await this.relay();
  }

  /** Drains the outbox; at most one drain runs at a time, and a failure re-arms the alarm with backoff. */
  relay(): Promise<void> {
    if (this.relaying !== undefined) {
      this.relayAgain = true;
      return this.relaying;
    }
    const name = this.name;
    if (name === undefined) return Promise.resolve();
    const [topic = "", partitionText = "0"] = name.split("/");
    const partition = Number(partitionText);
    // Looked up on every use, not snapshotted: a subscription created while a relay runs must not
    // have its fresh outbox rows taken for those of a removed one.
    const queueOf = (subscription: string) => [...routesFor(topic), ...this.runtimeRoutes].find((r) => r.name === subscription)?.queue;
    this.relaying = (async () => {
      try {
        do {
          this.relayAgain = false;
          const sent = await drainOutbox(this.sql, topic, partition, queueOf, this.send, (subscription, rows) =>
            this.log.warn("outbox rows dropped: subscription no longer configured", { topic, partition, subscription, rows }),
          );
          if (sent > 0) this.log.debug("relayed", { topic, partition, sent });
        } while (this.relayAgain);
        this.relayFailures = 0;
      } catch (err) {
        this.relayFailures++;
        const retryMs = Math.min(RELAY_RETRY_MAX_MS, RELAY_RETRY_MS * 2 ** (this.relayFailures - 1));
        this.log.warn("relay failed; the alarm retries", { topic, partition, failures: this.relayFailures, retryMs, error: err });
        await this.ensureAlarm(retryMs);
      } finally {
        this.relaying = undefined;
      }
    })();
    return this.relaying;
  }

  private async ensureAlarm(inMs: number): Promise<void> {
    const at = Date.now() + inMs;
    if (this.alarmAt !== null && this.alarmAt <= at) return;
    this.alarmAt = at;
    await this.ctx.storage.setAlarm(at);
  }

  private firstSequence(): number {
    const row = this.sql.exec<{ s: number | null }>(`SELECT MIN(sequence) AS s FROM events`).one();
    return row.s ?? 0;
  }
}
