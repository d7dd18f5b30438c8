// The bench's stand-in for the Workers Rate Limiting binding (RATE_LIMIT), reached over RPC.
//
// Why: Miniflare emulates the binding with a Durable Object that writes a SQLite row on every
// limit() call (miniflare/dist/src/workers/ratelimit), which makes each single-event request pay
// for a second durable write that production does not: there Cloudflare's rate-limiting service
// answers, per location, with no storage of the account involved (ADR 0028). This Worker counts
// the same fixed windows in memory, so the platform still calls limit() on every request and
// awaits an RPC for it. The bench also runs one scenario against Miniflare's own emulation and reports
// that ratio beside the others, so the difference stays visible.
import { WorkerEntrypoint } from "cloudflare:workers";

/** key → the current window's number and count (one isolate, as one machine's counters). */
const windows = new Map();

export class RateLimit extends WorkerEntrypoint {
  /** Same contract as the binding: `{ key }` in, `{ success }` out; counts the call if allowed. */
  limit(options) {
    if (typeof options !== "object" || options === null || typeof options.key !== "string") {
      throw new TypeError("limit() expects { key: string }");
    }
    const limit = Number(this.env.LIMIT);
    const period = Number(this.env.PERIOD);
    const window = Math.floor(Date.now() / (period * 1000));
    let counter = windows.get(options.key);
    if (counter === undefined || counter.window !== window) {
      counter = { window, count: 0 };
      windows.set(options.key, counter);
    }
    if (counter.count >= limit) return { success: false };
    counter.count++;
    return { success: true };
  }
}

export default {
  fetch() {
    return new Response("the bench's in-memory rate limiter; bound as RATE_LIMIT\n", { status: 404 });
  },
};
