import { beforeAll, describe, expect, it } from "vitest";
import { testBindings } from "../bindings";
import { expectProblem, request } from "../helpers";
import {
  archiveManifest,
  authzSetup,
  dlqDepth,
  HOOK,
  keyIds,
  replayJobCount,
  seedDeadLetter,
  subscriptionExists,
  vaultStatus,
} from "./authz-fixtures";
import {
  asKey,
  auditSearch,
  type CreatedTestKey,
  chunkedBody,
  createTestKey,
  dataHeads,
  expectAccessDenied,
  jsonInit,
  nestedJson,
  splitUtf8,
} from "./helpers";

/**
 * Authorization, route group by route group (what these tests show as a whole: authz-fixtures.ts).
 * This file: admin and global functions (keys, subscriptions, replays, DLQ, projections,
 * archive, encryption), and a deny of consume also denying replays, rebuilds and the DLQ.
 */

let producer: CreatedTestKey;
let consumer: CreatedTestKey;
let replayer: CreatedTestKey;
let eventsAdmin: CreatedTestKey;

beforeAll(async () => {
  ({ producer, consumer, replayer, eventsAdmin } = await authzSetup());
});

describe("admin and global functions", () => {
  it("a producer gets a 403 from every admin and global function, each audited, and nothing changes", async () => {
    await seedDeadLetter("dl-authz-producer");
    const state = async () => ({
      dlq: await dlqDepth(HOOK),
      replays: await replayJobCount(),
      keys: await keyIds(),
      vault: await vaultStatus(),
      manifest: await archiveManifest("events"),
      evil: await subscriptionExists("authz-evil"),
      hook: await subscriptionExists(HOOK),
      heads: await dataHeads(),
    });
    const before = await state();
    expect(before.dlq).toBeGreaterThanOrEqual(1);
    const GLOBAL = "admin on every topic (admin:*)";
    const cases: { method: string; path: string; body?: unknown; reason: string[]; attempted?: string }[] = [
      {
        method: "POST",
        path: "/v1/replays",
        body: { topic: "events", from: { sequence: 1 }, subscription: HOOK },
        reason: ["replay", "topic events"],
        attempted: "replays.create",
      },
      {
        method: "POST",
        path: `/v1/subscriptions/${HOOK}/dlq/redrive`,
        body: {},
        reason: ["admin", "topic events"],
        attempted: "dlq.redrive",
      },
      { method: "POST", path: "/v1/keys", body: { name: "escalate", grants: ["admin:*"] }, reason: [GLOBAL], attempted: "keys.create" },
      { method: "GET", path: "/v1/keys", reason: [GLOBAL] },
      { method: "GET", path: "/v1/audit", reason: [GLOBAL] },
      { method: "DELETE", path: "/v1/subjects/x/keys", reason: [GLOBAL], attempted: "subjects.shred" },
      { method: "GET", path: "/v1/encryption", reason: [GLOBAL] },
      { method: "POST", path: "/v1/encryption/rewrap", body: {}, reason: [GLOBAL], attempted: "keys.rewrap" },
      { method: "POST", path: "/v1/topics/events/archive", reason: ["admin", "topic events"], attempted: "archive.seal" },
      {
        method: "POST",
        path: "/v1/projections/orders-view/rebuild",
        body: {},
        reason: ["admin", "topic orders"],
        attempted: "projections.rebuild",
      },
      {
        method: "POST",
        path: "/v1/subscriptions",
        body: { name: "authz-evil", topic: "events", webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/authz-evil` } },
        reason: ["admin", "topic events"],
        attempted: "subscriptions.create",
      },
      { method: "DELETE", path: `/v1/subscriptions/${HOOK}`, reason: ["admin", "topic events"], attempted: "subscriptions.delete" },
    ];
    for (const c of cases) {
      const init: RequestInit = c.body === undefined ? { method: c.method } : jsonInit(c.body, { method: c.method });
      await expectAccessDenied(await asKey(producer, c.path, init), {
        actor: producer.principal,
        reason: c.reason,
        ...(c.attempted === undefined ? {} : { attempted: c.attempted }),
      });
    }
    expect(await state()).toEqual(before);
    // No admin action was recorded as done by the producer.
    const done = (await auditSearch({ actor: producer.principal })).filter((r) => r.outcome !== "denied");
    expect(done).toEqual([]);
  });

  it("a consumer reads the events topic and its subscriptions, but cannot replay, redrive, archive or subscribe", async () => {
    const before = { dlq: await dlqDepth(HOOK), replays: await replayJobCount() };
    expect((await asKey(consumer, `/v1/subscriptions/${HOOK}`)).status).toBe(200);
    await expectAccessDenied(
      await asKey(consumer, "/v1/replays", jsonInit({ topic: "events", from: { sequence: 1 }, subscription: HOOK })),
      { actor: consumer.principal, reason: ["replay", "topic events"] },
    );
    await expectAccessDenied(await asKey(consumer, `/v1/subscriptions/${HOOK}/dlq/redrive`, jsonInit({})), {
      actor: consumer.principal,
      reason: ["admin", "topic events"],
    });
    await expectAccessDenied(await asKey(consumer, "/v1/topics/events/archive", { method: "POST" }), {
      actor: consumer.principal,
      reason: ["admin", "topic events"],
    });
    expect({ dlq: await dlqDepth(HOOK), replays: await replayJobCount() }).toEqual(before);
  });

  it("a replayer creates a replay of an events subscription (201, audited) but may not redrive its DLQ or replay orders", async () => {
    await seedDeadLetter("dl-authz-replayer");
    const dlqBefore = await dlqDepth(HOOK);
    const res = await asKey(
      replayer,
      "/v1/replays",
      jsonInit({ topic: "events", partitions: [0], from: { sequence: 1 }, subscription: HOOK }),
    );
    const text = await res.text();
    expect(res.status, text).toBe(201);
    const job = JSON.parse(text) as { id: string; topic: string; subscription: string };
    expect(job).toMatchObject({ topic: "events", subscription: HOOK });
    const created = (await auditSearch({ action: "replays.create", actor: replayer.principal })).filter((r) => r.outcome === "success");
    expect(created).toHaveLength(1);
    expect(created[0]).toMatchObject({ status: 201, resource: "topic:events" });
    expect((await asKey(replayer, `/v1/replays/${job.id}`)).status).toBe(200);

    await expectAccessDenied(await asKey(replayer, `/v1/subscriptions/${HOOK}/dlq/redrive`, jsonInit({})), {
      actor: replayer.principal,
      reason: ["admin", "topic events"],
      attempted: "dlq.redrive",
    });
    expect(await dlqDepth(HOOK)).toBe(dlqBefore);
    const replays = await replayJobCount();
    await expectAccessDenied(
      await asKey(replayer, "/v1/replays", jsonInit({ topic: "orders", from: { sequence: 1 }, subscription: "orders-view" })),
      { actor: replayer.principal, reason: ["replay", "topic orders"] },
    );
    await expectAccessDenied(await asKey(replayer, "/v1/projections/activity/rebuild", jsonInit({})), {
      actor: replayer.principal,
      reason: ["admin", "topic events"],
    });
    expect(await replayJobCount()).toBe(replays);
  });

  it("admin:events redrives and archives events, but not orders, and none of the global functions", async () => {
    await seedDeadLetter("dl-authz-admin");
    const redrive = await asKey(eventsAdmin, `/v1/subscriptions/${HOOK}/dlq/redrive`, jsonInit({}));
    const redriven = await redrive.text();
    expect(redrive.status, redriven).toBe(200);
    expect(JSON.parse(redriven)).toMatchObject({ remaining: 0 });
    expect(await dlqDepth(HOOK)).toBe(0);
    const archive = await asKey(eventsAdmin, "/v1/topics/events/archive", { method: "POST" });
    expect(archive.status, await archive.text()).toBe(200);
    const outcomes = await auditSearch({ actor: eventsAdmin.principal, outcome: "success" });
    expect(outcomes.map((r) => r.action)).toEqual(expect.arrayContaining(["dlq.redrive", "archive.seal"]));

    const before = {
      manifest: await archiveManifest("orders"),
      replays: await replayJobCount(),
      keys: await keyIds(),
      vault: await vaultStatus(),
      sub: await subscriptionExists("authz-orders-hook"),
    };
    const GLOBAL = "admin on every topic (admin:*)";
    const cases: [string, RequestInit, string[]][] = [
      ["/v1/subscriptions/orders-view/dlq/redrive", jsonInit({}), ["admin", "topic orders"]],
      ["/v1/topics/orders/archive", { method: "POST" }, ["admin", "topic orders"]],
      ["/v1/projections/orders-view/rebuild", jsonInit({}), ["admin", "topic orders"]],
      [
        "/v1/subscriptions",
        jsonInit({ name: "authz-orders-hook", topic: "orders", webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/authz-orders-hook` } }),
        ["admin", "topic orders"],
      ],
      ["/v1/keys", jsonInit({ name: "escalate", grants: ["admin:*"] }), [GLOBAL]],
      ["/v1/keys", { method: "GET" }, [GLOBAL]],
      ["/v1/audit", { method: "GET" }, [GLOBAL]],
      ["/v1/subjects/x/keys", { method: "DELETE" }, [GLOBAL]],
      ["/v1/encryption", { method: "GET" }, [GLOBAL]],
      ["/v1/encryption/rewrap", jsonInit({}), [GLOBAL]],
    ];
    for (const [path, init, reason] of cases) {
      await expectAccessDenied(await asKey(eventsAdmin, path, init), { actor: eventsAdmin.principal, reason });
    }
    expect({
      manifest: await archiveManifest("orders"),
      replays: await replayJobCount(),
      keys: await keyIds(),
      vault: await vaultStatus(),
      sub: await subscriptionExists("authz-orders-hook"),
    }).toEqual(before);
  });

  it("a webhook subscription body cannot set an owner or createdBy (strict: 400) and nothing is created", async () => {
    const url = `${testBindings.WEBHOOK_SINK}/hooks/authz-owned`;
    const bodies = [
      { name: "authz-owned", topic: "events", webhook: { url }, owner: "key:someone-else" },
      { name: "authz-owned", topic: "events", webhook: { url }, createdBy: "admin" },
      { name: "authz-owned", topic: "events", webhook: { url, owner: "key:someone-else" } },
    ];
    for (const body of bodies) {
      // As the admin, and as a topic admin whose grant covers the topic: refused for the body, not the caller.
      for (const send of [request, (p: string, i: RequestInit) => asKey(eventsAdmin, p, i)]) {
        const problem = await expectProblem(await send("/v1/subscriptions", jsonInit(body)), 400);
        expect(problem.code).toBe("invalid_parameter");
        expect(JSON.stringify(problem.issues)).toMatch(/owner|createdBy/);
      }
    }
    expect(await subscriptionExists("authz-owned")).toBe(false);
    // The same body without the extra member is accepted (from the topic admin), so the 400 was only for it.
    const ok = await asKey(eventsAdmin, "/v1/subscriptions", jsonInit({ name: "authz-owned", topic: "events", webhook: { url } }));
    expect(ok.status, await ok.text()).toBe(201);
    expect(await subscriptionExists("authz-owned")).toBe(true);
  });

  it("API key bodies are bounded: over 64 KiB is a 413 and no key is created", async () => {
    const before = await keyIds();
    // Valid JSON (whitespace padding), so only its size can refuse it.
    const body = `{"name":"oversize","grants":["produce:events"]}${" ".repeat(70 * 1024)}`;
    const res = await request("/v1/keys", { method: "POST", headers: { "content-type": "application/json" }, body });
    expect((await expectProblem(res, 413)).code).toBe("payload_too_large");
    const streamed = await request("/v1/keys", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chunkedBody(splitUtf8(body, 1024)),
      duplex: "half",
    } as RequestInit);
    expect((await expectProblem(streamed, 413)).code).toBe("payload_too_large");
    expect(await keyIds()).toEqual(before);
  });

  it("a lying Content-Length on an admin route (declares 48 bytes, streams 70 KiB) is a 413 and no key is created", async () => {
    const before = await keyIds();
    const head = `{"name":"smuggled","grants":["admin:*"]}`;
    const body = `${head}${" ".repeat(70 * 1024)}`;
    const res = await request("/v1/keys", {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": String(head.length) },
      body: chunkedBody(splitUtf8(body, head.length)),
      duplex: "half",
    } as RequestInit);
    expect((await expectProblem(res, 413)).code).toBe("payload_too_large");
    expect(await keyIds()).toEqual(before);
  });

  it("deeply nested admin bodies are a 400, never a 5xx, and create nothing", async () => {
    const url = `${testBindings.WEBHOOK_SINK}/hooks/authz-deep`;
    const deepFilter = { type: [nestedJson(1000, "x")] };
    const sub = await expectProblem(
      await request("/v1/subscriptions", jsonInit({ name: "authz-deep", topic: "events", filter: deepFilter, webhook: { url } })),
      400,
    );
    expect(sub.code).toBe("malformed_request");
    expect(await subscriptionExists("authz-deep")).toBe(false);
    // Just past the admin depth limit of 16 is refused the same way.
    const justPast = await request(
      "/v1/subscriptions",
      jsonInit({ name: "authz-deep", topic: "events", filter: nestedJson(16), webhook: { url } }),
    );
    expect((await expectProblem(justPast, 400)).code).toBe("malformed_request");
    expect(await subscriptionExists("authz-deep")).toBe(false);

    const replays = await replayJobCount();
    const replay = await request(
      "/v1/replays",
      jsonInit({ topic: "events", from: { sequence: 1 }, subscription: HOOK, filter: nestedJson(1000) }),
    );
    expect((await expectProblem(replay, 400)).code).toBe("malformed_request");
    expect(await replayJobCount()).toBe(replays);
    const keys = await keyIds();
    const key = await request("/v1/keys", jsonInit(`{"name":"deep","grants":${"[".repeat(1000)}${"]".repeat(1000)}}`));
    await expectProblem(key, 400);
    expect(await keyIds()).toEqual(keys);
  });
});

describe("a deny of consume also denies moving the topic's events elsewhere", () => {
  it("replay:events or admin:events with !consume:events: no replay create, status, cancel or listing, no rebuild, no DLQ (403, audited)", async () => {
    const created = await request("/v1/replays", jsonInit({ topic: "events", partitions: [0], from: { sequence: 1 }, subscription: HOOK }));
    const createdText = await created.text();
    expect(created.status, createdText).toBe(201);
    const job = JSON.parse(createdText) as { id: string };
    await seedDeadLetter(`dl-authz-deny-consume-${crypto.randomUUID()}`);
    const jobState = async () => ((await (await request(`/v1/replays/${job.id}`)).json()) as { state: string }).state;

    for (const [name, grants] of [
      ["deny-consume-replayer", ["replay:events", "!consume:events"]],
      ["deny-consume-admin", ["admin:events", "!consume:events"]],
    ] as const) {
      const key = await createTestKey(name, [...grants]);
      const before = { replays: await replayJobCount(), dlq: await dlqDepth(HOOK) };
      const cases: [string, RequestInit, string[], string | undefined][] = [
        [
          "/v1/replays",
          jsonInit({ topic: "events", partitions: [0], from: { sequence: 1 }, subscription: HOOK }),
          ["replay", "topic events"],
          "replays.create",
        ],
        [`/v1/replays/${job.id}`, { method: "GET" }, ["replay", "topic events"], undefined],
        [`/v1/replays/${job.id}`, { method: "DELETE" }, ["replay", "topic events"], "replays.cancel"],
        ["/v1/projections/activity/rebuild", jsonInit({}), ["admin", "topic events"], "projections.rebuild"],
        [`/v1/subscriptions/${HOOK}/dlq`, { method: "GET" }, ["admin", "topic events"], undefined],
        [`/v1/subscriptions/${HOOK}/dlq/redrive`, jsonInit({}), ["admin", "topic events"], "dlq.redrive"],
      ];
      for (const [path, init, reason, attempted] of cases) {
        await expectAccessDenied(await asKey(key, path, init), {
          actor: key.principal,
          reason,
          ...(attempted === undefined ? {} : { attempted }),
        });
      }
      // The job list shows none of the topic's jobs.
      const list = await asKey(key, "/v1/replays");
      const listed = await list.text();
      expect(list.status, listed).toBe(200);
      expect((JSON.parse(listed) as { replays: { topic: string }[] }).replays.filter((r) => r.topic === "events")).toEqual([]);
      // Nothing changed: no job created, the admin's job not cancelled, the DLQ as it was.
      expect({ replays: await replayJobCount(), dlq: await dlqDepth(HOOK) }).toEqual(before);
      expect(await jobState()).not.toBe("cancelled");
      expect((await auditSearch({ actor: key.principal })).filter((r) => r.outcome !== "denied")).toEqual([]);
    }
  });
});
