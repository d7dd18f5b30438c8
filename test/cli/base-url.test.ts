import { describe, expect, it } from "vitest";
import { cli } from "./helpers";
import { freePort } from "./stack";

/**
 * The CLI's base URL (README "Try it": EVENTLINE_URL beside EVENTLINE_TOKEN): when the server
 * cannot be reached (exit 3), the error names the URL tried, and a hint says where it came from
 * (--url, EVENTLINE_URL or the local default) and how to set EVENTLINE_URL.
 */

describe("cannot reach the server", () => {
  it("names the URL and says it came from --url, or from EVENTLINE_URL, and how to set another", async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const fromFlag = await cli(["topics"], { url });
    expect(fromFlag).toMatchObject({ code: 3, stdout: "" });
    expect(fromFlag.stderr).toMatch(new RegExp(`^error: cannot reach ${url.replaceAll(".", "\\.")}: .*ECONNREFUSED.*\nhint: `));
    expect(fromFlag.stderr).toContain("hint: that URL came from --url. Is the stack running there?");

    const fromEnv = await cli(["topics"], { url: null, env: { EVENTLINE_URL: url } });
    expect(fromEnv).toMatchObject({ code: 3, stdout: "" });
    expect(fromEnv.stderr).toContain(`error: cannot reach ${url}: `);
    expect(fromEnv.stderr).toContain("hint: that URL came from EVENTLINE_URL. Is the stack running there?");
    expect(fromEnv.stderr).toContain("export EVENTLINE_URL=http://host:port (or pass --url)");
  });

  it("without --url or EVENTLINE_URL, says the local stack's default was tried and how to set EVENTLINE_URL", async () => {
    // Not run against the default port itself: another local stack may well be listening there.
    const cliModule: string = "../../bin/lib/cli.mjs"; // plain JS, outside this project's types
    const { DEFAULT_URL, unreachableHint } = (await import(cliModule)) as {
      DEFAULT_URL: string;
      unreachableHint: (source: "--url" | "EVENTLINE_URL" | undefined) => string;
    };
    expect(DEFAULT_URL).toBe("http://localhost:8787");
    expect(unreachableHint(undefined)).toBe(
      "hint: EVENTLINE_URL is not set, so this was the local stack's default address. Start it with `npm start`, or point the CLI at yours: export EVENTLINE_URL=http://host:port (or pass --url)",
    );
  });
});
