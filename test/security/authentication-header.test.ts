import { env } from "cloudflare:workers";
import { parse } from "smol-toml";
import { describe, expect, it } from "vitest";
import shipped from "../../eventline.config";
import wranglerToml from "../../wrangler.toml?raw";
import { ADMIN_KEY, anonymousRequest, event, expectProblem, request, requestAs, STRUCTURED } from "../helpers";
import { INVALID_REQUEST_CHALLENGE, INVALID_TOKEN_CHALLENGE, IP, PRODUCE_PATH, useCredentialHygiene } from "./auth-fixtures";
import { dataHeads, expectAudit, expectAuthFailedAudit, expectNoAudit, testApp } from "./helpers";

/*
 * Authentication, the front door: the Authorization header (missing, malformed, unknown tokens,
 * public paths, and 401 before any route is disclosed) and the EVENTLINE_AUTH switch. Every
 * refusal is checked for its status, its problem document, the absence of any state change, and
 * its audit record — which must never contain the credential (useCredentialHygiene).
 */

const { secrets, logs } = useCredentialHygiene();

describe("the Authorization header", () => {
  it("missing: 401 with the bare Bearer challenge, audited as auth.failed, nothing stored", async () => {
    const before = await dataHeads();
    const res = await anonymousRequest(PRODUCE_PATH, {
      method: "POST",
      headers: { "content-type": STRUCTURED, "cf-connecting-ip": IP },
      body: JSON.stringify(event()),
    });
    const problem = await expectProblem(res, 401);
    expect(problem.code).toBe("unauthorized");
    expect(problem.detail).toBe("this endpoint needs credentials: send Authorization: Bearer <API key or JWT>");
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="eventline"');
    expect(await dataHeads()).toEqual(before);
    await expectAuthFailedAudit(problem.requestId, {
      actor: { id: "unauthenticated", kind: "none" },
      reason: problem.detail,
      method: "POST",
      path: PRODUCE_PATH,
      resource: PRODUCE_PATH,
      ip: IP,
    });
  });

  it.each([
    ["Basic credentials", "Basic dXNlcjpjb3JyZWN0LWhvcnNlLWJhdHRlcnktc3RhcGxl"],
    ["Bearer with no token", "Bearer"],
    ["Bearer with only spaces", "Bearer    "],
    ["a token with spaces", "Bearer evl_aaaaaaaaaaaa secret-part-after-a-space"],
    ["a token with a tab", "Bearer abcdefgh\tijklmnop"],
    ["a token with a comma", "Bearer abcdefgh,ijklmnop"],
    ["a token with a quote", 'Bearer abcdefgh"ijklmnop'],
    ["two schemes", `Bearer ${ADMIN_KEY}, Basic eA==`],
    ["another scheme", "Token abcdefghijklmnopqrstuvwxyz0123456789"],
  ])("malformed (%s): 401 invalid_request, audited, nothing stored", async (_name, header) => {
    const credential = header.replace(/^\S+\s*/, "");
    if (credential.length >= 8) secrets.push(credential);
    const before = await dataHeads();
    const res = await anonymousRequest(PRODUCE_PATH, {
      method: "POST",
      headers: { authorization: header, "content-type": STRUCTURED, "cf-connecting-ip": IP },
      body: JSON.stringify(event()),
    });
    const problem = await expectProblem(res, 401);
    expect(problem.detail).toBe("malformed Authorization header: expected `Bearer <token>`");
    expect(res.headers.get("www-authenticate")).toBe(INVALID_REQUEST_CHALLENGE);
    expect(await dataHeads()).toEqual(before);
    await expectAuthFailedAudit(
      problem.requestId,
      {
        actor: { id: "unauthenticated", kind: "none" },
        reason: problem.detail,
        ip: IP,
      },
      credential.length >= 8 ? [credential] : [],
    );
  });

  it("a bearer token that is neither the admin key, an API key nor a JWT (no issuer configured): 401 invalid_token", async () => {
    const token = "not-a-known-credential-0123456789abcdef";
    secrets.push(token);
    const res = await requestAs(token, "/v1/topics", { headers: { "cf-connecting-ip": IP } });
    const problem = await expectProblem(res, 401);
    expect(problem.detail).toBe("not an API key, and no OIDC issuer is configured for JWTs");
    expect(res.headers.get("www-authenticate")).toMatch(INVALID_TOKEN_CHALLENGE);
    await expectAudit(problem.requestId, { action: "auth.failed", status: 401, reason: problem.detail, ip: IP }, [token]);
  });

  it.each(["/health", "/openapi.json", "/docs"])("public path %s needs no credentials (and ignores bad ones)", async (path) => {
    for (const headers of [{}, { authorization: "Basic eA==" }] as Record<string, string>[]) {
      const res = await anonymousRequest(path, { headers });
      expect(res.status, path).toBe(200);
      expect(res.headers.get("www-authenticate")).toBeNull();
      await res.arrayBuffer();
      await expectNoAudit(res.headers.get("x-request-id") as string);
    }
  });

  it("/docs/ is public too: no credentials asked for, nothing audited", async () => {
    // The authentication middleware lets /docs/ through; the router redirects it to /docs.
    const res = await anonymousRequest("/docs/", { headers: { "cf-connecting-ip": IP }, redirect: "manual" });
    expect(res.status).toBe(301);
    expect(res.headers.get("location")).toBe("/docs");
    expect(res.headers.get("www-authenticate")).toBeNull();
    await res.arrayBuffer();
    await expectNoAudit(res.headers.get("x-request-id") as string);
  });

  it.each([
    ["GET", "/v1/no-such-route", 404],
    ["GET", "/no-such-route", 404],
    ["GET", "/health/", 404],
    ["GET", "/docs/secret", 404],
    ["DELETE", "/v1/topics/events", 405],
    ["POST", "/v1/keys", 400],
  ])("%s %s without credentials is 401 (with them: %i) — nothing about the route is disclosed", async (method, path, withCredentials) => {
    const before = await dataHeads();
    const keysBefore = await request("/v1/keys").then((r) => r.json());
    // A body the route would refuse anyway, so the credentialed request changes nothing either.
    const init = {
      method,
      headers: { "cf-connecting-ip": IP, "content-type": "application/json" },
      ...(method === "POST" ? { body: "{}" } : {}),
    };
    const res = await anonymousRequest(path, init);
    const problem = await expectProblem(res, 401);
    expect(problem.detail).toBe("this endpoint needs credentials: send Authorization: Bearer <API key or JWT>");
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="eventline"');
    expect(res.headers.get("allow")).toBeNull();
    await expectAudit(problem.requestId, { action: "auth.failed", status: 401, path, method, actor: { id: "unauthenticated" }, ip: IP });
    await expectProblem(await request(path, init), withCredentials);
    expect(await dataHeads()).toEqual(before);
    expect(await request("/v1/keys").then((r) => r.json())).toEqual(keysBefore);
  });
});

describe("EVENTLINE_AUTH", () => {
  it("is required in the shipped configuration", async () => {
    expect(env.EVENTLINE_AUTH).toBe("required");
    expect((parse(wranglerToml) as { vars: Record<string, string> }).vars.EVENTLINE_AUTH).toBe("required");
    const res = await anonymousRequest("/v1/topics", { headers: { "cf-connecting-ip": IP } });
    const problem = await expectProblem(res, 401);
    await expectAudit(problem.requestId, { action: "auth.failed", status: 401, actor: { id: "unauthenticated" } });
  });

  it("disabled is ignored for a non-loopback host: still 401, and an error is logged", async () => {
    const from = logs.lines().length;
    const app = testApp(shipped);
    const disabled = { EVENTLINE_AUTH: "disabled" } as unknown as Partial<Env>;
    const res = await app.call("/v1/topics", { headers: { "cf-connecting-ip": IP } }, disabled);
    await expectProblem(res, 401);
    const records = logs
      .lines()
      .slice(from)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.find((r) => String(r.msg).includes("EVENTLINE_AUTH=disabled ignored"))).toMatchObject({ level: "error" });
  });

  it("disabled (never the default, loopback hosts only): anonymous callers are let through as admin, with a loud warning", async () => {
    const from = logs.lines().length;
    const app = testApp(shipped);
    const disabled = { EVENTLINE_AUTH: "disabled" } as unknown as Partial<Env>;
    const res = await app.call("http://localhost/v1/topics", {}, disabled);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    // What an anonymous caller does is still audited, as `anonymous`.
    const created = await app.call(
      "http://127.0.0.1:8787/v1/keys",
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "anon", grants: ["consume:events"] }),
      },
      disabled,
    );
    expect(created.status).toBe(201);
    const body = (await created.json()) as { id: string; key: string; createdBy: string };
    secrets.push(body.key);
    expect(body.createdBy).toBe("anonymous");
    await expectAudit(
      created.headers.get("x-request-id") as string,
      { action: "keys.create", outcome: "success", actor: { id: "anonymous", kind: "anonymous" } },
      [body.key],
    );
    const records = logs
      .lines()
      .slice(from)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const warning = records.find((r) => String(r.msg).includes("AUTHENTICATION DISABLED"));
    expect(warning).toMatchObject({ level: "warn", setting: "EVENTLINE_AUTH" });
    // The same app with the shipped setting still refuses anonymous callers.
    const refused = await app.call("/v1/topics", { headers: { "cf-connecting-ip": IP } });
    const problem = await expectProblem(refused, 401);
    await expectAudit(problem.requestId, { action: "auth.failed", status: 401 });
  });
});
