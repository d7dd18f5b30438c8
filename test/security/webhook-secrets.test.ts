import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { verifyWebhook } from "../../shared/webhook-signature";
import { testBindings } from "../bindings";
import { event, expectAccepted, expectProblem, postStructured, request, waitFor } from "../helpers";
import {
  asKey,
  createTestKey,
  dataHeads,
  expectAccessDenied,
  expectAudit,
  jsonInit,
  type SinkDelivery,
  sinkDeliveries,
  sleep,
} from "./helpers";

/**
 * Rotating a webhook subscription's signing secret (POST /v1/subscriptions/{name}/secret:rotate):
 * during the overlap every delivery is signed with both secrets, so a receiver holding either one
 * accepts it; afterwards only the new one. Admins of the topic only; audited without the secret.
 */

const OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const rand = () => crypto.randomUUID().slice(0, 8);
const rotatePath = (name: string) => `/v1/subscriptions/${name}/secret:rotate`;

interface Rotated {
  name: string;
  topic: string;
  webhook: { secret: string; previousSecretExpiresAt: string | null };
}

/** A webhook subscription on `events` to the loopback receiver, signed with OLD, for events of a type of its own. */
async function createHook(prefix: string): Promise<{ name: string; type: string }> {
  const name = `${prefix}-${rand()}`;
  const type = `${prefix}.${rand()}`;
  const res = await request(
    "/v1/subscriptions",
    jsonInit({
      name,
      topic: "events",
      filter: { type: [type] },
      webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/${name}`, secret: OLD },
    }),
  );
  expect(res.status, await res.clone().text()).toBe(201);
  return { name, type };
}

const secretsRow = (name: string) =>
  env.DB.prepare("SELECT secret, previous_secret, previous_secret_expires_at FROM webhook_subscriptions WHERE name = ?")
    .bind(name)
    .first<{ secret: string; previous_secret: string | null; previous_secret_expires_at: number | null }>();

/** Posts one event of `type` and waits for the receiver's `count`-th delivery; returns it. */
async function deliverOne(name: string, type: string, count: number): Promise<SinkDelivery> {
  await expectAccepted(await postStructured("events", event({ type })));
  const got = await waitFor(
    () => sinkDeliveries(name),
    (d) => d.length >= count,
  );
  expect(got).toHaveLength(count);
  return got[count - 1] as SinkDelivery;
}

const verifies = (secret: string, d: SinkDelivery) => verifyWebhook(secret, new Headers(d.headers), d.body);

describe("POST /v1/subscriptions/{name}/secret:rotate", () => {
  it("returns the new secret once (no-store), with a 24 h overlap by default, and audits it without any secret", async () => {
    const { name } = await createHook("rot-default");
    const before = Date.now();
    const res = await request(rotatePath(name), { method: "POST" });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = JSON.parse(text) as Rotated;
    expect(body).toMatchObject({ name, topic: "events", webhook: { secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]{43}=$/) } });
    expect(body.webhook.secret).not.toBe(OLD);
    const until = Date.parse(body.webhook.previousSecretExpiresAt ?? "");
    expect(until - before).toBeGreaterThanOrEqual(24 * 3600 * 1000);
    expect(until - Date.now()).toBeLessThanOrEqual(24 * 3600 * 1000);
    expect(await secretsRow(name)).toEqual({ secret: body.webhook.secret, previous_secret: OLD, previous_secret_expires_at: until });
    await expectAudit(
      res.headers.get("x-request-id") ?? "",
      {
        action: "subscriptions.secret.rotate",
        outcome: "success",
        status: 200,
        resource: `subscription:${name}`,
        details: { overlapSeconds: 86_400, previousSecretExpiresAt: body.webhook.previousSecretExpiresAt },
      },
      [body.webhook.secret, OLD],
    );
  });

  it("signs with both secrets during the overlap (a receiver with either verifies), then with the new one only", async () => {
    const { name, type } = await createHook("rot-overlap");
    const target = async () => ((await (await request(`/v1/subscriptions/${name}`)).json()) as { target: Record<string, unknown> }).target;
    expect(await target()).not.toHaveProperty("previousSecretExpiresAt");
    const rotated = (await (await request(rotatePath(name), jsonInit({ overlapSeconds: 10 }))).json()) as Rotated;
    const NEW = rotated.webhook.secret;
    const until = Date.parse(rotated.webhook.previousSecretExpiresAt ?? "");
    // The subscription's view shows that an overlap lasts, and until when (never a secret).
    const overlapping = await target();
    expect(overlapping.previousSecretExpiresAt).toBe(rotated.webhook.previousSecretExpiresAt);
    expect(JSON.stringify(overlapping)).not.toContain(NEW.slice(6));
    expect(JSON.stringify(overlapping)).not.toContain(OLD.slice(6));

    const during = await deliverOne(name, type, 1);
    // Delivered well inside the 10 s window (the check below says so if it was not).
    expect(Number(during.headers["webhook-timestamp"]) * 1000).toBeLessThan(until);
    expect(during.headers["webhook-signature"]?.split(" ")).toHaveLength(2);
    expect(await verifies(OLD, during)).toBe(true);
    expect(await verifies(NEW, during)).toBe(true);
    expect(await verifies(OTHER, during)).toBe(false);

    await sleep(Math.max(0, until - Date.now()) + 200);
    const after = await deliverOne(name, type, 2);
    expect(after.headers["webhook-signature"]?.split(" ")).toHaveLength(1);
    expect(await verifies(NEW, after)).toBe(true);
    expect(await verifies(OLD, after)).toBe(false);
    expect(await target()).not.toHaveProperty("previousSecretExpiresAt");
  });

  it("an empty body sent as JSON is no body: the default overlap (as without a content type)", async () => {
    const { name } = await createHook("rot-empty");
    const res = await request(rotatePath(name), { method: "POST", headers: { "content-type": "application/json" }, body: "" });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    const body = JSON.parse(text) as Rotated;
    expect(Date.parse(body.webhook.previousSecretExpiresAt ?? "") - Date.now()).toBeGreaterThan(23 * 3600 * 1000);
  });

  it("overlapSeconds 0 drops the old secret at once; a rotation during an overlap keeps only the secret it replaces", async () => {
    const { name } = await createHook("rot-zero");
    const first = (await (await request(rotatePath(name), jsonInit({ overlapSeconds: 600 }))).json()) as Rotated;
    const second = (await (await request(rotatePath(name), jsonInit({}))).json()) as Rotated;
    expect(await secretsRow(name)).toMatchObject({ secret: second.webhook.secret, previous_secret: first.webhook.secret });
    const third = (await (await request(rotatePath(name), jsonInit({ overlapSeconds: 0 }))).json()) as Rotated;
    expect(third.webhook.previousSecretExpiresAt).toBeNull();
    expect(await secretsRow(name)).toEqual({ secret: third.webhook.secret, previous_secret: null, previous_secret_expires_at: null });
  });

  it("403 for keys without admin on the topic (consume, produce, admin of another topic), audited, and nothing changes", async () => {
    const { name } = await createHook("rot-denied");
    const row = await secretsRow(name);
    const heads = await dataHeads();
    for (const grants of [
      ["consume:events"],
      ["produce:events", "consume:events"],
      ["admin:orders"],
      ["admin:events", "!consume:events"],
    ]) {
      const key = await createTestKey(`rot-${grants.join("-")}`, grants);
      const res = await asKey(key, rotatePath(name), jsonInit({ overlapSeconds: 0 }));
      await expectAccessDenied(res, {
        actor: key.principal,
        reason: ["admin", "events"],
        resource: `subscription:${name}`,
        attempted: "subscriptions.secret.rotate",
      });
    }
    expect(await secretsRow(name)).toEqual(row);
    expect(await dataHeads()).toEqual(heads);
  });

  it("400 for a bad body, 404 for an unknown subscription, 409 for a configured one, 405 for GET; a near-miss path rotates nothing", async () => {
    const { name } = await createHook("rot-errors");
    const row = await secretsRow(name);
    for (const body of [{ overlapSeconds: -1 }, { overlapSeconds: 604_801 }, { overlapSeconds: 1.5 }, { overlap: 5 }]) {
      const problem = await expectProblem(await request(rotatePath(name), jsonInit(body)), 400);
      expect(problem.code).toBe("invalid_parameter");
    }
    await expectProblem(await request(rotatePath(name), jsonInit("{")), 400);
    await expectProblem(await request(rotatePath(`missing-${rand()}`), { method: "POST" }), 404);
    const configured = await expectProblem(await request(rotatePath("activity"), { method: "POST" }), 409);
    expect(configured.detail).toContain("eventline.config.ts");
    // Its own code and title, not those of an event id reused with other content.
    expect(configured).toMatchObject({ code: "conflict", title: "Conflicts with the current state" });
    await expectProblem(await request(rotatePath(name)), 405);
    // Hono reads `:rotate` as a parameter; the route still only answers its exact path.
    for (const path of [
      `/v1/subscriptions/${name}/secretx`,
      `/v1/subscriptions/${name}/secret:rotatex`,
      `/v1/subscriptions/${name}/secret`,
    ]) {
      expect((await request(path, { method: "POST" })).status, path).toBe(404);
    }
    expect(await secretsRow(name)).toEqual(row);
    // The failure is audited like any other admin failure.
    const failed = await request(rotatePath(`missing-${rand()}`), { method: "POST" });
    await expectAudit(failed.headers.get("x-request-id") ?? "", { action: "subscriptions.secret.rotate", outcome: "failure", status: 404 });
  });
});
