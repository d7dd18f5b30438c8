import { DurableObject } from "cloudflare:workers";
import { z } from "zod";
import config from "../eventline.config";
import { createLogger } from "../sdk/logger";
import { newTraceparent } from "../sdk/trace";
import { storedSchema, type TallyInput, type TallyWindow, tallyInputSchema } from "../shared/audit-tally";
import { type AuditRecord, writeAudit } from "../workers/platform/audit";

/**
 * One audit record per window for something that happens on every request but is worth one
 * record per window (ADR 0031): decrypting reads, requests refused to a locked-out client address,
 * uses of a rotated-out API key secret (workers/platform/audit-windows.ts sends them). One object
 * per (action, actor, resource), e.g. `encryption.decrypt` by `key:abc` on `topic:customers`. The
 * Worker's isolates gather their counts for a few seconds and send them here (`add`); the first
 * add opens a window of `windowSeconds` (its outcome, status, reason, address and details are the
 * record's), later ones are summed into it, and once it has closed the object's alarm writes one
 * record with the sums and deletes the window.
 *
 * An object only ever sees one actor's traffic on one resource, already batched per isolate:
 * nothing global sits on the request path, and a busy actor costs its own object one small write
 * per isolate every few seconds. A window's counts are durable from the `add` that brought them;
 * a record lost to a crash between its write and the window's delete is written again (at least
 * once).
 */

/** How long a failed flush waits before the alarm tries again. */
const RETRY_MS = 30_000;

export class AuditTally extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly log = createLogger({ component: "audit-tally" });

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(`CREATE TABLE IF NOT EXISTS windows (
        opened_at INTEGER PRIMARY KEY, closes_at INTEGER NOT NULL, record TEXT NOT NULL
      )`);
    });
  }

  /** Adds counts to the open window (opening one if none is open); returns the window. */
  async add(input: TallyInput): Promise<TallyWindow> {
    const parsed = tallyInputSchema.safeParse(input);
    if (!parsed.success) throw new TypeError(`invalid tally input: ${z.prettifyError(parsed.error)}`);
    const { windowSeconds, counts, ...record } = parsed.data;
    const now = Date.now();
    const open = this.windows().find((w) => w.until > now);
    if (open !== undefined) {
      for (const [name, n] of Object.entries(counts)) open.counts[name] = (open.counts[name] ?? 0) + n;
      this.sql.exec("UPDATE windows SET record = ? WHERE opened_at = ?", JSON.stringify(stored(open)), open.from);
      return open;
    }
    const window: TallyWindow = { ...record, from: now, until: now + windowSeconds * 1000, counts: { ...counts } };
    this.sql.exec(
      "INSERT INTO windows (opened_at, closes_at, record) VALUES (?, ?, ?)",
      window.from,
      window.until,
      JSON.stringify(stored(window)),
    );
    const alarm = await this.ctx.storage.getAlarm();
    if (alarm === null || alarm > window.until) await this.ctx.storage.setAlarm(window.until);
    return window;
  }

  /** Windows not yet written, oldest first (at most the open one and any whose record is due). */
  windows(): TallyWindow[] {
    return this.sql
      .exec<{ opened_at: number; closes_at: number; record: string }>("SELECT * FROM windows ORDER BY opened_at")
      .toArray()
      .map((row) => ({ ...storedSchema.parse(JSON.parse(row.record)), from: row.opened_at, until: row.closes_at }));
  }

  /** Writes the record of every window closed by `now` and deletes it; returns how many. */
  async flush(now = Date.now()): Promise<number> {
    let written = 0;
    for (const window of this.windows().filter((w) => w.until <= now)) {
      await writeAudit(this.env, config, this.log, recordOf(window), newTraceparent());
      this.sql.exec("DELETE FROM windows WHERE opened_at = ?", window.from);
      written++;
    }
    const next = this.windows()[0];
    if (next !== undefined) await this.ctx.storage.setAlarm(Math.max(next.until, now + 1));
    return written;
  }

  override async alarm(): Promise<void> {
    try {
      await this.flush();
    } catch (err) {
      // The windows stay; the next alarm writes them.
      this.log.error("audit tally flush failed", { error: err });
      await this.ctx.storage.setAlarm(Date.now() + RETRY_MS);
    }
  }
}

function stored(window: TallyWindow): z.output<typeof storedSchema> {
  const { from: _from, until: _until, ...rest } = window;
  return rest;
}

function recordOf(window: TallyWindow): AuditRecord {
  return {
    action: window.action,
    outcome: window.outcome ?? "success",
    resource: window.resource,
    actor: window.actor,
    requestId: window.requestId,
    ...(window.status === undefined ? {} : { status: window.status }),
    ...(window.reason === undefined ? {} : { reason: window.reason }),
    ...(window.ip === undefined ? {} : { ip: window.ip }),
    details: {
      ...window.details,
      ...window.counts,
      from: new Date(window.from).toISOString(),
      until: new Date(window.until).toISOString(),
    },
  };
}
