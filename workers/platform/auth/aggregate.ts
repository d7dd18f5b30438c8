import type { Context } from "hono";
import { type AuditRecord, writeAudit } from "../audit";
import type { AppEnv } from "../context";

/**
 * Audit records for things that happen per request but are worth one record per window, not one
 * per request (a flood must not fill the audit log): refused attempts of a locked-out client,
 * uses of a rotated-out API key secret. The first occurrence for a key opens a window of
 * `windowMs`; later ones in it only count; when it closes, one record with the count is written.
 *
 * Windows live in the isolate (an isolate counts what it sees; several isolates write a record
 * each). The record is written from `waitUntil` of the request that opened the window, which
 * Workers keep alive for up to 30 s after the response: windows must be shorter than that.
 */

export interface AggregateWindow<T> {
  key: string;
  /** What the first occurrence said about itself (e.g. the key's tenant). */
  info: T;
  /** Epoch ms: the first occurrence, and when the window closes. */
  from: number;
  until: number;
  count: number;
}

/** The request that opened a window: what its record is written with. */
interface Opener {
  c: Context<AppEnv>;
  requestId: string;
  traceparent: string;
}

export const MAX_AGGREGATE_WINDOW_MS = 25_000;

export class AuditAggregator<T = undefined> {
  private readonly open = new Map<string, AggregateWindow<T>>();

  constructor(
    private readonly windowMs: number,
    /** The record of a closed window, written with the opening request's id. */
    private readonly record: (window: AggregateWindow<T>, requestId: string) => AuditRecord,
  ) {
    if (windowMs <= 0 || windowMs > MAX_AGGREGATE_WINDOW_MS) throw new RangeError(`an audit window is 1..${MAX_AGGREGATE_WINDOW_MS} ms`);
  }

  /** The window of `key` open at `now`, if any. */
  current(key: string, now = Date.now()): AggregateWindow<T> | undefined {
    const window = this.open.get(key);
    return window !== undefined && window.until > now ? window : undefined;
  }

  /** Counts one occurrence for `key`, opening a window (and scheduling its record) if none is open. */
  note(c: Context<AppEnv>, key: string, info: T, now = Date.now()): AggregateWindow<T> {
    const current = this.current(key, now);
    if (current !== undefined) {
      current.count++;
      return current;
    }
    const window: AggregateWindow<T> = { key, info, from: now, until: now + this.windowMs, count: 1 };
    this.open.set(key, window);
    const opener: Opener = { c, requestId: c.get("requestId"), traceparent: c.get("traceparent") };
    c.executionCtx.waitUntil(this.closeLater(window, opener));
    return window;
  }

  private async closeLater(window: AggregateWindow<T>, opener: Opener): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, window.until - Date.now())));
    // A window that closed is replaced by the next note for its key; only this one is removed.
    if (this.open.get(window.key) === window) this.open.delete(window.key);
    const { c } = opener;
    await writeAudit(c.env, c.get("config"), c.get("log"), this.record(window, opener.requestId), opener.traceparent);
  }
}
