import { describe, expect, it } from "vitest";
import { testBindings } from "../bindings";
import { expectProblem, request } from "../helpers";
import { asKey, createTestKey, expectAudit, jsonInit } from "./helpers";

/**
 * Problem documents that tell a client what actually went wrong (found trying the API from
 * outside): a 403 names the deny grant that caused it, admin conflicts and invalid admin bodies
 * have titles of their own (not those of event ingest), a body that is not JSON is audited as
 * such, and an optional body left empty is no body even when sent as JSON.
 */

const rand = () => crypto.randomUUID().slice(0, 8);
const EMPTY_JSON: RequestInit = { method: "POST", headers: { "content-type": "application/json" }, body: "" };

describe("problem documents say what went wrong", () => {
  it("a 403 caused by a deny grant names that grant; one for a missing allow does not invent one", async () => {
    const denied = await createTestKey(`deny-named-${rand()}`, ["replay:events", "!consume:events"]);
    const body = { topic: "events", partitions: [0], from: { sequence: 1 }, subscription: "activity" };
    const problem = await expectProblem(await asKey(denied, "/v1/replays", jsonInit(body)), 403);
    expect(problem.detail).toBe(`${denied.principal} lacks replay on topic events: its grant !consume:events denies it`);

    const missing = await createTestKey(`allow-missing-${rand()}`, ["consume:events"]);
    const plain = await expectProblem(await asKey(missing, "/v1/replays", jsonInit(body)), 403);
    expect(plain.detail).toBe(`${missing.principal} lacks replay on topic events`);
  });

  it("a taken or configured subscription name is a 409 conflict, an unknown topic or bad filter a 422 unprocessable_request", async () => {
    const url = `${testBindings.WEBHOOK_SINK}/hooks/problems`;
    const name = `problems-${rand()}`;
    const created = await request("/v1/subscriptions", jsonInit({ name, topic: "events", webhook: { url } }));
    expect(created.status, await created.clone().text()).toBe(201);
    for (const taken of [name, "activity"]) {
      const again = await expectProblem(
        await request("/v1/subscriptions", jsonInit({ name: taken, topic: "events", webhook: { url } })),
        409,
      );
      expect(again).toMatchObject({ code: "conflict", title: "Conflicts with the current state" });
    }
    const badTopic = await expectProblem(
      await request("/v1/subscriptions", jsonInit({ name: `p-${rand()}`, topic: "nope", webhook: { url } })),
      422,
    );
    const badFilter = await expectProblem(
      await request("/v1/subscriptions", jsonInit({ name: `p-${rand()}`, topic: "events", filter: { type: "x" }, webhook: { url } })),
      422,
    );
    for (const problem of [badTopic, badFilter]) {
      expect(problem).toMatchObject({ code: "unprocessable_request", title: "Request is well-formed but cannot be carried out" });
    }
  });

  it("a body that is not JSON is audited as such (not as an unexpected error); a schema miss as an invalid request body", async () => {
    const broken = await expectProblem(await request("/v1/keys", jsonInit("{")), 400);
    expect(broken.code).toBe("malformed_request");
    await expectAudit(broken.requestId, { action: "keys.create", outcome: "failure", status: 400, reason: broken.detail });
    expect(broken.detail).not.toBe("unexpected error");

    const wrong = await expectProblem(await request("/v1/keys", jsonInit({ name: "x" })), 400);
    expect(wrong.detail).toBe("invalid request body");
    expect(wrong.issues?.map((i) => i.path)).toContain("/json/grants");
  });

  it("POST …/rotate with an empty JSON body takes the default grace period, as without a body", async () => {
    const key = await createTestKey(`rotate-empty-${rand()}`, ["consume:events"]);
    const res = await request(`/v1/keys/${key.id}/rotate`, EMPTY_JSON);
    const text = await res.text();
    expect(res.status, text).toBe(200);
    const rotated = JSON.parse(text) as { previousSecretExpiresAt: string };
    expect(Date.parse(rotated.previousSecretExpiresAt) - Date.now()).toBeGreaterThan(23 * 3600 * 1000);
  });
});
