import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { LiveStream } from "../../durable-objects/live-stream";
import { MAX_APPEND_BYTES } from "../../shared/live-stream/protocol";
import { request } from "../helpers";

/**
 * The Durable Streams routes end to end in workerd (the published conformance suite runs against
 * wrangler dev in test/conformance/): what Eventline adds around the protocol — commit before the
 * answer, the 1 MiB append limit, live readers woken by commits through the object's hibernatable
 * WebSockets and let go afterwards.
 */

let n = 0;
const unique = (prefix: string) => `tests/${prefix}-${Date.now()}-${n++}`;
const path = (name: string) => `/v1/stream/${name}`;

async function create(name: string, contentType = "application/json", body?: string) {
  const res = await request(path(name), {
    method: "PUT",
    headers: { "content-type": contentType },
    ...(body === undefined ? {} : { body }),
  });
  expect(res.status).toBe(201);
  return res;
}

const append = (name: string, body: string | Uint8Array, contentType = "application/json", headers: Record<string, string> = {}) =>
  request(path(name), { method: "POST", headers: { "content-type": contentType, ...headers }, body });

/** Sockets the stream's object holds for waiting readers. */
const waiting = (name: string) =>
  runInDurableObject(env.LIVE_STREAM.getByName(name), (_instance: LiveStream, state) => state.getWebSockets().length);

describe("Durable Streams: storage", () => {
  it("stores JSON appends as values, reads them as one array, and resumes from an offset", async () => {
    const name = unique("json");
    await create(name, "application/json", '[{"n":1},{"n":2}]');
    const second = await append(name, '{"n":3}');
    expect(second.status).toBe(204);
    const all = await request(path(name));
    expect(await all.json()).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(all.headers.get("stream-up-to-date")).toBe("true");
    expect(all.headers.get("stream-next-offset")).toBe(second.headers.get("stream-next-offset"));
    const first = await request(`${path(name)}?offset=now`);
    const tail = first.headers.get("stream-next-offset");
    await append(name, '[{"n":4},{"n":5}]');
    expect(await (await request(`${path(name)}?offset=${tail}`)).json()).toEqual([{ n: 4 }, { n: 5 }]);
  });

  it("refuses an append above 1 MiB with 413 and stores nothing", async () => {
    const name = unique("big");
    await create(name, "application/octet-stream");
    const res = await append(name, new Uint8Array(MAX_APPEND_BYTES + 1), "application/octet-stream");
    expect(res.status).toBe(413);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect((await request(path(name))).headers.get("stream-next-offset")).toBe("0000000000000000_0000000000000000");
    const exact = await append(name, new Uint8Array(MAX_APPEND_BYTES), "application/octet-stream");
    expect(exact.status).toBe(204);
    expect(exact.headers.get("stream-next-offset")).toBe(`0000000000000000_${String(MAX_APPEND_BYTES).padStart(16, "0")}`);
  });

  it("answers malformed requests with problem+json 400 and changes nothing", async () => {
    const name = unique("bad");
    await create(name, "application/json", "[1]");
    for (const [init, query] of [
      [{ method: "POST", headers: { "content-type": "application/json" }, body: "{nope" }, ""],
      [{ method: "POST", headers: { "content-type": "application/json" }, body: "[]" }, ""],
      [{ method: "POST", headers: { "content-type": "application/json", "producer-id": "p" }, body: "1" }, ""],
      [{ method: "GET" }, "?offset=0000000000000000_0000000000000002"],
      [{ method: "GET" }, "?live=sse"],
    ] as const) {
      const res = await request(`${path(name)}${query}`, init);
      expect(res.status, JSON.stringify(init) + query).toBe(400);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    }
    expect(await (await request(path(name))).json()).toEqual([1]);
    expect((await request(path("Bad Name"), { method: "PUT" })).status).toBe(400);
  });
});

describe("Durable Streams: live readers", () => {
  it("wakes a long-poll within milliseconds of the commit, then lets the object go", async () => {
    const name = unique("poll");
    const created = await create(name, "text/plain", "old");
    const tail = created.headers.get("stream-next-offset");
    const started = Date.now();
    const poll = request(`${path(name)}?offset=${tail}&live=long-poll`);
    await expect.poll(() => waiting(name), { timeout: 5000, interval: 20 }).toBe(1);
    const appended = Date.now();
    expect((await append(name, "new", "text/plain")).status).toBe(204);
    const res = await poll;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("new");
    expect(res.headers.get("stream-cursor")).toMatch(/^\d+$/);
    expect(Date.now() - appended).toBeLessThan(1000);
    expect(Date.now() - started).toBeLessThan(15_000);
    await expect.poll(() => waiting(name), { timeout: 5000, interval: 20 }).toBe(0);
  });

  it("streams commits to an SSE reader as they happen and ends it when the stream closes", async () => {
    const name = unique("sse");
    await create(name, "application/json", '{"n":1}');
    const res = await request(`${path(name)}?offset=-1&live=sse`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const reader = res.body?.getReader();
    if (reader === undefined) throw new Error("no body");
    const decoder = new TextDecoder();
    let received = "";
    const until = async (needle: string) => {
      while (!received.includes(needle)) {
        const { done, value } = await reader.read();
        if (done) break;
        received += decoder.decode(value, { stream: true });
      }
    };
    await until('"upToDate":true');
    await expect.poll(() => waiting(name), { timeout: 5000, interval: 20 }).toBe(1);
    await append(name, '{"n":2}');
    await until('data:[{"n":2}]');
    await append(name, '{"n":3}', "application/json", { "stream-closed": "true" });
    await until('"streamClosed":true');
    const { done } = await reader.read();
    expect(done).toBe(true);
    const data = [...received.matchAll(/event: data\ndata:(.*)\n/g)].flatMap((m) => JSON.parse(m[1] as string) as unknown[]);
    expect(data).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    await expect.poll(() => waiting(name), { timeout: 5000, interval: 20 }).toBe(0);
  });

  it("tells waiting readers when the stream is deleted", async () => {
    const name = unique("deleted");
    const created = await create(name, "text/plain");
    const poll = request(`${path(name)}?offset=${created.headers.get("stream-next-offset")}&live=long-poll`);
    await expect.poll(() => waiting(name), { timeout: 5000, interval: 20 }).toBe(1);
    expect((await request(path(name), { method: "DELETE" })).status).toBe(204);
    expect((await poll).status).toBe(404);
    expect(await waiting(name)).toBe(0);
  });
});
