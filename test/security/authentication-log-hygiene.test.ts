import { beforeAll, describe, expect, it } from "vitest";
import { anonymousRequest, expectAccepted, expectProblem, request, requestAs } from "../helpers";
import {
  claims,
  IP,
  ISS_STATIC,
  oidcFixture,
  PRODUCE_PATH,
  produceInit,
  type TestKey,
  tokenMinter,
  UUID,
  useCredentialHygiene,
} from "./auth-fixtures";
import { expectAudit, expectNoSecrets, type TestApp } from "./helpers";

/*
 * Log injection and credential hygiene: forged log lines in a path, a request id or a JWT's sub
 * stay data inside one JSON line each, and no credential (JWT or API key) reaches a log line or
 * an audit record.
 */

const { secrets, logs } = useCredentialHygiene();
const { sign } = tokenMinter(secrets);

let rsa: TestKey;
let jwtApp: TestApp;

beforeAll(async () => {
  ({ rsa, jwtApp } = await oidcFixture());
});

describe("log injection and credential hygiene", () => {
  it("a request id with a newline cannot even be sent", () => {
    expect(() => new Headers({ "x-request-id": 'a\n{"level":"error","forged":true}' })).toThrow(TypeError);
    expect(() => new Headers({ "x-request-id": 'a\r\n{"level":"error","forged":true}' })).toThrow(TypeError);
  });

  it("forged log lines in the path, the request id and a JWT's sub stay inside one JSON line each", async () => {
    const from = logs.lines().length;
    const forged = '{"level":"error","forged":true}';
    // 1. The path.
    const pathRes = await anonymousRequest(`/v1/topics/%0A${forged}/events`, { method: "POST", headers: { "cf-connecting-ip": IP } });
    const pathProblem = await expectProblem(pathRes, 401);
    // 2. A request id with a quote, a tab and JSON (not a valid id: replaced by a fresh one).
    const idRes = await request("/v1/topics", { headers: { "x-request-id": `evil"\t${forged}` } });
    expect(idRes.status).toBe(200);
    expect(idRes.headers.get("x-request-id")).toMatch(UUID);
    // 3. A JWT whose sub carries a newline and a forged record.
    const sub = `mallory\n${forged}`;
    const token = await sign(claims({ sub }), rsa);
    const okRes = await jwtApp.call(PRODUCE_PATH, produceInit(token));
    await expectAccepted(okRes);
    const denied = await jwtApp.call("/v1/topics/orders/events", produceInit(token));
    const deniedProblem = await expectProblem(denied, 403);
    // 4. An API key, used once.
    const keyRes = await request("/v1/keys", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "hygiene", grants: ["consume:events"] }),
    });
    const { key } = (await keyRes.json()) as { key: string };
    secrets.push(key);
    expect((await requestAs(key, "/v1/topics/events")).status).toBe(200);

    const lines = logs.lines().slice(from);
    expect(lines.length).toBeGreaterThan(4);
    for (const line of lines) {
      expect(line.includes("\n"), line).toBe(false);
      const parsed = JSON.parse(line) as unknown;
      expect(typeof parsed === "object" && parsed !== null && !Array.isArray(parsed), line).toBe(true);
      const record = parsed as Record<string, unknown>;
      expect(record.forged, line).toBeUndefined();
      expect(["debug", "info", "warn"]).toContain(record.level);
      expect(typeof record.msg).toBe("string");
    }
    expectNoSecrets(lines.join("\n"), [token, key]);
    const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    // The forged text is data: inside the path and principal fields, verbatim.
    const pathLine = records.find((r) => r.msg === "request" && r.requestId === pathProblem.requestId);
    expect(pathLine?.path).toBe(`/v1/topics/\n${forged}/events`);
    expect(records.find((r) => r.msg === "request" && r.requestId === okRes.headers.get("x-request-id"))?.principal).toBe(
      `jwt:${ISS_STATIC}#${sub}`,
    );
    expect(records.some((r) => r.requestId !== undefined && String(r.requestId).includes("evil"))).toBe(false);

    await expectAudit(pathProblem.requestId, { action: "auth.failed", path: `/v1/topics/\n${forged}/events`, status: 401 });
    await expectAudit(
      deniedProblem.requestId,
      { action: "access.denied", status: 403, actor: { id: `jwt:${ISS_STATIC}#${sub}`, kind: "jwt" } },
      [token, key],
    );
  });
});
