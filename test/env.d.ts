declare namespace Cloudflare {
  interface Env {
    /** Defined in vitest.config.ts; applied by test/setup.ts. */
    TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
    /** Base URL of the loopback webhook receiver (test/global-setup.ts). */
    WEBHOOK_SINK: string;
  }
}

declare module "*?raw" {
  const text: string;
  export default text;
}

/**
 * The example consumer Worker's Env, for the root program that type-checks the tests importing
 * it. Its own program (workers/example-consumer/tsconfig.json) uses the generated declaration;
 * this mirror must keep the same bindings (both are checked by `npm run typecheck`).
 */
interface ExampleConsumerEnv {
  DB: D1Database;
  PARTITION_LOG: DurableObjectNamespace;
}
