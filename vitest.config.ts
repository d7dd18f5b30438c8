import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig(async () => {
  const migrations = await readD1Migrations(path.join(import.meta.dirname, "migrations"));
  return {
    plugins: [
      cloudflareTest({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          // Test-only binding: the setup file applies these to the isolated D1 database.
          bindings: { TEST_MIGRATIONS: migrations },
        },
      }),
    ],
    resolve: {
      // The CloudEvents SDK require()s uuid; uuid's "import" condition is ESM, so point the
      // CommonJS require at uuid's CommonJS build.
      alias: [{ find: /^uuid$/, replacement: path.join(import.meta.dirname, "node_modules/uuid/dist/index.js") }],
    },
    test: {
      setupFiles: ["./test/setup.ts"],
      include: ["test/**/*.test.ts"],
      testTimeout: 30_000,
      // Request/append log lines are shown for failing tests only.
      silent: "passed-only" as const,
      // The CloudEvents SDK ships CommonJS; inline it so it loads inside workerd.
      server: { deps: { inline: ["cloudevents"] } },
    },
  };
});
