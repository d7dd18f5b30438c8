import { describe, expect, it } from "vitest";
import { verifyWebhook } from "../../shared/webhook-signature";
import { testBindings } from "../bindings";
import { event, expectAccepted, expectProblem, postBatch, postStructured, request, waitFor } from "../helpers";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

interface Received {
  headers: Record<string, string>;
  body: string;
}
const received = async (name: string) => (await (await fetch(`${testBindings.WEBHOOK_SINK}/control/${name}`)).json()) as Received[];
const setStatus = (name: string, status: number) =>
  fetch(`${testBindings.WEBHOOK_SINK}/control/${name}?status=${status}`, { method: "POST" });

function create(body: Record<string, unknown>) {
  return request("/v1/subscriptions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}

describe("webhook subscriptions", () => {
  it("delivers matching events as signed structured CloudEvents", async () => {
    const res = await create({
      name: "hook-ok",
      topic: "events",
      filter: { type: [{ prefix: "hook." }] },
      webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/hook-ok`, secret: SECRET },
    });
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({
      name: "hook-ok",
      topic: "events",
      webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/hook-ok`, secret: SECRET },
    });
    await expectProblem(await create({ name: "hook-ok", topic: "events", webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/x` } }), 409);

    const events = [event({ type: "hook.a" }), event({ type: "hook.b" }), event({ type: "other" }), event({ type: "hook.c" })];
    await expectAccepted(await postBatch("events", events));
    const got = await waitFor(
      () => received("hook-ok"),
      (r) => r.length >= 3,
    );
    expect(got).toHaveLength(3);
    const bodies = got.map((r) => JSON.parse(r.body) as Record<string, unknown>);
    expect(bodies.map((b) => b.type).sort()).toEqual(["hook.a", "hook.b", "hook.c"]);
    for (const r of got) {
      expect(r.headers["content-type"]).toBe("application/cloudevents+json");
      expect(await verifyWebhook(SECRET, new Headers(r.headers), r.body)).toBe(true);
      expect(await verifyWebhook("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", new Headers(r.headers), r.body)).toBe(false);
      const body = JSON.parse(r.body) as Record<string, unknown>;
      expect(body).toMatchObject({ partition: expect.any(Number), sequence: expect.stringMatching(/^\d{20}$/) });
      expect(r.headers.traceparent).toBe(body.traceparent);
    }
    const status = await waitFor(
      async () =>
        (await (await request("/v1/subscriptions/hook-ok")).json()) as {
          kind: string;
          target: { url: string };
          lag: number;
          partitions: { head: number; checkpoint: number }[];
        },
      (st) => st.lag === 0,
    );
    expect(status).toMatchObject({ kind: "webhook", target: { url: `${testBindings.WEBHOOK_SINK}/hooks/hook-ok` }, lag: 0 });
    // Filtered: an event it does not match moves the head past its checkpoint, yet it stays caught up.
    const [other] = await expectAccepted(await postStructured("events", event({ type: "other", partitionkey: "hook-lag" })));
    const after = (await (await request("/v1/subscriptions/hook-ok")).json()) as {
      lag: number;
      partitions: { head: number; checkpoint: number }[];
    };
    expect(after.lag).toBe(0);
    expect(after.partitions[other?.partition ?? -1]?.head).toBeGreaterThan(after.partitions[other?.partition ?? -1]?.checkpoint ?? 0);
  });

  it("retries on 500, dead-letters after maxRetries + 1 attempts, and redrive delivers once the receiver recovers", async () => {
    await setStatus("hook-down", 500);
    const res = await create({
      name: "hook-down",
      topic: "events",
      filter: { type: ["down.case"] },
      maxRetries: 2,
      webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/hook-down` },
    });
    expect(res.status).toBe(201);
    const { webhook } = (await res.json()) as { webhook: { secret: string } };
    expect(webhook.secret).toMatch(/^whsec_/);

    await expectAccepted(await postStructured("events", event({ id: "down-1", type: "down.case" })));
    const dlq = await waitFor(
      async () => (await (await request("/v1/subscriptions/hook-down")).json()) as { dlqDepth: number; counts: { retried: number } },
      (s) => s.dlqDepth === 1,
      40_000,
    );
    expect(dlq.dlqDepth).toBe(1);
    expect(dlq.counts.retried).toBe(2);
    const attempts = await received("hook-down");
    expect(attempts).toHaveLength(3);
    expect(new Set(attempts.map((a) => a.headers["webhook-id"])).size).toBe(1);
    const letters = (await (await request("/v1/subscriptions/hook-down/dlq")).json()) as {
      deadLetters: { reason: string; attempts: number; error: string }[];
    };
    expect(letters.deadLetters[0]).toMatchObject({ reason: "max_retries", attempts: 3 });
    expect(letters.deadLetters[0]?.error).toContain("answered 500");

    await setStatus("hook-down", 204);
    const redrive = await request("/v1/subscriptions/hook-down/dlq/redrive", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(await redrive.json()).toMatchObject({ redriven: 1, remaining: 0 });
    const after = await waitFor(
      () => received("hook-down"),
      (r) => r.length === 4,
    );
    expect(after).toHaveLength(4);
    expect(await verifyWebhook(webhook.secret, new Headers(after[3]?.headers), after[3]?.body ?? "")).toBe(true);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await received("hook-down")).toHaveLength(4);
  });

  it("validates the definition and deletes runtime subscriptions only", async () => {
    const url = `${testBindings.WEBHOOK_SINK}/hooks/v`;
    expect((await expectProblem(await create({ name: "v1", topic: "events", webhook: { url: "ftp://x" } }), 400)).code).toBe(
      "invalid_parameter",
    );
    expect(
      (await expectProblem(await create({ name: "v2", topic: "events", webhook: { url, secret: "nope" } }), 400)).issues?.[0]?.path,
    ).toBe("/webhook/secret");
    expect((await expectProblem(await create({ name: "v3", topic: "nope", webhook: { url } }), 422)).code).toBe("unprocessable_request");
    expect(
      (await expectProblem(await create({ name: "v4", topic: "events", filter: { type: "x" }, webhook: { url } }), 422)).issues?.[0]?.path,
    ).toBe("/filter/type");
    expect((await expectProblem(await create({ name: "Bad Name", topic: "events", webhook: { url } }), 400)).code).toBe(
      "invalid_parameter",
    );
    await expectProblem(await create({ name: "activity", topic: "events", webhook: { url } }), 409);

    expect(
      (
        await create({
          name: "gone",
          topic: "events",
          filter: { type: ["gone.case"] },
          webhook: { url: `${testBindings.WEBHOOK_SINK}/hooks/gone` },
        })
      ).status,
    ).toBe(201);
    expect((await request("/v1/subscriptions/gone", { method: "DELETE" })).status).toBe(204);
    await expectProblem(await request("/v1/subscriptions/gone", { method: "DELETE" }), 404);
    await expectProblem(await request("/v1/subscriptions/activity", { method: "DELETE" }), 409);
    await expectAccepted(await postStructured("events", event({ type: "gone.case" })));
    await new Promise((r) => setTimeout(r, 2000));
    expect(await received("gone")).toHaveLength(0);
  });
});
