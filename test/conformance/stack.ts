import type { TestProject } from "vitest/node";
import { startStack } from "../cli/stack";

/**
 * Global setup of the Durable Streams conformance run: the real local stack (wrangler dev, as in
 * test/cli/stack.ts) with a 2 s long-poll wait (the suite waits out several long-polls; the
 * production default is 20 s), and an API key that holds only the stream grants the protocol
 * needs. The suite's requests carry it (setup.ts): the routes stay closed to anonymous callers.
 */

declare module "vitest" {
  interface ProvidedContext {
    conformanceUrl: string;
    conformanceToken: string;
  }
}

export const STREAM_GRANTS = ["produce:stream/", "consume:stream/", "admin:stream/"];

export default async function setup(project: TestProject) {
  const stack = await startStack(["wrangler.toml"], { EVENTLINE_LIVE_WAIT_SECONDS: "2" });
  try {
    const res = await fetch(`${stack.url}/v1/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.token}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "durable-streams-conformance", grants: STREAM_GRANTS }),
    });
    if (res.status !== 201) throw new Error(`creating the conformance key: ${res.status} ${await res.text()}`);
    const { key } = (await res.json()) as { key: string };
    project.provide("conformanceUrl", stack.url);
    project.provide("conformanceToken", key);
  } catch (err) {
    await stack.stop();
    throw err;
  }
  return stack.stop;
}
