/**
 * Live readers' waits, as hibernatable WebSockets (the Hibernation API: `ctx.acceptWebSocket`), a
 * capability of any log object that readers follow (a Durable Stream, a topic partition). The
 * Worker that holds a client's long-poll or SSE response opens one to the object, naming the
 * position it has read to; the object sends `{"next","closed"}` at once when there is more (or the
 * stream is closed) and again after every commit, and `{"ended":true}` before closing the sockets
 * when the stream is deleted or expires. Between messages the object holds no request: the runtime
 * may evict it from memory while the sockets stay open, so a stream nobody writes to costs no
 * duration however many readers wait on it (ADR 0045).
 */

export interface WaitMessage {
  next?: number;
  closed?: boolean;
  ended?: boolean;
}

/** Where a log ends: the position after its last entry, and whether it takes no more. */
export interface Tail {
  next: number;
  closed: boolean;
}

const message = (s: Tail) => JSON.stringify({ next: s.next, closed: s.closed } satisfies WaitMessage);

export class Waiters {
  constructor(private readonly ctx: DurableObjectState) {}

  /** Accepts a reader's socket (`?after=` the position it has read to); `tail` undefined: no log here (404), "gone": 410. */
  attach(request: Request, s: Tail | undefined | "gone"): Response {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") return new Response("expected a WebSocket upgrade", { status: 426 });
    if (s === undefined) return new Response(null, { status: 404 });
    if (s === "gone") return new Response(null, { status: 410 });
    const after = Number(new URL(request.url).searchParams.get("after") ?? "0");
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    this.ctx.acceptWebSocket(server);
    if (s.next > after || s.closed) server.send(message(s));
    return new Response(null, { status: 101, webSocket: client });
  }

  /** After a commit is durable: every waiting reader learns the new tail. */
  notify(s: Tail): void {
    const text = message(s);
    for (const ws of this.ctx.getWebSockets()) {
      try {
        ws.send(text);
      } catch {
        // a socket closing meanwhile: its reader is gone
      }
    }
  }

  /** The stream is deleted or expired: readers are told, then let go. */
  end(): void {
    for (const ws of this.ctx.getWebSockets()) {
      try {
        ws.send(JSON.stringify({ ended: true } satisfies WaitMessage));
        ws.close(1000, "stream ended");
      } catch {
        // already closing
      }
    }
  }

  /** The reader went away: complete the close handshake. */
  closed(ws: WebSocket, code: number): void {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, "reader left");
    } catch {
      // already closed
    }
  }
}
