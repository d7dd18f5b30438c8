import { API } from "./api";
import { messageOf } from "./format";
import { state } from "./state";
import type { EventWire } from "./wire";

/**
 * Following one partition live through its Durable Streams read side
 * (GET /v1/topics/{topic}/partitions/{p}/stream, ADR 0046) instead of polling the events route.
 * The dashboard authenticates with a bearer token, which EventSource cannot send, so this reads
 * the `live=sse` answer's body as a stream with fetch: `data` events are JSON arrays of stored
 * events, `control` events carry `streamNextOffset` (and `streamCursor`). When the answer ends
 * (the server closes it after a while) or the connection fails, it reconnects from the last
 * offset, failures with a growing backoff. Only events past the last sequence delivered are
 * passed on, so a reconnect never repeats one. At most one follower runs: a new one, a view change
 * and sign-out stop the previous one (its fetch is aborted).
 */

/** One parsed server-sent event. */
export interface SseMessage {
  event: string;
  data: string;
}

/**
 * An incremental SSE parser (the WHATWG event-stream rules the server uses): feed it text as it
 * arrives; it calls `emit` for each complete event. Comments (`:` lines) are ignored.
 */
export function sseParser(emit: (message: SseMessage) => void): (chunk: string) => void {
  let buffer = "";
  let event = "";
  let data: string[] = [];
  const line = (text: string) => {
    if (text === "") {
      if (data.length) emit({ event: event || "message", data: data.join("\n") });
      event = "";
      data = [];
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  };
  return (chunk: string) => {
    buffer += chunk;
    for (;;) {
      const match = /\r\n|\r|\n/.exec(buffer);
      // A lone "\r" at the end may be the first half of "\r\n": wait for more.
      if (!match || (match[0] === "\r" && match.index === buffer.length - 1)) return;
      line(buffer.slice(0, match.index));
      buffer = buffer.slice(match.index + match[0].length);
    }
  };
}

/** The protocol's offset for "the last sequence read was `sequence`" (ADR 0046: offsets are sequences). */
export const offsetAfter = (sequence: number): string => `${"0".repeat(16)}_${String(Math.max(0, Math.floor(sequence))).padStart(16, "0")}`;

/** The sequence an offset names, or null for one this reader does not know. */
export function sequenceOf(offset: string): number | null {
  const m = /^\d{16}_(\d{16})$/.exec(offset);
  return m ? Number(m[1]) : null;
}

export type LiveStatus = "connecting" | "live" | "reconnecting" | "stopped";

export interface FollowOptions {
  topic: string;
  partition: number;
  /** The last sequence already shown; events after it are delivered. */
  after: number;
  onEvents: (events: EventWire[]) => void;
  /** `detail` says why when reconnecting or stopped by a refusal. */
  onStatus: (status: LiveStatus, detail?: string) => void;
}

export const BACKOFF_MIN_MS = 500;
export const BACKOFF_MAX_MS = 15_000;

let current: AbortController | null = null;

/** Stops the running follower, if any (view change, sign-out, toggle off). */
export function stopLive(): void {
  current?.abort();
  current = null;
}

/** Starts following (stopping any earlier follower); resolves when it stops. */
export function followPartition(opts: FollowOptions): Promise<void> {
  stopLive();
  const controller = new AbortController();
  current = controller;
  return run(opts, controller.signal).finally(() => {
    if (current === controller) current = null;
  });
}

const wait = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });

/** A refusal that reconnecting would not change (bad key, no grant, no such partition, bad offset). */
class Refused extends Error {}

async function run(opts: FollowOptions, signal: AbortSignal): Promise<void> {
  let last = opts.after;
  let offset = offsetAfter(last);
  let cursor: string | null = null;
  let failures = 0;
  const deliver = (events: EventWire[]) => {
    const fresh = events.filter((e) => Number(e.sequence) > last);
    if (!fresh.length) return;
    last = Number(fresh[fresh.length - 1]?.sequence);
    opts.onEvents(fresh);
  };
  opts.onStatus("connecting");
  while (!signal.aborted) {
    try {
      await readOnce(
        opts,
        signal,
        { offset, cursor },
        (events) => deliver(events),
        (control) => {
          if (typeof control.streamNextOffset === "string" && sequenceOf(control.streamNextOffset) !== null)
            offset = control.streamNextOffset;
          if (typeof control.streamCursor === "string") cursor = control.streamCursor;
          failures = 0;
        },
      );
      // The server ends an SSE answer after a while: reconnect at once from the last offset.
      if (!signal.aborted) opts.onStatus("connecting");
    } catch (err) {
      if (signal.aborted) break;
      if (err instanceof Refused) {
        opts.onStatus("stopped", err.message);
        return;
      }
      failures++;
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (failures - 1));
      opts.onStatus("reconnecting", `${messageOf(err)}; retrying in ${Math.round(delay / 100) / 10} s`);
      await wait(delay, signal);
    }
  }
  opts.onStatus("stopped");
}

interface Control {
  streamNextOffset?: unknown;
  streamCursor?: unknown;
}

async function readOnce(
  opts: FollowOptions,
  signal: AbortSignal,
  at: { offset: string; cursor: string | null },
  onData: (events: EventWire[]) => void,
  onControl: (control: Control) => void,
): Promise<void> {
  const path = API.stream
    .replace("{topic}", encodeURIComponent(opts.topic))
    .replace("{partition}", encodeURIComponent(String(opts.partition)));
  const query = new URLSearchParams({ offset: at.offset, live: "sse" });
  if (at.cursor) query.set("cursor", at.cursor);
  const headers: Record<string, string> = { accept: "text/event-stream" };
  // biome-ignore lint/style/useTemplate: test/integration/dashboard.test.ts looks for the literal "Bearer " in the bundle.
  if (state.token) headers.authorization = "Bearer " + state.token;
  const res = await fetch(`${path}?${query}`, { headers, cache: "no-store", credentials: "omit", signal });
  if (!res.ok) {
    let detail = res.statusText;
    try {
      const problem = (await res.json()) as { title?: string; detail?: string };
      detail = [problem.title, problem.detail].filter(Boolean).join(": ") || detail;
    } catch {}
    const text = `${res.status} ${detail}`;
    if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) throw new Refused(text);
    throw new Error(text);
  }
  if (!res.body) throw new Error("the answer has no body");
  opts.onStatus("live");
  const feed = sseParser((message) => {
    if (message.event === "data") {
      const events = JSON.parse(message.data) as unknown;
      if (Array.isArray(events)) onData(events as EventWire[]);
    } else if (message.event === "control") {
      onControl(JSON.parse(message.data) as Control);
    }
  });
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      feed(value);
    }
  } finally {
    // Ends the answer on an error too (a bad frame), so the connection is not left open.
    await reader.cancel().catch(() => undefined);
  }
}
