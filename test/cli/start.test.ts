import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { banner, createOutputFilter } from "../../scripts/dev-output.mjs";
import { PID_FILE } from "../../scripts/local-state.mjs";
import { type ProcessRun, runProcess } from "../run-process";
import { tempDir } from "./helpers";

/**
 * `npm start`'s output filter and banner (scripts/dev-output.mjs) and `npm run reset`
 * (scripts/reset.mjs). test/cli/readme.test.ts runs the real `npm start` on a free port and checks
 * its output after the README's examples.
 */

const root = path.resolve(import.meta.dirname, "../..");

describe("npm start's output", () => {
  const boot = [
    "",
    " ⛅️ wrangler 4.156.2",
    "env.PARTITION_LOG (PartitionLog)                              Durable Object                local",
    "[wrangler:warn] Unable to fetch the `Request.cf` object! Falling back to a default placeholder...",
    "❓ Your types might be out of date. Re-run `wrangler types` to ensure your types are correct.",
  ];

  it("holds back boot chatter but shows failures, then reports ready once, at the URL wrangler printed", () => {
    const show = createOutputFilter({ verbose: false });
    expect(boot.map((line) => show(line).show)).toEqual([false, false, false, false, false]);
    expect(show("✘ [ERROR] Could not resolve ./missing").show).toBe(true);
    expect(show("[wrangler:info] Ready on http://localhost:8931")).toEqual({ show: false, ready: "http://localhost:8931" });
    // A later "Ready on" (after a reload) is an ordinary line.
    expect(show("[wrangler:info] Ready on http://localhost:8931")).toEqual({ show: true });
  });

  it("once ready: no 2xx request lines nor debug/info logs; other requests, warnings, errors and other lines show", () => {
    const show = createOutputFilter({ verbose: false });
    show("[wrangler:info] Ready on http://localhost:8931");
    const shown = (line: string) => show(line).show;
    expect(shown("[wrangler:info] GET /v1/topics 200 OK (12ms)")).toBe(false);
    expect(shown("[wrangler:info] POST /v1/topics/events/events 202 Accepted (30ms)")).toBe(false);
    expect(shown("\u001b[32m[wrangler:info] GET /health 200 OK (2ms)\u001b[0m")).toBe(false);
    expect(shown("[wrangler:info] GET / 302 Found (3ms)")).toBe(true);
    expect(shown("[wrangler:info] GET /v1/topics 401 Unauthorized (5ms)")).toBe(true);
    expect(shown("[wrangler:info] POST /v1/topics/orders/events 422 Unprocessable Entity (8ms)")).toBe(true);
    expect(shown('[undefined] {"level":"info","msg":"request","status":200}')).toBe(false);
    expect(shown('{"level":"debug","msg":"append"}')).toBe(false);
    expect(shown('[eventline] {"level":"warn","msg":"permanent failure: dead-lettered"}')).toBe(true);
    expect(shown('{"level":"error","msg":"unhandled error"}')).toBe(true);
    expect(shown("⎔ Reloading local server...")).toBe(true);
    expect(shown("❓ Your types might be out of date. Re-run `wrangler types` to ensure your types are correct.")).toBe(false);
  });

  it("verbose shows every line but the false types warning, and still reports ready", () => {
    const show = createOutputFilter({ verbose: true });
    expect(show(" ⛅️ wrangler 4.156.2").show).toBe(true);
    expect(show("[wrangler:info] Ready on http://127.0.0.1:9000")).toEqual({ show: true, ready: "http://127.0.0.1:9000" });
    expect(show("[wrangler:info] GET /v1/topics 200 OK (12ms)").show).toBe(true);
    expect(show('{"level":"info","msg":"request"}').show).toBe(true);
    expect(show("❓ Your types might be out of date. Re-run `wrangler types` to ensure your types are correct.").show).toBe(false);
  });

  it("the banner: URL, the EVENTLINE_URL and EVENTLINE_TOKEN exports, dashboard, docs, state and how to reset", () => {
    const text = banner({ url: "http://localhost:8931", state: ".wrangler/state", defaultState: true, verbose: false });
    expect(text).toContain("Eventline is running at http://localhost:8931");
    expect(text).toContain("export EVENTLINE_URL=http://localhost:8931");
    expect(text).toContain("export EVENTLINE_TOKEN=$(sed -n 's/^EVENTLINE_ADMIN_KEY=//p' .dev.vars)");
    expect(text).toContain("http://localhost:8931/dashboard");
    expect(text).toContain("http://localhost:8931/docs");
    expect(text).toContain("then npm run reset");
    expect(text).toContain("npm start -- --verbose");
    expect(text.trim().split("\n").length).toBeLessThanOrEqual(12);
    const other = banner({ url: "http://localhost:1", state: "/tmp/s", defaultState: false, verbose: true });
    expect(other).toContain("then delete /tmp/s");
    expect(other).toContain("every line (verbose)");
  });
});

describe("npm start's migrations", () => {
  it("show wrangler's whole output when they fail, and npm start stops there", async () => {
    // A state "directory" that is a file: the migrations cannot create their database.
    const state = path.join(await tempDir(), "not-a-directory");
    await writeFile(state, "x");
    const env = { ...process.env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ""}` };
    const run = await runProcess(process.execPath, ["scripts/start.mjs", "--port", "1", "--persist-to", state], { cwd: root, env });
    const res = { code: run.code, output: run.stdout + run.stderr };
    expect(res.code).toBe(1);
    expect(res.output).toContain("ENOTDIR"); // wrangler's own error, not swallowed
    expect(res.output).toContain(`✖ wrangler d1 migrations apply DB --local --persist-to ${state} failed (exit 1)`);
    expect(res.output).not.toContain("D1 migrations:");
    expect(res.output).not.toContain("Eventline is running");
  }, 60_000);
});

/** Runs scripts/reset.mjs on `state`. */
function reset(state: string): Promise<ProcessRun> {
  return runProcess(process.execPath, ["scripts/reset.mjs", "--state", state], { cwd: root });
}

describe("npm run reset", () => {
  it("removes the state directory", async () => {
    const state = path.join(await tempDir(), "state");
    await mkdir(path.join(state, "v3", "d1"), { recursive: true });
    await writeFile(path.join(state, "v3", "d1", "db.sqlite"), "x");
    const res = await reset(state);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^Removed .*state: the next npm start begins with empty topics/);
    expect(existsSync(state)).toBe(false);
    const again = await reset(state);
    expect(again).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Nothing to reset: .* does not exist/) });
  });

  it("refuses while npm start runs on it (a live pid in its pid file), and goes ahead when that process is gone", async () => {
    const state = path.join(await tempDir(), "state");
    await mkdir(state, { recursive: true });
    await writeFile(path.join(state, PID_FILE), `${process.pid}\n`);
    const refused = await reset(state);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`npm start is running on .* \\(pid ${process.pid}\\): stop it first`));
    expect(existsSync(state)).toBe(true);

    // A pid file left behind by a stack that is gone (a process that has exited).
    const gone = spawn(process.execPath, ["-e", ""]);
    await new Promise((resolve) => gone.once("close", resolve));
    await writeFile(path.join(state, PID_FILE), `${gone.pid}\n`);
    expect((await reset(state)).code).toBe(0);
    expect(existsSync(state)).toBe(false);
  });
});
