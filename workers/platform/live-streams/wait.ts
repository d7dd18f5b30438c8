import type { WaitMessage } from "../../../durable-objects/waiters";

/**
 * The Worker's side of a live reader's wait: a WebSocket to the stream's object (its hibernatable
 * end is durable-objects/waiters.ts). The Worker holds the client's response and this
 * socket; the object holds nothing in between commits (ADR 0045).
 */

export type WaitEvent = WaitMessage | "timeout" | "lost";

export interface Wait {
  /** The next message from the object, "timeout" after `ms`, "lost" when the socket closed (or close() was called). */
  next(ms: number): Promise<WaitEvent>;
  close(): void;
}

interface Stub {
  fetch(input: string, init?: RequestInit): Promise<Response>;
}

export async function openWait(stub: Stub, after: number): Promise<Wait | { status: number }> {
  const res = await stub.fetch(`https://live-stream/wait?after=${after}`, { headers: { Upgrade: "websocket" } });
  const ws = res.webSocket;
  if (ws === null) return { status: res.status };
  ws.accept();
  const queue: WaitMessage[] = [];
  let lost = false;
  let wake: (() => void) | undefined;
  ws.addEventListener("message", (event) => {
    try {
      queue.push(JSON.parse(typeof event.data === "string" ? event.data : "{}") as WaitMessage);
    } catch {
      queue.push({});
    }
    wake?.();
  });
  const onEnd = () => {
    lost = true;
    wake?.();
  };
  ws.addEventListener("close", onEnd);
  ws.addEventListener("error", onEnd);
  return {
    async next(ms) {
      const deadline = Date.now() + ms;
      for (;;) {
        const message = queue.shift();
        if (message !== undefined) return message;
        if (lost) return "lost";
        const left = deadline - Date.now();
        if (left <= 0) return "timeout";
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    },
    close() {
      lost = true;
      wake?.();
      try {
        ws.close(1000, "reader done");
      } catch {
        // already closed
      }
    },
  };
}
