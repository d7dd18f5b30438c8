// Test-only bindings are not declared on Cloudflare.Env: test/bindings.ts parses them from `env`.

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
