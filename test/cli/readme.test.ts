import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { problems, readmeSteps, shellBlocks, stepsOf } from "../../scripts/readme/steps.mjs";
import { runReadme, type StepResult, startLocalStack } from "../../scripts/readme-examples.mjs";

/**
 * The README as a tested contract (ADR 0042): `npm start` (scripts/start.mjs) on a free port with
 * a fresh state, then every shell example of the README in order, in one bash session, each answer
 * compared with what the README shows (scripts/readme/steps.mjs says how). The same run checks
 * what `npm start` printed: a banner once ready, no per-request lines for 2xx answers.
 */

const root = path.resolve(import.meta.dirname, "../..");
const steps = readmeSteps(readFileSync(path.join(root, "README.md"), "utf8"));

describe("the README's examples, against npm start on a free port", () => {
  let stack: Awaited<ReturnType<typeof startLocalStack>> | undefined;
  let results: StepResult[] = [];
  beforeAll(async () => {
    stack = await startLocalStack();
    results = await runReadme({ url: stack.url });
  }, 360_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it("finds the examples: the variables, the try-it, the failure walk-through, and the CLI in it", () => {
    expect(steps.length).toBeGreaterThanOrEqual(15);
    expect(steps[0]?.command).toBe(`export EVENTLINE_URL=$\{EVENTLINE_URL:-http://localhost:8787}`);
    const commands = steps.map((s) => s.command);
    expect(commands).toEqual(expect.arrayContaining(["npx eventline dlq list greetings", "npx eventline dlq redrive greetings"]));
    // Every step that answers something the README shows has its answer attached.
    expect(steps.filter((s) => s.expect.length > 0).length).toBeGreaterThanOrEqual(12);
  });

  it.each(steps.map((step, i) => ({ name: `README.md:${step.line} ${step.command.split("\n")[0]?.slice(0, 80)}`, i })))(
    "$name answers what the README shows",
    ({ i }) => {
      const result = results[i];
      expect(result?.step).toEqual(steps[i]);
      expect(result?.problems).toEqual([]);
    },
  );

  it("npm start printed a short start, then its banner, and no line for a request answered 2xx", () => {
    if (stack === undefined) throw new Error("no stack");
    const output = stack.output();
    const [before = "", after = ""] = output.split(/^Eventline is running at .*$/m);
    expect(after).not.toBe("");
    // Before the banner: the config check and the migrations (and .dev.vars, the first time); no wrangler chatter.
    const boot = before.split("\n").filter((line) => line.trim() !== "");
    expect(boot.length, before).toBeLessThanOrEqual(8);
    expect(before).toMatch(/^D1 migrations: \d+ applied$/m);
    expect(before).not.toMatch(/wrangler|Binding|env\./);
    expect(output).toContain(`export EVENTLINE_URL=${stack.url}`);
    expect(output).toContain(`${stack.url}/dashboard`);
    expect(output).toContain(`${stack.url}/docs`);
    expect(output).toContain("npm start -- --verbose");
    expect(output).not.toContain("types might be out of date");
    // The README's examples made dozens of 2xx requests: none shows; the 422 and 4xx ones do.
    expect(output).not.toMatch(/\[wrangler:info\] [A-Z]+ \S+ 2\d\d /);
    expect(output).not.toMatch(/"msg":"request"/);
    expect(output).toMatch(/\[wrangler:info\] POST \/v1\/topics\/orders\/events 422 /);
  });
});

describe("the README's checker", () => {
  const step = (expect: string[], command = "curl -s x") => ({ block: 0, line: 1, command, expect });
  const run = (stdout: string, statuses: number[] = [200], code: number | null = 0) => ({ code, stdout, stderr: "", statuses });

  it("compares JSON shown in full as values: a different value or an extra field fails", () => {
    expect(problems(step(['{"a":1,"b":[true]}']), run('{"b":[true],"a":1}\n'))).toEqual([]);
    expect(problems(step(['{"a":1,"b":[true]}']), run('{"a":2,"b":[true]}'))).toEqual([expect.stringMatching(/^expected/)]);
    expect(problems(step(['{"a":1}']), run('{"a":1,"c":0}'))).toHaveLength(1);
  });

  it("checks the fields shown in abbreviated JSON, a string ending in … as a prefix", () => {
    const shown = ['201 {"id":"rpl_…","state":"running",…,"issues":[{"path":"/data"}]}'];
    const answer = '{"id":"rpl_42","state":"running","x":{"issues":[{"path":"/data","message":"m"}]}}';
    expect(problems(step(shown), run(answer, [201]))).toEqual([]);
    expect(problems(step(shown), run(answer.replace("running", "done"), [201]))).toEqual([expect.stringContaining('"state": "running"')]);
    expect(problems(step(shown), run(answer.replace("rpl_42", "job_42"), [201]))).toHaveLength(1);
  });

  it("checks the status shown (the last curl call), 2xx otherwise, and the exit code", () => {
    expect(problems(step(["422 {…}"]), run("{}", [422]))).toEqual([]);
    expect(problems(step(["422 {…}"]), run("{}", [400]))).toEqual([expect.stringContaining("answered 400, expected 422")]);
    expect(problems(step([]), run("{}", [200, 404]))).toEqual([expect.stringContaining("answered 404, expected 2xx")]);
    expect(problems(step([], "false"), run("", [], 1))).toEqual([expect.stringMatching(/^exited 1/)]);
  });

  it("matches text line by line, in order, … for anything and any spacing", () => {
    const table = "NAME       LAG  DLQ\nactivity   0    0\ngreetings  0    1\n\n1 of 1 dead letters\n";
    expect(problems(step(["NAME LAG DLQ", "greetings  0  1", "… of 1 dead letters"], "npx eventline x"), run(table, []))).toEqual([]);
    expect(problems(step(["greetings 0 0"], "npx eventline x"), run(table, []))).toHaveLength(1);
    expect(problems(step(["greetings 0 1", "activity 0 0"], "npx eventline x"), run(table, []))).toHaveLength(1);
  });

  it("splits blocks into commands (continuations, quoted newlines) with their answers; skips marked blocks", () => {
    const markdown = [
      "<!-- readme-examples: skip (setup) -->",
      "```sh",
      "npm start",
      "```",
      "```sh",
      "# a comment",
      "curl -s a \\",
      "  -d '[1,",
      "   2]'",
      "# → {…}",
      "#   more",
      "# not part of it",
      "echo 'it''s' # a comment's quote",
      "```",
      "```ts",
      "const x = 1;",
      "```",
    ].join("\n");
    const blocks = shellBlocks(markdown);
    expect(blocks).toEqual([{ line: 6, code: expect.stringContaining("curl -s a") }]);
    const [first, second, ...rest] = stepsOf(blocks[0] ?? { line: 0, code: "" }, 0);
    expect(first).toEqual({ block: 0, line: 7, command: "curl -s a \\\n  -d '[1,\n   2]'", expect: ["{…}", "more"] });
    expect(second).toEqual({ block: 0, line: 13, command: "echo 'it''s' # a comment's quote", expect: [] });
    expect(rest).toEqual([]);
    expect(() => stepsOf({ line: 1, code: "echo 'open" }, 0)).toThrow(/never ends/);
  });
});
