import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { AuditTally } from "../../durable-objects/audit-tally";
import { auditTallyName, type TallyInput } from "../../shared/audit-tally";
import { auditSearch } from "../security/helpers";
import { tallyOf } from "../security/tally-helpers";

/*
 * The AuditTally object (ADR 0031) sums what several isolates send for one (action, actor,
 * resource) into one window and writes one record when it closes, with what the first add said
 * about the record (outcome, status, reason, client address, details).
 */

const ACTION = "auth.throttled";
const ACTOR = { id: "unauthenticated", kind: "none" };

/** What one isolate's gathering for `resource` sends. */
const batch = (resource: string, requestId: string, count: number, reason: string): TallyInput => ({
  action: ACTION,
  actor: ACTOR,
  resource,
  requestId,
  windowSeconds: 60,
  counts: { count },
  outcome: "failure",
  status: 429,
  reason,
  ip: resource.slice("client:".length),
  details: { lock: "per-isolate" },
});

describe("AuditTally", () => {
  it("sums the batches of two isolates into one window and one record, with the first batch's request id and record fields", async () => {
    const resource = `client:tally-${crypto.randomUUID().slice(0, 8)}`;
    const stub = env.AUDIT_TALLY.getByName(auditTallyName(ACTION, ACTOR.id, resource));
    const opened = await stub.add(batch(resource, "req-isolate-a", 3, "first"));
    const joined = await stub.add(batch(resource, "req-isolate-b", 5, "second"));
    expect(joined.from).toBe(opened.from);
    expect(joined.counts).toEqual({ count: 8 });

    const window = await tallyOf(ACTION, ACTOR.id, resource).close("count", 8);
    const records = (await auditSearch({ action: ACTION })).filter((r) => r.resource === resource);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      action: ACTION,
      outcome: "failure",
      status: 429,
      reason: "first",
      ip: resource.slice("client:".length),
      actor: ACTOR,
      requestId: "req-isolate-a",
      details: {
        lock: "per-isolate",
        count: 8,
        from: new Date(window.from).toISOString(),
        until: new Date(window.until).toISOString(),
      },
    });
  });

  it("writes a window stored before records carried an outcome as a success, as it was written then", async () => {
    const resource = `topic:legacy-${crypto.randomUUID().slice(0, 8)}`;
    const actor = { id: "key:legacy", kind: "api-key" };
    const stub = env.AUDIT_TALLY.getByName(auditTallyName("encryption.decrypt", actor.id, resource));
    const from = Date.now() - 1000;
    await runInDurableObject(stub, (tally: AuditTally, state) => {
      expect(tally.windows()).toEqual([]);
      state.storage.sql.exec(
        "INSERT INTO windows (opened_at, closes_at, record) VALUES (?, ?, ?)",
        from,
        from + 500,
        JSON.stringify({ action: "encryption.decrypt", resource, actor, requestId: "req-legacy", counts: { reads: 2, fields: 8 } }),
      );
    });
    const legacy = tallyOf("encryption.decrypt", actor.id, resource);
    expect(await legacy.flush(Date.now())).toBe(1);
    const records = (await auditSearch({ action: "encryption.decrypt" })).filter((r) => r.resource === resource);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ outcome: "success", actor, requestId: "req-legacy", details: { reads: 2, fields: 8 } });
    expect(records[0]).not.toHaveProperty("status");
  });
});
