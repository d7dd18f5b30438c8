import { defineConfig } from "vitest/config";

/**
 * The Durable Streams conformance suite (@durable-streams/server-conformance-tests, pinned), run
 * as published from node_modules against the real local stack that test/conformance/stack.ts
 * starts; test/conformance/setup.ts gives its requests a key with stream grants only. Plain Node:
 * the suite cannot run in the workers pool.
 */
export default defineConfig({
  test: {
    environment: "node",
    include: ["node_modules/@durable-streams/server-conformance-tests/dist/test-runner.js", "test/conformance/**/*.test.ts"],
    exclude: [],
    globalSetup: ["./test/conformance/stack.ts"],
    setupFiles: ["./test/conformance/setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 180_000,
  },
});
