import { readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Stack, startStack } from "../cli/stack";
import { curlBlocks, curlCalls, DOCS_URL, problems, runBlock } from "./markdown";

/**
 * Every curl example in the README and docs/ works as written, against a stack of its own (a
 * fresh one, as a newcomer's first `npm start` is: the platform and the example consumer Worker,
 * on a free port, never 8787).
 *
 * Order matters: the README's try-it comes first, then the pages in PAGE_ORDER (event sourcing
 * reads the order the README's batch placed; the archive page rebuilds the read model the orders
 * examples wrote), then every other page alphabetically; within a page, blocks and calls run top
 * to bottom. Each block is one bash process, so shell variables do not carry from block to block;
 * state does, in the stack.
 *
 * A call must answer 2xx unless its block says otherwise with a `# → <status>` comment after it
 * (e.g. `# → 409 {…"code":"version_conflict"…}`; a `"code"` shown there is checked too). The
 * block's text is run unchanged, with EVENTLINE_URL and EVENTLINE_TOKEN set to the stack's (see runBlock).
 */

const root = path.resolve(import.meta.dirname, "../..");
const PAGE_ORDER = ["README.md", "docs/event-sourcing.md", "docs/security.md", "docs/archive-and-replay.md"];
const others = readdirSync(path.join(root, "docs"))
  .filter((f) => f.endsWith(".md"))
  .map((f) => `docs/${f}`)
  .filter((f) => !PAGE_ORDER.includes(f))
  .sort();
const examples = [...PAGE_ORDER, ...others].flatMap((page) =>
  curlBlocks(readFileSync(path.join(root, page), "utf8")).map((block) => ({ name: `${page}:${block.line}`, block })),
);

describe("the docs' curl examples, against a fresh stack", () => {
  let stack: Stack | undefined;
  beforeAll(async () => {
    stack = await startStack(["wrangler.toml", "workers/example-consumer/wrangler.toml"]);
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it("finds the examples: the README's try-it and the pages that go on from it", () => {
    expect(examples.map((e) => e.name.split(":")[0])).toEqual(
      expect.arrayContaining(["README.md", "docs/event-sourcing.md", "docs/security.md", "docs/archive-and-replay.md"]),
    );
  });

  it("writes every example's address as $EVENTLINE_URL, never the local stack's default", () => {
    const hardCoded = examples.filter((e) => e.block.code.includes(DOCS_URL)).map((e) => e.name);
    expect(hardCoded).toEqual([]);
  });

  // Sequential by design (see above): each block starts when the one before it has finished.
  it.each(examples)("$name works as written", async ({ block }) => {
    if (stack === undefined) throw new Error("no stack");
    const calls = curlCalls(block.code);
    const run = await runBlock(block.code, stack.url, stack.token);
    expect(problems(calls, run)).toEqual([]);
  });
});

describe("the examples' checker", () => {
  // A stand-in server: /ok answers 200, /missing 404, so a promise kept and one broken can be shown.
  let server: Server;
  let url = "";
  beforeAll(async () => {
    server = createServer((req, res) => {
      const ok = req.url === "/ok" && req.headers.authorization === "Bearer t0ken";
      res.writeHead(ok ? 200 : 404, { "content-type": "application/json" });
      res.end(ok ? '{"ok":true}' : '{"code":"not_found"}');
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    url = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const check = async (code: string) => problems(curlCalls(code), await runBlock(code, url, "t0ken"));

  it("passes calls that answer what the block shows, with the token and the base URL swapped in", async () => {
    const code = [
      `curl -s -H "authorization: Bearer $EVENTLINE_TOKEN" ${DOCS_URL}/ok`,
      '# → {"ok":true}',
      `BODY=$(curl -s ${DOCS_URL}/missing | tr -d '{}')`,
      '# → 404 {"code":"not_found"}',
      'echo "$BODY"',
    ].join("\n");
    expect(await check(code)).toEqual([]);
  });

  it("fails a call that answers another status than the block shows, or none", async () => {
    expect(await check(`curl -s ${DOCS_URL}/missing`)).toEqual([expect.stringMatching(/line 1 .*expected 2xx, got 404/)]);
    expect(await check(`curl -s ${DOCS_URL}/missing\n# → 409 conflict`)).toEqual([expect.stringMatching(/expected 409, got 404/)]);
    expect(await check(`curl -s ${DOCS_URL}/missing\n# → 404 {"code":"version_conflict"}`)).toEqual([
      expect.stringMatching(/expected the problem code version_conflict/),
    ]);
  });

  it("fails a block whose commands fail", async () => {
    expect(await check(`curl -s -H "authorization: Bearer $EVENTLINE_TOKEN" ${DOCS_URL}/ok\nfalse`)).toEqual([
      expect.stringMatching(/bash exited 1/),
    ]);
    expect(await check("curl -s http://127.0.0.1:1/unreachable")).toEqual([expect.stringMatching(/got 0|not answered/)]);
  });
});
