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
