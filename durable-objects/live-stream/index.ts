import { DurableObject } from "cloudflare:workers";
import { DEFAULT_CONTENT_TYPE, isJsonType, mediaType } from "../../shared/live-stream/protocol";
import { migrate } from "../sql-migrations";
import { Waiters } from "../waiters";
import { firstValues, joinAppends } from "./json-values";
import { judgeProducer } from "./producers";
import { liveStreamMigration, type StreamState, StreamStore, statusOf } from "./store";
import {
  type AppendResult,
  appendInputSchema,
  type CreateInput,
  type CreateResult,
  createInputSchema,
  type DeleteResult,
  type ForkRows,
  type ForkSourceResult,
  type HeadResult,
  type ReadResult,
} from "./types";

export type * from "./types";

const FORK_PAGE_BYTES = 4 * 1024 * 1024;

/**
 * One Durable Stream (the Durable Streams protocol, docs/live-streams.md): an append-only byte or
 * JSON log in the object's SQLite storage, with idempotent producers, close, TTL / expiry, and
 * forks. Every change is one SQLite transaction and its RPC result leaves only once the runtime
 * made it durable (the output gate): the Worker acknowledges after commit.
 *
 * Live readers do not hold this object: the Worker holding a client's long-poll or SSE response
 * attaches to it through a hibernatable WebSocket (durable-objects/waiters.ts), which the object answers on each
 * commit; between commits the object can be evicted while the sockets stay open (ADR 0045).
 */
export class LiveStream extends DurableObject<Env> {
  private store!: StreamStore;
  private state: StreamState | undefined;
  private readonly waiters: Waiters;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.waiters = new Waiters(ctx);
    ctx.blockConcurrencyWhile(async () => this.open());
  }

  private open(): void {
    migrate(this.ctx.storage, [liveStreamMigration], () => false);
    this.store = new StreamStore(this.ctx.storage.sql);
    this.state = this.store.load();
  }

  /** The stream after ending it if its time is up; undefined: none. */
  private async current(): Promise<StreamState | undefined> {
    const s = this.state;
    if (s !== undefined && !s.deleted && s.deadline !== null && s.deadline <= Date.now()) await this.end();
    return this.state;
  }

  private async save(s: StreamState): Promise<void> {
    this.store.save(s);
    this.state = s;
    if (s.deadline !== null && !s.deleted) await this.ctx.storage.setAlarm(s.deadline);
  }

  /** Sliding TTL: a use moves the deadline (Expires-At never moves). */
  private touched(s: StreamState): StreamState {
    return s.ttlSeconds === null ? s : { ...s, deadline: Date.now() + s.ttlSeconds * 1000 };
  }

  async create(raw: CreateInput): Promise<CreateResult> {
    const input = createInputSchema.parse(raw);
    const existing = await this.current();
    if (existing?.deleted === true) {
      return { kind: "conflict", detail: "the stream was deleted while forks still read it; its name stays taken until they are gone" };
    }
    if (existing !== undefined) {
      const problem = configDifference(existing, input);
      if (problem !== undefined) return { kind: "conflict", detail: problem };
      return { kind: "exists", ...statusOf(existing) };
    }
    if (input.fork !== undefined) return this.ctx.blockConcurrencyWhile(() => this.createFork(input));
    const contentType = input.contentType ?? DEFAULT_CONTENT_TYPE;
    const state = fresh(contentType, input.ttlSeconds ?? null, input.expiresAt ?? null, null);
    this.ctx.storage.transactionSync(() => this.commitInitial(state, input));
    await this.save(state);
    return { kind: "created", ...statusOf(state) };
  }

  /** Initial body and closed flag of a new stream, into `state` (inside the caller's transaction). */
  private commitInitial(state: StreamState, input: CreateInput): void {
    if (input.body !== undefined && input.body.byteLength > 0) {
      state.next = this.store.insert(state.next, input.body, input.items ?? 1);
    }
    state.closed = input.closed;
    this.store.save(state);
  }

  private async createFork(input: CreateInput): Promise<CreateResult> {
    const spec = input.fork;
    if (spec === undefined || this.state !== undefined) return { kind: "conflict", detail: "the stream was created meanwhile" };
    const source = this.env.LIVE_STREAM.getByName(spec.from);
    const found: ForkSourceResult = await source.forkSource(spec.offset, spec.subOffset, input.contentType);
    if (found.kind !== "source") return found;
    const inheritExpiry = input.ttlSeconds === undefined && input.expiresAt === undefined;
    const state = fresh(
      found.contentType,
      inheritExpiry ? found.ttlSeconds : (input.ttlSeconds ?? null),
      inheritExpiry ? found.expiresAt : (input.expiresAt ?? null),
      { from: spec.from, offset: found.offset, subOffset: spec.subOffset },
    );
    try {
      let from = 0;
      while (from < found.offset) {
        const page: ForkRows = await source.forkRows(from, found.offset, FORK_PAGE_BYTES);
        if (page.rows.length === 0) throw new Error(`fork source ${spec.from} has no appends from ${from}`);
        this.ctx.storage.transactionSync(() => {
          for (const row of page.rows) this.store.insert(row.start, row.data, row.items);
        });
        from = page.rows.at(-1)?.end ?? found.offset;
      }
      state.next = found.offset;
      this.ctx.storage.transactionSync(() => {
        if (found.prefix !== null) state.next = this.store.insert(state.next, found.prefix.data, found.prefix.items);
        this.commitInitial(state, input);
      });
    } catch (err) {
      await this.ctx.storage.deleteAll();
      this.open();
      await source.release();
      throw err;
    }
    await this.save(state);
    return { kind: "created", ...statusOf(state) };
  }

  /**
   * A fork of this stream is being created: checks the fork point, counts the fork (the stream
   * then outlives its own deletion until every fork is gone) and returns what the fork inherits.
   */
  async forkSource(offset: number | undefined, subOffset: number, contentType: string | undefined): Promise<ForkSourceResult> {
    const s = await this.current();
    if (s === undefined) return { kind: "not_found" };
    if (s.deleted) return { kind: "conflict", detail: "the source stream is deleted" };
    if (contentType !== undefined && mediaType(contentType) !== mediaType(s.contentType)) {
      return { kind: "conflict", detail: `the source stream's content type is ${s.contentType}` };
    }
    const at = offset ?? s.next;
    if (at > s.next || !this.store.isBoundary(at, s.next))
      return { kind: "bad_request", detail: "the fork offset is not in the source stream" };
    let prefix: { data: Uint8Array; items: number } | null = null;
    if (subOffset > 0) {
      const row = this.store.at(at);
      if (row === undefined) return { kind: "bad_request", detail: "no append at the fork offset to take a sub-offset of" };
      prefix = isJsonType(s.contentType)
        ? (firstValues(row.data, subOffset) ?? null)
        : subOffset <= row.data.byteLength
          ? { data: row.data.slice(0, subOffset), items: 1 }
          : null;
      if (prefix === null) return { kind: "bad_request", detail: "the fork sub-offset is beyond the append at the fork offset" };
    }
    await this.save({ ...s, forks: s.forks + 1 });
    return { kind: "source", contentType: s.contentType, ttlSeconds: s.ttlSeconds, expiresAt: s.expiresAt, offset: at, prefix };
  }

  /** Whole appends of this stream in [from, to), for a fork copying what it inherits. */
  forkRows(from: number, to: number, maxBytes: number): ForkRows {
    return { rows: this.store.rows(from, maxBytes, to) };
  }

  /** A fork of this stream is gone: a deleted stream whose last fork went is removed for good. */
  async release(): Promise<void> {
    const s = this.state;
    if (s === undefined) return;
    const next = { ...s, forks: Math.max(0, s.forks - 1) };
    if (next.deleted && next.forks === 0) {
      await this.erase();
      return;
    }
    await this.save(next);
  }

  async append(raw: unknown): Promise<AppendResult> {
    const input = appendInputSchema.parse(raw);
    const s = await this.current();
    if (s === undefined) return { kind: "not_found" };
    if (s.deleted) return { kind: "gone" };
    const status = statusOf(s);
    const hasBody = input.body !== undefined && input.body.byteLength > 0;
    if (!hasBody && !input.close) return { kind: "bad_request", detail: "an append needs a body (or Stream-Closed: true)" };
    if (hasBody && mediaType(input.contentType ?? "") !== mediaType(s.contentType)) {
      return { kind: "conflict", detail: `the stream's content type is ${s.contentType}`, status };
    }
    if (input.producer !== undefined) {
      const verdict = judgeProducer(this.store.producer(input.producer.id), input.producer);
      if (verdict.kind === "stale_epoch") return { kind: "stale_epoch", epoch: verdict.epoch, ...status };
      if (verdict.kind === "bad_epoch_start") return { kind: "bad_request", detail: "a new producer epoch starts at Producer-Seq 0" };
      if (verdict.kind === "gap") return { kind: "sequence_gap", expected: verdict.expected, received: verdict.received, ...status };
      if (verdict.kind === "duplicate") return { kind: "duplicate", producer: verdict.highest, ...status };
    }
    if (s.closed) return hasBody ? { kind: "closed", ...status } : { kind: "duplicate", ...status };
    if (input.seq !== undefined && s.seq !== null && input.seq <= s.seq) {
      return { kind: "seq_conflict", detail: `Stream-Seq ${input.seq} is not after ${s.seq}`, ...status };
    }
    const next: StreamState = this.touched({ ...s });
    this.ctx.storage.transactionSync(() => {
      if (hasBody && input.body !== undefined) next.next = this.store.insert(s.next, input.body, input.items ?? 1);
      if (input.close) {
        next.closed = true;
        next.closedBy = input.producer ?? null;
      }
      if (input.seq !== undefined) next.seq = input.seq;
      if (input.producer !== undefined) this.store.saveProducer(input.producer);
      this.store.save(next);
    });
    await this.save(next);
    this.waiters.notify(next);
    return { kind: "appended", ...(input.producer === undefined ? {} : { producer: input.producer }), ...statusOf(next) };
  }

  /** Catch-up read from `from` (a position or the tail); `touch`: a use that extends a TTL. */
  async read(from: number | "now", maxBytes: number, touch: boolean): Promise<ReadResult> {
    let s = await this.current();
    if (s === undefined) return { kind: "not_found" };
    if (s.deleted) return { kind: "gone" };
    const at = from === "now" ? s.next : from;
    if (at > s.next || !this.store.isBoundary(at, s.next)) return { kind: "bad_request", detail: "the offset is not in this stream" };
    if (touch && s.ttlSeconds !== null) {
      s = this.touched(s);
      await this.save(s);
    }
    const rows = this.store.rows(at, maxBytes);
    const next = rows.at(-1)?.end ?? at;
    return {
      kind: "read",
      ...statusOf(s),
      data: joinAppends(
        rows.map((r) => r.data),
        isJsonType(s.contentType),
      ),
      messages: rows.length,
      from: at,
      next,
      upToDate: next === s.next,
      incarnation: s.incarnation,
    };
  }

  async head(): Promise<HeadResult> {
    const s = await this.current();
    if (s === undefined) return { kind: "not_found" };
    if (s.deleted) return { kind: "gone" };
    return { kind: "head", ...statusOf(s) };
  }

  async remove(): Promise<DeleteResult> {
    const s = await this.current();
    if (s === undefined) return { kind: "not_found" };
    if (s.deleted) return { kind: "gone" };
    await this.end();
    return { kind: "deleted" };
  }

  /** Deleted or expired: gone for good, or kept (410) while forks still hold it. */
  private async end(): Promise<void> {
    const s = this.state;
    if (s === undefined) return;
    if (s.forks > 0) {
      const kept = { ...s, deleted: true, deadline: null };
      this.store.save(kept);
      this.state = kept;
      await this.ctx.storage.deleteAlarm();
      this.waiters.end();
      return;
    }
    await this.erase();
  }

  private async erase(): Promise<void> {
    const source = this.state?.fork?.from;
    this.waiters.end();
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.open();
    if (source !== undefined) await this.env.LIVE_STREAM.getByName(source).release();
  }

  override async alarm(): Promise<void> {
    const s = this.state;
    if (s === undefined || s.deleted || s.deadline === null) return;
    if (s.deadline <= Date.now()) await this.end();
    else await this.ctx.storage.setAlarm(s.deadline);
  }

  /** A live reader's wait (durable-objects/waiters.ts): the Worker's hibernatable WebSocket to this object. */
  override async fetch(request: Request): Promise<Response> {
    const s = await this.current();
    return this.waiters.attach(request, s?.deleted === true ? "gone" : s);
  }

  override webSocketMessage(): void {}

  override webSocketClose(ws: WebSocket, code: number): void {
    this.waiters.closed(ws, code);
  }
}

function fresh(contentType: string, ttlSeconds: number | null, expiresAt: number | null, fork: StreamState["fork"]): StreamState {
  const deadline = ttlSeconds !== null ? Date.now() + ttlSeconds * 1000 : expiresAt;
  return {
    contentType,
    ttlSeconds,
    expiresAt,
    fork,
    incarnation: crypto.randomUUID(),
    next: 0,
    closed: false,
    closedBy: null,
    seq: null,
    deadline,
    forks: 0,
    deleted: false,
  };
}

/** Why a create's configuration differs from the existing stream's, or undefined when it matches. */
function configDifference(existing: StreamState, input: CreateInput): string | undefined {
  const forkOf = input.fork !== undefined;
  const type = input.contentType ?? (forkOf ? existing.contentType : DEFAULT_CONTENT_TYPE);
  if (mediaType(type) !== mediaType(existing.contentType)) return `the stream exists with content type ${existing.contentType}`;
  const inherits = forkOf && input.ttlSeconds === undefined && input.expiresAt === undefined;
  if (!inherits && (input.ttlSeconds ?? null) !== existing.ttlSeconds) return "the stream exists with another Stream-TTL";
  if (!inherits && (input.expiresAt ?? null) !== existing.expiresAt) return "the stream exists with another Stream-Expires-At";
  if ((input.fork?.from ?? null) !== (existing.fork?.from ?? null)) return "the stream exists with another fork source";
  if (input.fork !== undefined && existing.fork !== null) {
    if (input.fork.offset !== undefined && input.fork.offset !== existing.fork.offset) return "the fork exists at another offset";
    if (input.fork.subOffset !== existing.fork.subOffset) return "the fork exists at another sub-offset";
  }
  if (input.closed && !existing.closed) return "the stream exists and is open";
  return undefined;
}
