import { randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cli, tempDir } from "./helpers";

/** `eventline schemas …` against the local stack (test/cli/stack.ts): register, list, show, check. */

const type = `cli.schema.${randomUUID().slice(0, 8)}`;
const closed = (members: string[], required: string[]) => ({
  type: "object",
  properties: Object.fromEntries(members.map((m) => [m, { type: "string" }])),
  required,
  additionalProperties: false,
});

let dir: string;
const file = async (name: string, content: unknown) => {
  const at = path.join(dir, name);
  await writeFile(at, typeof content === "string" ? content : JSON.stringify(content));
  return at;
};

beforeAll(async () => {
  dir = await tempDir();
});

describe("eventline schemas", () => {
  it("--help of the group lists its four commands", async () => {
    const help = await cli(["schemas", "--help"]);
    expect(help.code).toBe(0);
    for (const line of [
      "schemas list [topic] [type]",
      "schemas show <topic> <type> [version]",
      "schemas register <topic> <type> <file>",
      "schemas check <file>",
    ]) {
      expect(help.stdout).toContain(`  ${line} `);
    }
    expect((await cli(["--help"])).stdout).toContain("  schemas check <file> ");
  });

  it("register prints the new version and its dataschema; again, that it is already registered", async () => {
    const v1 = await file("v1.json", closed(["id"], ["id"]));
    const first = await cli(["schemas", "register", "events", type, v1]);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(`registered events/${type} version 1 (BACKWARD, nothing to check against)`);
    expect(first.stdout).toMatch(new RegExp(`dataschema: http://.+/v1/topics/events/types/${type.replaceAll(".", "\\.")}/schemas/1\\n`));
    const again = await cli(["schemas", "register", "events", type, v1]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`already registered: events/${type} version 1 is this schema`);
  });

  it("list shows the type in the catalog and its versions; show prints the schema", async () => {
    const catalog = await cli(["schemas", "list", "events"]);
    expect(catalog.code).toBe(0);
    expect(catalog.stdout).toMatch(new RegExp(`events\\s+${type.replaceAll(".", "\\.")}\\s+1\\s+1\\s+BACKWARD`));
    const versions = await cli(["schemas", "list", "events", type, "--json"]);
    expect(versions.code).toBe(0);
    const body = JSON.parse(versions.stdout) as { schemas: { version: number; source: string }[] };
    expect(body.schemas.map((s) => [s.version, s.source])).toEqual([[1, "registry"]]);
    const show = await cli(["schemas", "show", "events", type]);
    expect(show.code).toBe(0);
    expect(show.stdout.split("\n")[0]).toMatch(new RegExp(`^# events/${type.replaceAll(".", "\\.")} version 1 \\(registry\\): http`));
    expect(JSON.parse(show.stdout.split("\n").slice(1).join("\n"))).toEqual(closed(["id"], ["id"]));
  });

  it("check exits 0 for a compatible schema (file naming topic and type) and stores nothing", async () => {
    const candidate = await file("ok.json", { topic: "events", type, schema: closed(["id", "note"], ["id"]) });
    const res = await cli(["schemas", "check", candidate]);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain(`compatible: would be events/${type} version 2 (BACKWARD, checked against 1)`);
    const versions = JSON.parse((await cli(["schemas", "list", "events", type, "--json"])).stdout) as { schemas: unknown[] };
    expect(versions.schemas.length).toBe(1);
  });

  it("check exits 1 for an incompatible schema, printing each incompatibility", async () => {
    const candidate = await file("bad.json", closed(["id", "amount"], ["id", "amount"]));
    const res = await cli(["schemas", "check", candidate, "--topic", "events", "--type", type]);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain(`incompatible: events/${type} under BACKWARD (checked against 1):`);
    expect(res.stdout).toMatch(/ {2}version 1 \/data\/amount: .+ \(backward\)/);
    const json = await cli(["schemas", "check", candidate, "--topic", "events", "--type", type, "--json"]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ compatible: false, version: 2, checkedAgainst: [1] });
  });

  it("register exits 1 for an incompatible schema, with the problem's issues on stderr", async () => {
    const candidate = await file("bad2.json", { schema: closed(["id", "amount"], ["id", "amount"]) });
    const res = await cli(["schemas", "register", "events", type, candidate]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("error: Schema breaks its compatibility mode:");
    expect(res.stderr).toMatch(/\n {2}\/data\/amount: /);
  });

  it("register takes a {topic, type, schema} file that agrees with the arguments, and exits 2 naming both when it does not", async () => {
    const agreeing = await file("agree.json", { topic: "events", type, schema: closed(["id"], ["id"]) });
    const same = await cli(["schemas", "register", "events", type, agreeing]);
    expect(same.code).toBe(0);
    expect(same.stdout).toContain(`already registered: events/${type} version 1 is this schema`);
    const other = await file("other.json", { topic: "shop", type, schema: closed(["id", "x"], ["id"]) });
    const wrongTopic = await cli(["schemas", "register", "events", type, other]);
    expect(wrongTopic.code).toBe(2);
    expect(wrongTopic.stderr).toContain('is for topic "shop", but the arguments name topic "events"');
    const otherType = await file("other-type.json", { type: "not.this.one", schema: closed(["id", "x"], ["id"]) });
    const wrongType = await cli(["schemas", "register", "events", type, otherType]);
    expect(wrongType.code).toBe(2);
    expect(wrongType.stderr).toContain(`is for type "not.this.one", but the arguments name type "${type}"`);
    const versions = JSON.parse((await cli(["schemas", "list", "events", type, "--json"])).stdout) as { schemas: unknown[] };
    expect(versions.schemas.length).toBe(1);
  });

  it("list of an unknown topic prints the API's 404 and exits 1", async () => {
    const res = await cli(["schemas", "list", "nosuch"]);
    expect(res.code).toBe(1);
    expect(res.stdout).toBe("");
    expect(res.stderr).toContain("error:");
    expect(res.stderr).toContain("nosuch");
  });

  it("exits 2 for a missing or invalid file, or no topic and type, before any request", async () => {
    const missing = await cli(["schemas", "check", path.join(dir, "nope.json"), "--topic", "events", "--type", type]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("cannot read");
    const invalid = await cli(["schemas", "register", "events", type, await file("invalid.json", "{nope")]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain("not valid JSON");
    const array = await cli(["schemas", "register", "events", type, await file("array.json", [1])]);
    expect(array.code).toBe(2);
    expect(array.stderr).toContain("expected a JSON Schema");
    const unnamed = await cli(["schemas", "check", await file("plain.json", true)]);
    expect(unnamed.code).toBe(2);
    expect(unnamed.stderr).toContain("give --topic and --type");
  });
});
