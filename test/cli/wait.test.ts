import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli } from "./helpers";

/**
 * `eventline subscriptions --wait DURATION` (README "Try it": publish, wait, look): against a stub
 * of GET /v1/subscriptions whose lag falls to 0 after a given number of calls.
 */

const subscription = (name: string, lag: number, handled: number) => ({
  name,
  topic: "events",
  kind: "worker",
  ordering: "partition",
  lag,
  dlqDepth: 0,
  circuit: { state: "closed" },
  counts: { handled, retried: 0, deadLettered: 0 },
});

let calls = 0;
/** Calls answered with greetings lagging before it settles (Infinity: never). */
let laggingCalls = 0;
let url = "";
let close = async () => {};

beforeAll(async () => {
  const server = createServer((req, res) => {
    if (req.url !== "/v1/subscriptions") {
      res.writeHead(404, { "content-type": "application/problem+json" }).end('{"title":"Not Found"}');
      return;
    }
    calls++;
    const settled = calls > laggingCalls;
    const body = { subscriptions: [subscription("activity", 0, 9), subscription("greetings", settled ? 0 : 2, settled ? 3 : 1)] };
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  close = () => new Promise<void>((resolve) => server.close(() => resolve()));
});
afterAll(() => close());

describe("subscriptions --wait", () => {
  it("asks again until no subscription lags, then prints that answer", async () => {
    calls = 0;
    laggingCalls = 3;
    const res = await cli(["subscriptions", "--wait", "10s"], { url });
    expect(res.code).toBe(0);
    expect(calls).toBe(4);
    const greetings = res.stdout.split("\n").find((line) => line.startsWith("greetings"));
    expect(greetings?.split(/\s+/)).toEqual(["greetings", "events", "worker", "partition", "0", "0", "closed", "3", "0", "0"]);
  });

  it("prints the JSON of the settled answer with --json", async () => {
    calls = 0;
    laggingCalls = 1;
    const res = await cli(["subscriptions", "--wait", "10", "--json"], { url });
    expect(res.code).toBe(0);
    const body = JSON.parse(res.stdout) as { subscriptions: { name: string; lag: number }[] };
    expect(body.subscriptions.map((s) => s.lag)).toEqual([0, 0]);
    expect(calls).toBe(2);
  });

  it("exits 1 naming what still lags when the time is up", async () => {
    calls = 0;
    laggingCalls = Number.POSITIVE_INFINITY;
    const started = Date.now();
    const res = await cli(["subscriptions", "--wait", "1s"], { url });
    expect(res).toMatchObject({ code: 1, stdout: "" });
    expect(res.stderr).toBe("error: still lagging after 1 s: greetings (lag 2)\n");
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(calls).toBeGreaterThanOrEqual(3);
  });

  it("without --wait asks once; a bad duration is a usage error", async () => {
    calls = 0;
    laggingCalls = Number.POSITIVE_INFINITY;
    expect((await cli(["subscriptions"], { url })).code).toBe(0);
    expect(calls).toBe(1);
    const bad = await cli(["subscriptions", "--wait", "soon"], { url });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--wait must be a duration from 0 to 1h/);
  });
});
