import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, describe, expect, it } from "vitest";
import shipped from "../../eventline.config";
import { createApp } from "../../workers/platform/app";
import { clientResource, THROTTLED_AUDIT_ACTION, THROTTLED_AUDIT_WINDOW_SECONDS } from "../../workers/platform/auth/lockout";
import { ADMIN_KEY, BASE, event, expectAccepted, expectProblem, STRUCTURED } from "../helpers";
import { type AuditEntry, auditSearch, expectAudit, expectNoSecrets, sleep } from "./helpers";
import { tallyOf } from "./tally-helpers";

/*
 * The failed-authentication lock-out (issue 14): once a source has spent its budget of failed
 * authentications, every request from it gets 429 + Retry-After before its credential is looked
 * at (a right guess is answered like a wrong one) until the window passes; the refused requests
 * of an audit window are one `auth.throttled` audit record with their count, however many batches
 * (isolates) they arrive in; and locally, where a client can send its own cf-connecting-ip, that
 * header does not make a new source.
 *
 * The app is built here with a 2 s lock-out and called with a fake RATE_LIMIT binding whose
 * budget is 3 failures per source, so no test needs thousands of requests. The audit window (a
 * minute, in the address's AuditTally object) is closed by the tests, as its alarm would.
 */

const LOCKOUT_SECONDS = 2;
const BUDGET = 3;
const WRONG = `evl_${"w".repeat(12)}_${"W".repeat(43)}`;

/** A RATE_LIMIT binding allowing `budget` calls per key, ever (the lock-out window is the app's). */
function fakeLimiter(budget: number): { binding: RateLimit; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const binding: RateLimit = {
    async limit({ key }) {
      const n = (calls.get(key) ?? 0) + 1;
      calls.set(key, n);
      return { success: n <= budget };
    },
  };
  return { binding, calls };
}

const app = createApp(shipped, { lockoutSeconds: LOCKOUT_SECONDS });
/** Every request's waitUntil work (the refused requests' counts are sent to their tally there). */
const pending: Promise<void>[] = [];

afterAll(async () => {
  await Promise.all(pending);
  expectNoSecrets(JSON.stringify(await auditSearch({ action: "auth." })), [WRONG]);
});

interface Call {
  token?: string;
  ip?: string;
  url?: string;
  method?: string;
  body?: string;
  headers?: Record<string, string>;
}

/** Sends one request to the app with `vars` over the test env; does not wait for its waitUntil work. */
async function send(limiter: RateLimit, call: Call, vars: Record<string, string> = {}): Promise<Response> {
  const headers = new Headers(call.headers);
  if (call.token !== undefined) headers.set("authorization", `Bearer ${call.token}`);
  if (call.ip !== undefined) headers.set("cf-connecting-ip", call.ip);
  const req = new Request(call.url ?? `${BASE}/v1/topics`, {
    method: call.method ?? "GET",
    headers,
    ...(call.body === undefined ? {} : { body: call.body }),
  });
  const ctx = createExecutionContext();
  const res = await app.fetch(req, { ...env, RATE_LIMIT: limiter, ...vars } as Env, ctx);
  pending.push(waitOnExecutionContext(ctx));
  return res;
}

/** A client address no other test (nor another call here) uses. */
let nextIp = 0;
const uniqueIp = () => {
  nextIp++;
  return `198.18.0.${nextIp}`;
};

const throttledTally = (ip: string) => tallyOf(THROTTLED_AUDIT_ACTION, "unauthenticated", clientResource(ip));
/** The counts of every request sent so far have reached their tally. */
const sent = () => Promise.all(pending);
/** The refused requests counted in `ip`'s open audit window so far. */
const counted = async (ip: string) => {
  await sent();
  return (await throttledTally(ip).windows()).map((w) => w.counts.count);
};
/** Waits until a lock taken now has ended. */
const lockEnds = () => sleep(LOCKOUT_SECONDS * 1000 + 200);

/** The auth.throttled records of `ip`, once its open audit window (holding `count`) has closed and its record is written. */
async function throttledRecords(ip: string, count: number): Promise<AuditEntry[]> {
  await sent();
  await throttledTally(ip).close("count", count);
  return (await auditSearch({ action: THROTTLED_AUDIT_ACTION })).filter((r) => r.ip === ip);
}

/** Spends `ip`'s budget with wrong keys (each a 401, audited), then asserts the 429 that locks it; returns it. */
async function lockOut(limiter: RateLimit, call: Call): Promise<Response> {
  for (let i = 0; i < BUDGET; i++) {
    const problem = await expectProblem(await send(limiter, { ...call, token: WRONG }), 401);
    await expectAudit(problem.requestId, { action: "auth.failed", status: 401, reason: "API key not recognised" }, [WRONG]);
  }
  const locking = await send(limiter, { ...call, token: WRONG });
  expect(locking.status).toBe(429);
  return locking;
}

describe("the failed-authentication lock-out", () => {
  it("refuses a correct credential from a locked-out source too (429 + Retry-After, nothing stored) until the window passes", async () => {
    const { binding } = fakeLimiter(BUDGET);
    const ip = uniqueIp();
    const locking = await lockOut(binding, { ip });
    const problem = await expectProblem(locking, 429);
    expect(problem.code).toBe("rate_limited");
    expect(problem.detail).toBe("request budget of this client exhausted; retry after the Retry-After seconds");
    expect(locking.headers.get("retry-after")).toBe(String(LOCKOUT_SECONDS));

    // The right admin key, a producer's request and a request without credentials: all 429, unverified.
    const produced = event();
    const produce = (from: string) =>
      send(binding, {
        ip: from,
        token: ADMIN_KEY,
        method: "POST",
        url: `${BASE}/v1/topics/events/events`,
        headers: { "content-type": STRUCTURED },
        body: JSON.stringify(produced),
      });
    const refused = [await send(binding, { ip, token: ADMIN_KEY }), await produce(ip), await send(binding, { ip })];
    for (const res of refused) {
      const p = await expectProblem(res, 429);
      expect(p.detail).toBe(problem.detail);
      expect(res.headers.get("www-authenticate")).toBeNull();
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(Number(res.headers.get("retry-after"))).toBeLessThanOrEqual(LOCKOUT_SECONDS);
    }
    // Another source is not locked out; the refused event was not stored (sending it now is no duplicate).
    expect((await send(binding, { ip: uniqueIp(), token: ADMIN_KEY })).status).toBe(200);
    expect((await expectAccepted(await produce(uniqueIp()))).map((a) => a.duplicate)).toEqual([false]);

    // One record for the window, with the count of refused requests (the locking one and the three above).
    const records = await throttledRecords(ip, 4);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      action: "auth.throttled",
      outcome: "failure",
      status: 429,
      resource: `client:${ip}`,
      actor: { id: "unauthenticated", kind: "none" },
      requestId: problem.requestId,
      ip,
      details: { count: 4 },
    });
    const details = records[0]?.details as { from: string; until: string };
    expect(Date.parse(details.until) - Date.parse(details.from)).toBe(THROTTLED_AUDIT_WINDOW_SECONDS * 1000);

    // The lock has passed: the right key works again.
    await lockEnds();
    expect((await send(binding, { ip, token: ADMIN_KEY })).status).toBe(200);
  });

  it("counts a burst of refused requests, and the locks that follow within the audit window, into one record; a new window after it", async () => {
    const { binding } = fakeLimiter(BUDGET);
    const ip = uniqueIp();
    const opener = (await lockOut(binding, { ip })).headers.get("x-request-id");
    const burst = await Promise.all(Array.from({ length: 25 }, (_, i) => send(binding, { ip, token: i % 5 === 0 ? ADMIN_KEY : WRONG })));
    expect(burst.map((r) => r.status)).toEqual(Array(25).fill(429));
    expect(await counted(ip)).toEqual([26]);

    // After the lock the budget is still spent (the binding's own window): the next failure locks
    // again, and its refusals join the same audit window, sent in another batch (as another isolate's).
    await lockEnds();
    expect((await send(binding, { ip, token: WRONG })).status).toBe(429);
    expect((await send(binding, { ip, token: ADMIN_KEY })).status).toBe(429);
    expect(await counted(ip)).toEqual([28]);
    const records = await throttledRecords(ip, 28);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ requestId: opener, details: { count: 28 } });

    // Refusals after the window's record was written open a new window.
    await lockEnds();
    expect((await send(binding, { ip, token: WRONG })).status).toBe(429);
    expect((await throttledRecords(ip, 1)).map((r) => r.details?.count)).toEqual([28, 1]);
  });
});

describe("the client source", () => {
  it("is cf-connecting-ip on the edge: another address is another source", async () => {
    const { binding, calls } = fakeLimiter(BUDGET);
    const ip = uniqueIp();
    await lockOut(binding, { ip });
    const other = uniqueIp();
    await expectProblem(await send(binding, { ip: other, token: WRONG }), 401);
    expect([...calls.keys()].sort()).toEqual([`ip:${ip}`, `ip:${other}`].sort());
  });

  it.each([
    ["EVENTLINE_CLIENT_IP=local", `${BASE}/v1/topics`, { EVENTLINE_CLIENT_IP: "local" }],
    ["a request to a loopback host", "http://127.0.0.1:8787/v1/topics", {}],
    ["a request to localhost", "http://localhost:8787/v1/topics", {}],
  ])("is one fixed source, `local`, with %s: a forged cf-connecting-ip escapes nothing", async (_name, url, vars) => {
    const { binding, calls } = fakeLimiter(BUDGET);
    for (let i = 0; i < BUDGET; i++) {
      const problem = await expectProblem(await send(binding, { url, ip: uniqueIp(), token: WRONG }, vars), 401);
      await expectAudit(problem.requestId, { action: "auth.failed", status: 401, ip: "local" }, [WRONG]);
    }
    // Each request claimed another address; all of them spent the one budget of `local`.
    expect([...calls.entries()]).toEqual([["ip:local", BUDGET]]);
    expect((await send(binding, { url, ip: uniqueIp(), token: WRONG }, vars)).status).toBe(429);
    expect((await send(binding, { url, ip: uniqueIp(), token: ADMIN_KEY }, vars)).status).toBe(429);
    const records = await throttledRecords("local", 2);
    expect(records.at(-1)).toMatchObject({ status: 429, ip: "local", resource: "client:local", details: { count: 2 } });
    // The next case starts with `local` unlocked.
    await lockEnds();
  });
});
