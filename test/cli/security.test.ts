import { randomUUID } from "node:crypto";
import { describe, expect, inject, it } from "vitest";
import { cli } from "./helpers";

/** `eventline keys …`, `audit`, `erase`, `encryption …` against the local stack (test/cli/stack.ts). */

const url = () => inject("eventlineUrl");
const adminHeaders = () => ({ authorization: `Bearer ${inject("eventlineToken")}` });

async function api(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${url()}${path}`, { ...init, headers: { ...adminHeaders(), ...(init.headers as Record<string, string>) } });
}

describe("eventline keys", () => {
  it("creates a key shown once, which works with its grants, lists it without its secret, and revokes it", async () => {
    const name = `cli-${randomUUID().slice(0, 8)}`;
    const created = await cli(["keys", "create", name, "--grant", "produce:events", "--grant", "consume:events", "--json"]);
    expect(created.code, created.stderr).toBe(0);
    const key = JSON.parse(created.stdout) as { id: string; key: string; grants: string[]; createdBy: string };
    expect(key.grants).toEqual(["produce:events", "consume:events"]);
    expect(key.createdBy).toBe("admin");
    expect(key.key).toMatch(new RegExp(`^evl_${key.id}_`));

    // Human output of another key: the key on its own line and the "shown once" warning.
    const human = await cli(["keys", "create", `${name}-h`, "--grant", "consume:events"]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/\n {2}evl_[a-z0-9]{12}_[A-Za-z0-9_-]{43}\n/);
    expect(human.stdout).toContain("not shown again");

    // The new key publishes to events (its grant) and is refused on orders.
    const ok = await cli(["publish", "events", "--type", "cli.keys", "--data", '{"n":1}', "--token", key.key]);
    expect(ok.code, ok.stderr).toBe(0);
    const denied = await cli(["topic", "orders", "--token", key.key]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain("Forbidden");

    const list = await cli(["keys", "list"]);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(key.id);
    expect(list.stdout).toContain(name);
    expect(list.stdout).not.toContain(key.key.slice(20));

    const shown = await cli(["keys", "show", key.id]);
    expect(shown.stdout).toMatch(/state\s+active/);

    const revoked = await cli(["keys", "revoke", key.id]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(`API key ${key.id} (${name}) revoked`);
    const after = await cli(["topics", "--token", key.key]);
    expect(after.code).toBe(1);
    expect(after.stderr).toContain("API key revoked");
    expect(after.stderr).toContain("hint: pass --token or set EVENTLINE_TOKEN");
    expect((await cli(["keys", "show", key.id])).stdout).toMatch(/state\s+revoked/);
  });

  it("rejects a key without grants (usage) and an invalid grant (API, with the failing path)", async () => {
    const none = await cli(["keys", "create", "nogrants"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("--grant");
    const bad = await cli(["keys", "create", "bad", "--grant", "produce:orders*"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("/grants/0");
  });

  it("rotates a key in place: the new key printed once, the old one working through --grace, then (--grace 0) not at all", async () => {
    const created = await cli(["keys", "create", `rot-${randomUUID().slice(0, 8)}`, "--grant", "consume:events", "--json"]);
    expect(created.code, created.stderr).toBe(0);
    const original = JSON.parse(created.stdout) as { id: string; key: string };

    // Human output: the new key on its own line, when the old one stops, and the "shown once" warning.
    const human = await cli(["keys", "rotate", original.id, "--grace", "1h"]);
    expect(human.code, human.stderr).toBe(0);
    const second = /\n {2}(evl_[a-z0-9]{12}_[A-Za-z0-9_-]{43})\n/.exec(human.stdout)?.[1] ?? "";
    expect(second.startsWith(`evl_${original.id}_`)).toBe(true);
    expect(human.stdout).toMatch(/previous secret keeps working until \d{4}-\d{2}-\d{2}T/);
    expect(human.stdout).toContain("not shown again");
    expect((await cli(["topics", "--token", original.key])).code).toBe(0);
    expect((await cli(["topics", "--token", second])).code).toBe(0);
    expect((await cli(["keys", "show", original.id])).stdout).toMatch(/previous\s+secret still works until/);

    const json = await cli(["keys", "rotate", original.id, "--grace", "0", "--json"]);
    expect(json.code, json.stderr).toBe(0);
    const third = JSON.parse(json.stdout) as { id: string; key: string; previousSecretExpiresAt: string | null; rotatedAt: string };
    expect(third).toMatchObject({ id: original.id, previousSecretExpiresAt: null });
    const stale = await cli(["topics", "--token", second]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain("API key not recognised");
    expect((await cli(["topics", "--token", third.key])).code).toBe(0);

    const found = await cli(["audit", "--action", "keys.rotate", "--json"]);
    const records = (JSON.parse(found.stdout) as { records: { resource: string; outcome: string }[] }).records;
    expect(records.filter((r) => r.resource === `key:${original.id}` && r.outcome === "success")).toHaveLength(2);

    const usage = await cli(["keys", "rotate", original.id, "--grace", "8d"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("--grace");
  });
});

describe("eventline audit, erase, encryption", () => {
  it("audit finds the key operations; erase needs --yes off a terminal and destroys a subject's key", async () => {
    const name = `audited-${randomUUID().slice(0, 8)}`;
    expect((await cli(["keys", "create", name, "--grant", "consume:events"])).code).toBe(0);
    const found = await cli(["audit", "--action", "keys.", "--json"]);
    expect(found.code, found.stderr).toBe(0);
    const records = (JSON.parse(found.stdout) as { records: { action: string; actor: { id: string }; details?: { name?: string } }[] })
      .records;
    expect(records.some((r) => r.action === "keys.create" && r.actor.id === "admin" && r.details?.name === name)).toBe(true);
    const table = await cli(["audit", "--action", "keys.create"]);
    expect(table.stdout).toContain("keys.create");

    const subject = `customer-${randomUUID()}`;
    const posted = await api("/v1/topics/customers/events", {
      method: "POST",
      headers: { "content-type": "application/cloudevents+json" },
      body: JSON.stringify({
        specversion: "1.0",
        id: randomUUID(),
        source: "/cli-erase",
        type: "customers.registered",
        subject,
        data: { email: "erase-me@example.com" },
      }),
    });
    expect(posted.status).toBe(202);
    const refused = await cli(["erase", subject]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("--yes");
    const erased = await cli(["erase", subject, "--yes"]);
    expect(erased.code, erased.stderr).toBe(0);
    expect(erased.stdout).toContain(`erased ${subject}: 1 data key(s) destroyed`);
    const again = await cli(["erase", subject, "--yes"]);
    expect(again.stdout).toContain("nothing to erase");

    const status = await cli(["encryption", "status"]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain("current v1");
    expect(status.stdout).toContain("rotation complete");
    const rewrap = await cli(["encryption", "rewrap", "--json"]);
    expect(rewrap.code, rewrap.stderr).toBe(0);
    expect(JSON.parse(rewrap.stdout)).toEqual({ rewrapped: 0, remaining: 0, current: "v1" });
  });
});
