declare namespace Cloudflare {
  interface Env {
    /** Defined in vitest.config.ts; applied by test/setup.ts. */
    TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
  }
}

declare module "*?raw" {
  const text: string;
  export default text;
}
