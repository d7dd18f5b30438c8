import { randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { cli, tempDir } from "./helpers";

/** `eventline publish --dataschema`: naming the data schema version an event is checked against. */

const type = `cli.pub.${randomUUID().slice(0, 8)}`;
const url = inject("eventlineUrl");
const schemaOf = (version: number) => `${url}/v1/topics/events/types/${type}/schemas/${version}`;

/** The stored event with this id, read back through the API (partition from the publish answer). */
async function stored(id: string, partition: number, sequence: number): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}/v1/topics/events/partitions/${partition}/events?from=${sequence}&limit=1`, {
    headers: { authorization: `Bearer ${inject("eventlineToken")}` },
  });
  const page = (await res.json()) as { events: Record<string, unknown>[] };
  const event = page.events[0];
  expect(event?.id).toBe(id);
  return event as Record<string, unknown>;
}

beforeAll(async () => {
  const dir = await tempDir();
  const v1 = { type: "object", properties: { n: { type: "integer" } }, required: ["n"], additionalProperties: false };
  const v2 = { ...v1, properties: { ...v1.properties, note: { type: "string" } } };
  for (const [i, schema] of [v1, v2].entries()) {
    const file = path.join(dir, `v${i + 1}.json`);
    await writeFile(file, JSON.stringify(schema));
    expect((await cli(["schemas", "register", "events", type, file])).code).toBe(0);
  }
});

describe("publish --dataschema", () => {
  it("a version number names the type's schema URI; the event is checked against it and stored with it", async () => {
    const id = `pub-${randomUUID()}`;
    const res = await cli(["publish", "events", "--type", type, "--id", id, "--data", '{"n":1}', "--dataschema", "1", "--json"]);
    expect(res.code).toBe(0);
    const [ack] = (JSON.parse(res.stdout) as { events: { partition: number; sequence: number }[] }).events;
    expect((await stored(id, ack?.partition ?? -1, ack?.sequence ?? -1)).dataschema).toBe(schemaOf(1));

    // v1 is closed: `note` exists only in v2. Named v1 → refused (422, exit 1) naming the member.
    const refused = await cli(["publish", "events", "--type", type, "--data", '{"n":1,"note":"x"}', "--dataschema", "1"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("/data");
    // A full URI is sent as given.
    const named = await cli(["publish", "events", "--type", type, "--data", '{"n":2,"note":"x"}', "--dataschema", schemaOf(2)]);
    expect(named.code).toBe(0);
    // A version the type does not have → 422 naming the versions.
    const unknown = await cli(["publish", "events", "--type", type, "--data", '{"n":1}', "--dataschema", "9"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("/dataschema");
  });

  it("refuses a version number without --type, and 0", async () => {
    const noType = await cli(["publish", "events", "--file", "-", "--dataschema", "1"], { input: "" });
    expect(noType.code).toBe(2);
    expect(noType.stderr).toContain("--dataschema");
    const zero = await cli(["publish", "events", "--type", type, "--dataschema", "0"]);
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain("versions start at 1");
  });
});
