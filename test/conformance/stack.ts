import type { TestProject } from "vitest/node";
import { startStack } from "../cli/stack";

/**
 * Global setup of the Durable Streams conformance run: the real local stack (wrangler dev, as in
 * test/cli/stack.ts) with a 2 s long-poll wait (the suite waits out several long-polls; the
 * production default is 20 s), and API keys that hold only the stream grants the protocol
 * needs. The suite's requests carry it (setup.ts): the routes stay closed to anonymous callers.
 */

declare module "vitest" {
  interface ProvidedContext {
    conformanceUrl: string;
    conformanceToken: string;
    /** More keys with the same grants (setup.ts spreads the suite's requests over them). */
    conformanceTokens: string[];
  }
}

export const STREAM_GRANTS = ["produce:stream/", "consume:stream/", "admin:stream/"];

/**
 * Keys the suite's requests are spread over. Each principal has the platform's request budget
 * (1,000 per 10 s, wrangler.toml RATE_LIMIT); the suite's property tests run readers in tight
 * loops, which on a fast machine can pass one principal's budget (429), a limit of the platform,
 * not of the protocol. Every key holds exactly STREAM_GRANTS.
 */
const KEYS = 8;

export default async function setup(project: TestProject) {
  const stack = await startStack(["wrangler.toml"], { EVENTLINE_LIVE_WAIT_SECONDS: "2" });
  try {
    const keys: string[] = [];
    for (let i = 0; i < KEYS; i++) {
      const res = await fetch(`${stack.url}/v1/keys`, {
        method: "POST",
        headers: { authorization: `Bearer ${stack.token}`, "content-type": "application/json" },
        body: JSON.stringify({ name: `durable-streams-conformance-${i}`, grants: STREAM_GRANTS }),
      });
      if (res.status !== 201) throw new Error(`creating a conformance key: ${res.status} ${await res.text()}`);
      keys.push(((await res.json()) as { key: string }).key);
    }
    project.provide("conformanceUrl", stack.url);
    project.provide("conformanceToken", keys[0] as string);
    project.provide("conformanceTokens", keys);
  } catch (err) {
    await stack.stop();
    throw err;
  }
  return stack.stop;
}
