import { inject } from "vitest";

/**
 * Runs before the conformance suite is imported (this project only): points the suite at the
 * stack (`CONFORMANCE_TEST_URL`, read when the suite loads) and makes every request it sends to
 * the stack carry a conformance key as a bearer token, as a real client would. Requests that
 * already carry credentials, and requests elsewhere, are left alone.
 */
const url = inject("conformanceUrl");
// Round robin over keys with identical grants: the suite's bursts stay within each principal's
// request budget (stack.ts says why).
const tokens = inject("conformanceTokens");
let next = 0;
process.env.CONFORMANCE_TEST_URL = url;

const original = globalThis.fetch;
globalThis.fetch = (input: string | URL | Request, init: RequestInit = {}) => {
  const target = input instanceof Request ? input.url : String(input);
  if (!target.startsWith(url)) return original(input, init);
  const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
  if (!headers.has("authorization")) headers.set("authorization", `Bearer ${tokens[next++ % tokens.length]}`);
  return original(input, { ...init, headers });
};
