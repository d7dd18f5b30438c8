import { defineConfig } from "vitest/config";
import { buildDashboard } from "./scripts/build-dashboard.mjs";
import { buildReference } from "./scripts/build-reference.mjs";

// test/browser/ compares the served script with the generated module; wrangler dev (test/cli/stack.ts)
// would build it too, but the test files import it before that.
buildDashboard();
// The API reference's renderer in the Worker's assets directory (ADR 0043), for the same reason.
buildReference();

/**
 * The CLI tests (`bin/eventline.mjs`) and the dashboard's browser tests (headless Chromium via
 * playwright-core): plain Node, against the real local stack that test/cli/stack.ts starts with
 * `wrangler dev` in a temporary state directory.
 */
export default defineConfig({
  test: {
    environment: "node",
    include: ["test/cli/**/*.test.ts", "test/browser/**/*.test.ts", "test/docs/**/*.test.ts"],
    globalSetup: ["./test/cli/stack.ts"],
    // One stack for every file: run the files one at a time so their counts do not interleave.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 180_000,
  },
});
