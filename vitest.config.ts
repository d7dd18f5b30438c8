import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { configDefaults, defineConfig } from "vitest/config";
import { buildDashboard } from "./scripts/build-dashboard.mjs";
import { buildReference } from "./scripts/build-reference.mjs";

/** The test stack's bootstrap admin key and key-encryption keys (test/helpers.ts sends the key). */
export const TEST_ADMIN_KEY = "evl_testadmin0_c2VjcmV0LXRlc3QtYWRtaW4ta2V5LW5vdC1mb3ItcHJvZA";
export const TEST_KEKS = "v1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

export default defineConfig(async () => {
  // The Worker serves the dashboard's bundled browser code (a generated, git-ignored module) and the
  // API reference's renderer from its assets directory (copied there, git-ignored; ADR 0043).
  buildDashboard();
  buildReference();
  const migrations = await readD1Migrations(path.join(import.meta.dirname, "migrations"));
  return {
    plugins: [
      cloudflareTest(({ inject }) => ({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          // Test-only bindings: migrations for the setup file to apply to the isolated D1
          // database, and the loopback webhook receiver started by test/global-setup.ts.
          // Fixed test secrets (the tests' own; never used outside them).
          bindings: {
            TEST_MIGRATIONS: migrations,
            WEBHOOK_SINK: `http://127.0.0.1:${inject("webhookPort")}`,
            EVENTLINE_ADMIN_KEY: TEST_ADMIN_KEY,
            EVENTLINE_KEKS: TEST_KEKS,
            // The tests send cf-connecting-ip as the edge would (a developer's .dev.vars says "local").
            EVENTLINE_CLIENT_IP: "edge",
            // The loopback receiver's address only (not all of loopback), so the tests of the SSRF
            // guard see every other non-public target refused as a deployed Worker refuses them.
            EVENTLINE_WEBHOOK_ALLOW: "127.0.0.1",
          },
        },
      })),
    ],
    resolve: {
      // The CloudEvents SDK require()s uuid; uuid's "import" condition is ESM, so point the
      // CommonJS require at uuid's CommonJS build.
      alias: [{ find: /^uuid$/, replacement: path.join(import.meta.dirname, "node_modules/uuid/dist/index.js") }],
    },
    test: {
      setupFiles: ["./test/setup.ts"],
      globalSetup: ["./test/global-setup.ts"],
      include: ["test/**/*.test.ts"],
      // The CLI, browser (dashboard) and docs tests run in Node against a real local stack: vitest.cli.config.ts;
      // the Durable Streams conformance suite too: vitest.conformance.config.ts.
      exclude: [...configDefaults.exclude, "test/cli/**", "test/browser/**", "test/docs/**", "test/conformance/**"],
      testTimeout: 30_000,
      // Request/append log lines are shown for failing tests only.
      silent: "passed-only" as const,
      // The CloudEvents SDK ships CommonJS; inline it so it loads inside workerd.
      server: { deps: { inline: ["cloudevents"] } },
    },
  };
});
