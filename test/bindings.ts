import { env } from "cloudflare:workers";
import { z } from "zod";

/**
 * The bindings vitest.config.ts adds for tests only. They are parsed from `env` here rather than
 * declared on the global `Cloudflare.Env` (which worker-configuration.d.ts generates from
 * wrangler.toml), so production code, type-checked in the same program, cannot use them.
 */
const testBindingsSchema = z.object({
  /** The D1 migrations, read by vitest.config.ts and applied by test/setup.ts. */
  TEST_MIGRATIONS: z.array(z.object({ name: z.string(), queries: z.array(z.string()) })),
  /** Base URL of the loopback webhook receiver (test/global-setup.ts). */
  WEBHOOK_SINK: z.url(),
});

export const testBindings = testBindingsSchema.parse(env);
