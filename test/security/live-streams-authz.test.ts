import { beforeAll, describe, expect, it } from "vitest";
import { anonymousRequest, request } from "../helpers";
import { asKey, type CreatedTestKey, createTestKey, expectAccessDenied } from "./helpers";

/**
 * Durable Streams (/v1/stream/*) are authenticated and authorized like every other route: grants
 * name `stream/<name>` patterns (`produce` to create and append, `consume` to read and to fork
 * from, `admin` to delete); refusals are 403 problem+json with an `access.denied` audit record,
 * and change nothing. Only CORS preflights pass without a credential, and they say nothing about
 * any stream.
 */

let writer: CreatedTestKey;
let reader: CreatedTestKey;
let topicsOnly: CreatedTestKey;
const team = `team-${Date.now()}`;
const own = `/v1/stream/${team}/orders`;
const other = `/v1/stream/other-${Date.now()}/orders`;

beforeAll(async () => {
  writer = await createTestKey("stream-writer", [`produce:stream/${team}/`, `consume:stream/${team}/`]);
  reader = await createTestKey("stream-reader", [`consume:stream/${team}/`]);
  topicsOnly = await createTestKey("topics-producer", ["produce:*", "consume:events"]);
  for (const path of [own, other]) {
    const res = await request(path, { method: "PUT", headers: { "content-type": "text/plain" }, body: "first" });
    expect(res.status).toBe(201);
  }
});

const read = async (path: string) => (await request(path)).text();

describe("Durable Streams: authentication", () => {
  it("refuses anonymous writers and readers with 401 and stores nothing", async () => {
    for (const init of [
      { method: "PUT", headers: { "content-type": "text/plain" } },
      { method: "POST", headers: { "content-type": "text/plain" }, body: "x" },
      { method: "GET" },
      { method: "DELETE" },
    ]) {
      const res = await anonymousRequest(own, init);
      expect(res.status, init.method).toBe(401);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
    }
    expect(await read(own)).toBe("first");
  });

  it("answers a CORS preflight without credentials, and nothing about the stream", async () => {
    const res = await anonymousRequest(own, {
      method: "OPTIONS",
      headers: {
        origin: "https://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization",
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
    expect(res.headers.get("stream-next-offset")).toBeNull();
    expect(await res.text()).toBe("");
  });
});

describe("Durable Streams: grants on stream/<name>", () => {
  it("a writer of its prefix appends there and is refused elsewhere (403, audited, nothing stored)", async () => {
    expect((await asKey(writer, own, { method: "POST", headers: { "content-type": "text/plain" }, body: "+mine" })).status).toBe(204);
    const res = await asKey(writer, other, { method: "POST", headers: { "content-type": "text/plain" }, body: "+theirs" });
    await expectAccessDenied(res, { actor: writer.principal, reason: ["produce", `stream/other-`] });
    expect(await read(own)).toBe("first+mine");
    expect(await read(other)).toBe("first");
  });

  it("a reader reads and follows but cannot create, append or delete", async () => {
    expect(await (await asKey(reader, own)).text()).toContain("first");
    const poll = await asKey(reader, `${own}?offset=-1&live=long-poll`);
    expect(poll.status).toBe(200);
    for (const init of [
      { method: "PUT", headers: { "content-type": "text/plain" } },
      { method: "POST", headers: { "content-type": "text/plain" }, body: "x" },
      { method: "DELETE" },
    ]) {
      await expectAccessDenied(await asKey(reader, `${own}${init.method === "PUT" ? "-new" : ""}`, init), {
        actor: reader.principal,
        reason: [init.method === "DELETE" ? "admin" : "produce"],
      });
    }
    expect((await request(`${own}-new`, { method: "HEAD" })).status).toBe(404);
  });

  it("a topic grant does not reach streams; only a * pattern covers topics and streams alike", async () => {
    const refused = await asKey(topicsOnly, other);
    await expectAccessDenied(refused, { actor: topicsOnly.principal, reason: ["consume"] });
    // produce:* covers every resource, streams included: writing is allowed, reading is not.
    expect((await asKey(topicsOnly, other, { method: "POST", headers: { "content-type": "text/plain" }, body: "+p" })).status).toBe(204);
  });

  it("forking needs consume on the source: a writer of its own prefix cannot copy another team's stream", async () => {
    const fork = `/v1/stream/${team}/copy`;
    const res = await asKey(writer, fork, { method: "PUT", headers: { "stream-forked-from": other } });
    const problem = await res.json<{ detail: string }>();
    expect(res.status).toBe(403);
    expect(problem.detail).toContain("forking reads the source");
    expect((await request(fork, { method: "HEAD" })).status).toBe(404);
    const allowed = await asKey(writer, fork, { method: "PUT", headers: { "stream-forked-from": own } });
    expect(allowed.status).toBe(201);
    expect(await (await asKey(writer, fork)).text()).toBe("first+mine");
  });
});
