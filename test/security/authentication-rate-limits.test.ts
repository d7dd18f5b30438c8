import { describe, expect, it } from "vitest";
import { THROTTLED_AUDIT_ACTION } from "../../workers/platform/auth/lockout";
import { expectProblem, request, requestAs, waitFor } from "../helpers";
import { useCredentialHygiene } from "./auth-fixtures";
import { auditSearch, dataHeads, expectNoAudit, sleep } from "./helpers";
import { tallyOf } from "./tally-helpers";

/*
 * Rate limits: a principal over its request budget gets 429 with Retry-After (others unaffected,
 * throttled requests not audited one by one), and failed authentication spends the client
 * address's budget until its window passes (one auth.throttled record counts the refusals).
 */

const { secrets } = useCredentialHygiene();

describe("rate limits", () => {
  /** Sends `send()` with `concurrency` in flight until a 429 (or `max` requests); every other answer must be `ok`. */
  async function hammer(
    send: () => Promise<Response>,
    ok: number,
    max = 3_000,
    concurrency = 8,
  ): Promise<{ limited: Response; sent: number }> {
    let sent = 0;
    let limited: Response | undefined;
    const worker = async () => {
      while (limited === undefined && sent < max) {
        sent++;
        const res = await send();
        if (res.status === 429) {
          limited ??= res;
          continue;
        }
        expect(res.status).toBe(ok);
        await res.arrayBuffer();
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    expect(limited, `no 429 after ${sent} requests`).toBeDefined();
    return { limited: limited as Response, sent };
  }

  async function createKey(grants: string[]): Promise<{ id: string; key: string }> {
    const res = await request("/v1/keys", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "rate-limit", grants }),
    });
    expect(res.status).toBe(201);
    const created = (await res.json()) as { id: string; key: string };
    secrets.push(created.key);
    return created;
  }

  it("a principal over its budget gets 429 problem+json with Retry-After; another principal is unaffected", {
    timeout: 120_000,
  }, async () => {
    // A grant on no existing topic: GET /v1/topics answers an empty list without touching a partition.
    const hot = await createKey(["consume:rate-limit-nothing"]);
    const before = await dataHeads();
    const { limited, sent } = await hammer(() => requestAs(hot.key, "/v1/topics"), 200);
    expect(sent).toBeGreaterThanOrEqual(1_000);
    const problem = await expectProblem(limited, 429);
    expect(problem.code).toBe("rate_limited");
    expect(problem.detail).toBe(`request budget of key:${hot.id} exhausted; retry after the Retry-After seconds`);
    expect(limited.headers.get("retry-after")).toBe("10");
    expect(limited.headers.get("www-authenticate")).toBeNull();
    // In the same window: the admin and another key are served, the hot key is still refused.
    const window = Math.floor(Date.now() / 10_000);
    const other = await createKey(["consume:rate-limit-nothing"]);
    expect((await request("/v1/topics")).status).toBe(200);
    expect((await requestAs(other.key, "/v1/topics")).status).toBe(200);
    const still = await requestAs(hot.key, "/v1/topics");
    expect(still.status === 429 || Math.floor(Date.now() / 10_000) !== window, "still limited within the window").toBe(true);
    expect(await dataHeads()).toEqual(before);
    // Throttled requests are not audited (that would let a flood fill the audit log); the key's id is not leaked either.
    await expectNoAudit(problem.requestId);
  });

  it("failed authentication spends the client address's budget: then 429 for that address, valid credentials included, until the window passes; others unaffected", {
    timeout: 120_000,
  }, async () => {
    const ip = `198.51.100.${1 + Math.floor(Math.random() * 250)}`;
    const wrong = `evl_${"x".repeat(12)}_${"W".repeat(43)}`;
    secrets.push(wrong);
    const good = await createKey(["consume:rate-limit-nothing"]);
    const before = await dataHeads();
    const { limited } = await hammer(() => requestAs(wrong, "/v1/topics", { headers: { "cf-connecting-ip": ip } }), 401);
    const lockedAt = Date.now();
    const problem = await expectProblem(limited, 429);
    expect(problem.detail).toBe("request budget of this client exhausted; retry after the Retry-After seconds");
    expect(limited.headers.get("retry-after")).toBe("10");
    // Valid credentials from the locked-out address get 429 too (their secret is not even checked,
    // so a right guess looks like a wrong one); another address still gets its 401, or its 200.
    const locked = await requestAs(good.key, "/v1/topics", { headers: { "cf-connecting-ip": ip } });
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    const elsewhere = await requestAs(wrong, "/v1/topics", { headers: { "cf-connecting-ip": "203.0.113.9" } });
    await expectProblem(elsewhere, 401);
    expect((await requestAs(good.key, "/v1/topics", { headers: { "cf-connecting-ip": "203.0.113.9" } })).status).toBe(200);
    expect(await dataHeads()).toEqual(before);
    // The refused requests are not audited one by one: they are counted in the address's window
    // (its AuditTally object), and once the window closes (here: passed to its end, as its alarm
    // would) one auth.throttled record with their count is written (test/security/lockout.test.ts
    // checks the count and request id exactly).
    const tally = tallyOf(THROTTLED_AUDIT_ACTION, "unauthenticated", `client:${ip}`);
    const windows = await waitFor(tally.windows, (w) => (w[0]?.counts.count ?? 0) >= 2, 15_000);
    expect(windows).toHaveLength(1);
    expect(await tally.flush(windows[0]?.until ?? 0)).toBe(1);
    const throttled = (await auditSearch({ action: THROTTLED_AUDIT_ACTION })).filter((r) => r.ip === ip);
    expect(throttled).toHaveLength(1);
    expect(throttled[0]).toMatchObject({ action: THROTTLED_AUDIT_ACTION, status: 429, resource: `client:${ip}` });
    expect(throttled[0]?.details?.count as number).toBeGreaterThanOrEqual(2);
    // Once the lock (10 s) has passed, the address is served again.
    await sleep(Math.max(0, lockedAt + 10_200 - Date.now()));
    expect((await requestAs(good.key, "/v1/topics", { headers: { "cf-connecting-ip": ip } })).status).toBe(200);
  });
});
