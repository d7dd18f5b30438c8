import { beforeAll, describe, expect, it } from "vitest";
import { testBindings } from "../bindings";
import { expectProblem, request } from "../helpers";
import { authzSetup, HOOK, subscriptionExists, visibleTopics } from "./authz-fixtures";
import { asKey, type CreatedTestKey, createTestKey, expectAccessDenied, jsonInit } from "./helpers";

/**
 * Authorization, route group by route group (what these tests show as a whole: authz-fixtures.ts).
 * This file: reads, and which topics and subscriptions a key is shown at all (a name outside its
 * grants is a 403 whether it exists or not).
 */

let producer: CreatedTestKey;
let consumer: CreatedTestKey;
let tenantProducer: CreatedTestKey;
let tenantConsumer: CreatedTestKey;
let replayer: CreatedTestKey;
let eventsAdmin: CreatedTestKey;
let denyOrders: CreatedTestKey;

beforeAll(async () => {
  ({ producer, consumer, tenantProducer, tenantConsumer, replayer, eventsAdmin, denyOrders } = await authzSetup());
});

describe("reads", () => {
  it("a producer cannot read partitions, streams, topic details, subscriptions or the orders read models", async () => {
    const cases: [string, string][] = [
      ["/v1/topics/events", "consume"],
      ["/v1/topics/events/partitions/0/events", "consume"],
      ["/v1/topics/events/streams/s-1", "consume"],
      ["/v1/topics/events/streams/s-1/events", "consume"],
      ["/v1/subscriptions/activity", "consume"],
      ["/v1/subscriptions/activity/dlq", "admin"],
      ["/v1/topics/events/archive", "admin"],
    ];
    for (const [path, action] of cases) {
      await expectAccessDenied(await asKey(producer, path), { actor: producer.principal, reason: [action, "topic events"] });
    }
    for (const path of ["/v1/orders", "/v1/orders/ord-1", "/v1/customers/c-1/summary", "/v1/topics/orders/partitions/0/events"]) {
      await expectAccessDenied(await asKey(producer, path), { actor: producer.principal, reason: ["consume", "topic orders"] });
    }
  });

  it("GET /v1/topics lists only what the caller holds a grant on (and /v1/subscriptions what it may consume)", async () => {
    expect(await visibleTopics("admin")).toEqual([
      "audit",
      "customers",
      "events",
      "orders",
      "orders-alerts",
      "orders-revenue",
      "processor.revenue-per-minute",
      "processor.unpaid-orders",
    ]);
    // Internal topics (the audit log, processors' re-partition topics) are listed for global admins
    // only; a topic deny makes admin:* no global admin.
    expect(await visibleTopics(denyOrders)).toEqual(["customers", "events", "orders", "orders-alerts", "orders-revenue"]);
    expect(await visibleTopics(producer)).toEqual(["events"]);
    expect(await visibleTopics(consumer)).toEqual(["events"]);
    expect(await visibleTopics(replayer)).toEqual(["events"]);
    expect(await visibleTopics(eventsAdmin)).toEqual(["events"]);
    expect(await visibleTopics(tenantProducer)).toEqual([]);
    expect(await visibleTopics(tenantConsumer)).toEqual([]);

    // A key holding only a deny sees nothing at all.
    const denyOnly = await createTestKey("deny-only", ["!produce:orders"]);
    await expectAccessDenied(await asKey(denyOnly, "/v1/topics"), { actor: denyOnly.principal, reason: ["has no grants"] });

    const subscriptionTopics = async (key: CreatedTestKey) => {
      const subs = await asKey(key, "/v1/subscriptions");
      expect(subs.status).toBe(200);
      return [...new Set(((await subs.json()) as { subscriptions: { topic: string }[] }).subscriptions.map((s) => s.topic))];
    };
    expect(await subscriptionTopics(consumer)).toEqual(["events"]);
    expect(await subscriptionTopics(producer)).toEqual([]);
  });
});

describe("subscriptions are seen only by who may consume their topic", () => {
  const names = async (key: CreatedTestKey, path: string, member: "subscriptions" | "replays") => {
    const res = await asKey(key, path);
    const text = await res.text();
    expect(res.status, text).toBe(200);
    const body = JSON.parse(text) as Record<string, { subscription?: string; name?: string; topic: string }[]>;
    return (body[member] ?? []).map((s) => `${s.topic}/${s.name ?? s.subscription}`).sort();
  };

  it("GET /v1/subscriptions and /v1/metrics list a topic's subscriptions to its consumers only, not to its producers or replayers", async () => {
    const eventsSubscriptions = ["events/activity", `events/${HOOK}`, "events/greetings"];
    expect(await names(consumer, "/v1/subscriptions", "subscriptions")).toEqual(expect.arrayContaining(eventsSubscriptions));
    expect((await names(consumer, "/v1/subscriptions", "subscriptions")).every((n) => n.startsWith("events/"))).toBe(true);
    for (const key of [producer, replayer]) {
      // Each of them gets a 403 from GET /v1/subscriptions/{name} for these, so the list shows none.
      await expectAccessDenied(await asKey(key, "/v1/subscriptions/activity"), {
        actor: key.principal,
        reason: ["consume", "topic events"],
      });
      expect(await names(key, "/v1/subscriptions", "subscriptions")).toEqual([]);
      expect(await names(key, "/v1/metrics", "subscriptions")).toEqual([]);
    }
    expect(await names(consumer, "/v1/metrics", "subscriptions")).toEqual(expect.arrayContaining(eventsSubscriptions));
  });

  it("a name outside the caller's grants is a 403 whether it exists or not (same detail), on every route about one subscription or replay", async () => {
    const hidden = `authz-hidden-${crypto.randomUUID().slice(0, 8)}`;
    const missing = `authz-missing-${crypto.randomUUID().slice(0, 8)}`;
    const sub = await request(
      "/v1/subscriptions",
      jsonInit({
        name: hidden,
        topic: "customers",
        filter: { type: ["authz.none"] },
        webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/${hidden}` },
      }),
    );
    expect(sub.status, await sub.text()).toBe(201);
    const job = await request(
      "/v1/replays",
      jsonInit({ topic: "customers", partitions: [0], from: { sequence: 1 }, subscription: hidden }),
    );
    const jobText = await job.text();
    expect(job.status, jobText).toBe(201);
    const jobId = (JSON.parse(jobText) as { id: string }).id;
    const missingJob = `rpl_${"0".repeat(32)}`;

    const pairs: {
      key: CreatedTestKey;
      action: string;
      init: () => RequestInit;
      path: (name: string) => string;
      names: [string, string];
    }[] = [
      { key: consumer, action: "consume", init: () => ({}), path: (n) => `/v1/subscriptions/${n}`, names: [hidden, missing] },
      { key: eventsAdmin, action: "admin", init: () => ({}), path: (n) => `/v1/subscriptions/${n}/dlq`, names: [hidden, missing] },
      {
        key: eventsAdmin,
        action: "admin",
        init: () => jsonInit({}),
        path: (n) => `/v1/subscriptions/${n}/dlq/redrive`,
        names: [hidden, missing],
      },
      {
        key: eventsAdmin,
        action: "admin",
        init: () => ({ method: "DELETE" }),
        path: (n) => `/v1/subscriptions/${n}`,
        names: [hidden, missing],
      },
      {
        key: eventsAdmin,
        action: "admin",
        init: () => jsonInit({}),
        path: (n) => `/v1/projections/${n}/rebuild`,
        names: ["customer-summary", missing],
      },
      { key: replayer, action: "replay", init: () => ({}), path: (n) => `/v1/replays/${n}`, names: [jobId, missingJob] },
      { key: replayer, action: "replay", init: () => ({ method: "DELETE" }), path: (n) => `/v1/replays/${n}`, names: [jobId, missingJob] },
    ];
    const answer = (p: { detail: string; title: string; code: string; status: number }, name: string) => ({
      title: p.title,
      code: p.code,
      status: p.status,
      detail: p.detail.replaceAll(name, "<name>"),
    });
    for (const {
      key,
      action,
      init,
      path,
      names: [existing, absent],
    } of pairs) {
      const shown = await expectAccessDenied(await asKey(key, path(existing), init()), { actor: key.principal, reason: [action] });
      const hiddenMissing = await expectAccessDenied(await asKey(key, path(absent), init()), {
        actor: key.principal,
        reason: [action, "does not exist"],
      });
      // The caller cannot tell them apart; the audit record (global admins only) can.
      expect(answer(hiddenMissing.problem, absent), path(existing)).toEqual(answer(shown.problem, existing));
      expect(shown.problem.detail).not.toContain("customers");
      expect(shown.record.reason).toContain("topic ");
    }
    // Nothing changed: the subscription and the job are there, not cancelled.
    expect(await subscriptionExists(hidden)).toBe(true);
    const state = (await (await request(`/v1/replays/${jobId}`)).json()) as { state: string };
    expect(state.state).not.toBe("cancelled");
    // A principal that may use every topic is told what does not exist.
    expect((await expectProblem(await request(`/v1/subscriptions/${missing}`), 404)).code).toBe("not_found");
    expect((await expectProblem(await request(`/v1/replays/${missingJob}`), 404)).code).toBe("not_found");
    // And a key keeps seeing what its grants cover.
    expect((await asKey(consumer, `/v1/subscriptions/${HOOK}`)).status).toBe(200);
  });
});
