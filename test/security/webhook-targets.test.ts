import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import shipped from "../../eventline.config";
import migration from "../../migrations/0010_webhook_secret_rotation.sql?raw";
import { handleWebhookBatch } from "../../workers/platform/consumers/webhooks";
import { testBindings } from "../bindings";
import { delivery } from "../consumer/helpers";
import { ADMIN_KEY, event, expectAccepted, expectProblem, postStructured, request, waitFor } from "../helpers";
import {
  asKey,
  captureConsole,
  createTestKey,
  dataHeads,
  expectAudit,
  expectNoSecrets,
  jsonInit,
  sinkDeliveries,
  testApp,
} from "./helpers";

/**
 * Webhook targets: a URL's credentials stay in the subscription record (everything else names
 * the target by its origin), and the SSRF guard refuses targets that are not public — when the
 * subscription is created and again when an event is delivered — and never follows a redirect.
 * The test env allows the loopback receiver's address only (EVENTLINE_WEBHOOK_ALLOW=127.0.0.1).
 */

const SINK_ORIGIN = new URL(testBindings.WEBHOOK_SINK).origin;
const rand = () => crypto.randomUUID().slice(0, 8);
const setStatus = (name: string, status: number, location?: string) =>
  fetch(
    `${testBindings.WEBHOOK_SINK}/control/${name}?${new URLSearchParams({ status: String(status), ...(location ? { location } : {}) })}`,
    {
      method: "POST",
    },
  );

interface Trace {
  subscriptions: { subscription: string; state: string; attempts: { outcome: string; error?: string }[] }[];
}

const rows = async <T>(sql: string, ...binds: unknown[]): Promise<T[]> =>
  (
    await env.DB.prepare(sql)
      .bind(...binds)
      .all<T>()
  ).results;

const stored = (name: string) => env.DB.prepare("SELECT name FROM webhook_subscriptions WHERE name = ?").bind(name).first();

describe("a webhook URL's credentials leave the subscription record nowhere", () => {
  it("a consume-only key's trace, the D1 delivery attempts, dead letters, log lines and the audit record name the origin only", async () => {
    const name = `leak-${rand()}`;
    const type = `leak.${rand()}`;
    const token = `t0k3n${crypto.randomUUID().replaceAll("-", "")}`;
    await setStatus(name, 500);
    const logs = captureConsole();
    try {
      const admin = await createTestKey("leak-admin", ["admin:events"]);
      const created = await asKey(
        admin,
        "/v1/subscriptions",
        jsonInit({
          name,
          topic: "events",
          filter: { type: [type] },
          maxRetries: 1,
          webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/${name}?token=${token}` },
        }),
      );
      expect(created.status, await created.clone().text()).toBe(201);
      const [ack] = await expectAccepted(await postStructured("events", event({ type })));
      const reader = await createTestKey("leak-reader", ["consume:events"]);
      const trace = await waitFor(
        async () =>
          (await (await asKey(reader, `/v1/topics/events/partitions/${ack?.partition}/events/${ack?.sequence}/trace`)).json()) as Trace,
        (t) => t.subscriptions.find((s) => s.subscription === name)?.state === "dead_lettered",
        40_000,
      );
      const expected = `Error: webhook ${SINK_ORIGIN}/… answered 500`;
      expect(trace.subscriptions.find((s) => s.subscription === name)?.attempts.map((a) => a.error)).toEqual([expected, expected]);
      expect(JSON.stringify(trace)).not.toContain(token);

      const attempts = await rows<{ error: string }>("SELECT error FROM delivery_attempts WHERE subscription = ?", name);
      expect(attempts.map((a) => a.error)).toEqual([expected, expected]);
      const letters = await rows<{ error: string }>("SELECT error FROM dead_letters WHERE subscription = ?", name);
      expect(letters.map((l) => l.error)).toEqual([expected]);
      // The receiver itself got the full URL: the token reached the one it is for.
      expect((await sinkDeliveries(name)).length).toBe(2);

      logs.restore();
      expect(logs.text()).toContain("subscription created");
      expect(logs.text()).toContain(`${SINK_ORIGIN}/…`);
      expectNoSecrets(logs.text(), [token]);
      await expectAudit(
        created.headers.get("x-request-id") ?? "",
        { action: "subscriptions.create", outcome: "success", details: { target: `${SINK_ORIGIN}/…` } },
        [token],
      );
    } finally {
      logs.restore();
    }
  });

  it("migration 0010 replaces full URLs in delivery errors stored before the fix by their origin", async () => {
    const name = `old-${rand()}`;
    const url = `HTTPS://User:Pw@Hooks.Example:8443/p/${name}?token=s3cret#f`;
    const error = `Error: webhook ${url} answered 500`;
    await env.DB.batch([
      env.DB.prepare(
        `INSERT INTO webhook_subscriptions (name, topic, filter, ordering, max_retries, url, secret, created_at)
         VALUES (?, 'events', '{"type":["never"]}', 'none', 1, ?, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 0)`,
      ).bind(name, url),
      env.DB.prepare(
        `INSERT INTO delivery_attempts (subscription, topic, partition, sequence, attempt, outcome, error, at, sent_at)
         VALUES (?, 'events', 0, 1, 1, 'failed', ?, 0, 0)`,
      ).bind(name, error),
      env.DB.prepare(
        `INSERT INTO delivery_failures (subscription, topic, partition, sequence, attempts, first_failure_at, last_failure_at, last_error)
         VALUES (?, 'events', 0, 1, 1, 0, 0, ?)`,
      ).bind(name, error),
      env.DB.prepare(
        `INSERT INTO dead_letters (id, subscription, topic, partition, sequence, event_id, body, reason, error, attempts,
           first_failure_at, last_failure_at, dead_lettered_at) VALUES (?, ?, 'events', 0, 1, 'e', '{}', 'max_retries', ?, 2, 0, 0, 0)`,
      ).bind(crypto.randomUUID(), name, error),
    ]);
    // The data fix: the statements after the two column additions.
    const statements = migration
      .split("--> statement-breakpoint")
      .map((s) => s.trim())
      .filter((s) => s !== "" && !s.startsWith("ALTER TABLE"));
    expect(statements).toHaveLength(5);
    for (const sql of statements) await env.DB.prepare(sql).run();

    const fixed = "Error: webhook https://hooks.example:8443/… answered 500";
    expect(await rows("SELECT error FROM delivery_attempts WHERE subscription = ?", name)).toEqual([{ error: fixed }]);
    expect(await rows("SELECT last_error FROM delivery_failures WHERE subscription = ?", name)).toEqual([{ last_error: fixed }]);
    expect(await rows("SELECT error FROM dead_letters WHERE subscription = ?", name)).toEqual([{ error: fixed }]);
    await env.DB.batch(
      [
        "webhook_subscriptions WHERE name",
        "delivery_attempts WHERE subscription",
        "delivery_failures WHERE subscription",
        "dead_letters WHERE subscription",
      ].map((t) => env.DB.prepare(`DELETE FROM ${t} = ?`).bind(name)),
    );
  });
});

describe("the SSRF guard at creation", () => {
  // Non-public targets an admin of one topic could aim at, in the spellings that reach them (not
  // 127.0.0.1 itself: the test env allows the receiver there).
  const targets = [
    "http://localhost:8787/v1/keys",
    "http://127.0.0.2/",
    "http://2130706434:9/",
    "http://0x7f.2:9/",
    "http://[::1]:9/",
    "http://[::ffff:127.0.0.2]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://10.0.0.5/",
    "http://192.168.1.1/",
    "http://[fd00::1]/",
    "http://metadata.google.internal/",
    "http://printer.local/",
    "http://redis/",
  ];

  it.each(targets)("%s: 400 problem+json naming /webhook/url, nothing stored, nothing appended", async (url) => {
    const admin = await createTestKey("ssrf-admin", ["admin:events"]);
    const name = `ssrf-${rand()}`;
    const before = await dataHeads();
    const problem = await expectProblem(
      await asKey(admin, "/v1/subscriptions", jsonInit({ name, topic: "events", webhook: { url } })),
      400,
    );
    expect(problem.code).toBe("invalid_parameter");
    expect(problem.detail).toContain("webhook.url must be a public target");
    expect(problem.issues?.[0]?.path).toBe("/webhook/url");
    expect(await stored(name)).toBeNull();
    expect(await dataHeads()).toEqual(before);
  });

  it("the refusal is audited as a failed subscriptions.create, with the target's origin only", async () => {
    const admin = await createTestKey("ssrf-audited", ["admin:events"]);
    const url = "http://169.254.169.254/latest/meta-data/iam/security-credentials/role?x=s3cretpath";
    const res = await asKey(admin, "/v1/subscriptions", jsonInit({ name: `ssrf-${rand()}`, topic: "events", webhook: { url } }));
    const problem = await expectProblem(res, 400);
    const record = await expectAudit(
      problem.requestId,
      {
        action: "subscriptions.create",
        outcome: "failure",
        status: 400,
        actor: { id: admin.principal },
        details: { target: "http://169.254.169.254/…" },
      },
      ["security-credentials/role", "s3cretpath"],
    );
    expect(record.reason).toContain("169.254.169.254 is a link-local address");
  });

  it("a deployed Worker's default (nothing allowed) refuses loopback too; `loopback` allows it", async () => {
    const app = testApp(shipped);
    const init = (name: string, url: string) =>
      jsonInit({ name, topic: "events", webhook: { url } }, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    const refused = `deny-${rand()}`;
    const res = await app.call("/v1/subscriptions", init(refused, `${testBindings.WEBHOOK_SINK}/hooks/x`), {
      EVENTLINE_WEBHOOK_ALLOW: "",
    } as Partial<Env>);
    expect((await expectProblem(res, 400)).detail).toContain("127.0.0.1 is a loopback address");
    expect(await stored(refused)).toBeNull();

    const allowed = `allow-${rand()}`;
    const ok = await app.call("/v1/subscriptions", init(allowed, "http://localhost:9/hook"), {
      EVENTLINE_WEBHOOK_ALLOW: "loopback",
    } as unknown as Partial<Env>);
    expect(ok.status, await ok.clone().text()).toBe(201);
    expect(await stored(allowed)).not.toBeNull();
    expect((await request(`/v1/subscriptions/${allowed}`, { method: "DELETE" })).status).toBe(204);
  });
});

/** A delivery of a made-up event to `name`, through the webhook consumer, with `allow` as the var. */
async function deliverOnce(name: string, sequence: number, allow: string) {
  const body = delivery({
    subscription: name,
    topic: "events",
    partition: 0,
    sequence,
    prev: 0,
    event: { specversion: "1.0", id: `evt-${name}`, source: "/ssrf", type: "never.routed", data: {} },
  });
  const batch = createMessageBatch("eventline-webhooks", [{ id: crypto.randomUUID(), timestamp: new Date(), attempts: 1, body }]);
  await handleWebhookBatch(batch, { ...env, EVENTLINE_WEBHOOK_ALLOW: allow } as unknown as Env);
  return getQueueResult(batch, createExecutionContext());
}

describe("the SSRF guard at delivery", () => {
  it("a target allowed at creation but not any more fails each delivery (retried, then dead-lettered) and reaches nobody", async () => {
    const name = `late-${rand()}`;
    const token = `tok${rand()}`;
    const created = await request(
      "/v1/subscriptions",
      jsonInit({
        name,
        topic: "events",
        filter: { type: ["never.routed"] },
        maxRetries: 1,
        webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/${name}?token=${token}` },
      }),
    );
    expect(created.status).toBe(201);
    const sequence = 1_000_000 + Math.floor(Math.random() * 1_000_000);

    const first = await deliverOnce(name, sequence, "");
    expect(first.retryMessages).toHaveLength(1);
    const second = await deliverOnce(name, sequence, "");
    expect(second.explicitAcks).toHaveLength(1);

    const reason = `Error: webhook ${SINK_ORIGIN}/… refused: 127.0.0.1 is a loopback address (not allowed by EVENTLINE_WEBHOOK_ALLOW)`;
    const attempts = await rows<{ outcome: string; error: string }>(
      "SELECT outcome, error FROM delivery_attempts WHERE subscription = ? ORDER BY id",
      name,
    );
    expect(attempts).toEqual([
      { outcome: "failed", error: reason },
      { outcome: "dead_lettered", error: reason },
    ]);
    expect(await rows("SELECT reason, error FROM dead_letters WHERE subscription = ?", name)).toEqual([
      { reason: "max_retries", error: reason },
    ]);
    expect(await sinkDeliveries(name)).toEqual([]);
  });

  it("a redirect is not followed: a 307 is a failed delivery and the signed body goes nowhere else", async () => {
    const name = `redir-${rand()}`;
    const type = `redir.${rand()}`;
    await setStatus(name, 307, `/hooks/${name}-moved`);
    const created = await request(
      "/v1/subscriptions",
      jsonInit({
        name,
        topic: "events",
        filter: { type: [type] },
        maxRetries: 0,
        webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/${name}` },
      }),
    );
    expect(created.status).toBe(201);
    await expectAccepted(await postStructured("events", event({ type })));
    await waitFor(
      async () => (await (await request(`/v1/subscriptions/${name}`)).json()) as { dlqDepth: number },
      (s) => s.dlqDepth === 1,
      40_000,
    );
    expect(await sinkDeliveries(name)).toHaveLength(1);
    expect(await sinkDeliveries(`${name}-moved`)).toEqual([]);
    expect(await rows("SELECT error FROM dead_letters WHERE subscription = ?", name)).toEqual([
      { error: `Error: webhook ${SINK_ORIGIN}/… answered 307 (redirects are not followed)` },
    ]);
  });
});
