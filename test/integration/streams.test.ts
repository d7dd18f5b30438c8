import { evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { partitionFor } from "../../shared/partitioner";
import { allHeads, BATCH, event, expectAccepted, expectProblem, postStructured, request, STRUCTURED, topicConfig } from "../helpers";

/** Streams on the `events` topic (any type accepted). */
const TOPIC = "events";

interface StreamAck {
  id: string;
  partition: number;
  sequence: number;
  duplicate: boolean;
  streamVersion: number;
}
interface StreamAppendBody {
  topic: string;
  subject: string;
  partition: number;
  version: number;
  events: StreamAck[];
}

const streamPath = (subject: string) => `/v1/topics/${TOPIC}/streams/${encodeURIComponent(subject)}`;

function append(subject: string, events: unknown[], expectedVersion?: string | number, headers: Record<string, string> = {}) {
  const query = expectedVersion === undefined ? "" : `?expectedVersion=${expectedVersion}`;
  const single = events.length === 1;
  return request(`${streamPath(subject)}/events${query}`, {
    method: "POST",
    headers: { "content-type": single ? STRUCTURED : BATCH, ...headers },
    body: JSON.stringify(single ? events[0] : events),
  });
}

async function expectAppended(res: Response, status = 201): Promise<StreamAppendBody> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  const body = JSON.parse(text) as StreamAppendBody;
  expect(res.headers.get("eventline-stream-version")).toBe(String(body.version));
  return body;
}

async function info(subject: string) {
  const res = await request(streamPath(subject));
  expect(res.status).toBe(200);
  return (await res.json()) as { version: number; partition: number; lastSequence: number; updatedAt: string | null };
}

async function readStream(subject: string, query = "") {
  const res = await request(`${streamPath(subject)}/events${query}`);
  expect(res.status).toBe(200);
  return (await res.json()) as {
    version: number;
    events: (Record<string, unknown> & { id: string; streamversion: number; subject: string })[];
    next: { fromVersion: number; href: string };
    hasMore: boolean;
  };
}

const subjectOf = (name: string) => `${name}-${crypto.randomUUID()}`;

describe("stream appends with expected versions", () => {
  it("starts a stream at version 1 and numbers its events contiguously; the stored events carry streamversion", async () => {
    const subject = subjectOf("new");
    const first = await expectAppended(await append(subject, [event({ type: "a" }), event({ type: "b" })], "no-stream"));
    expect(first.events.map((e) => e.streamVersion)).toEqual([1, 2]);
    expect(first.version).toBe(2);
    expect(first.partition).toBe(partitionFor({ id: subject, subject }, topicConfig(TOPIC).partitions));
    const second = await expectAppended(await append(subject, [event({ type: "c" })], 2));
    expect(second.events[0]).toMatchObject({ streamVersion: 3, duplicate: false, partition: first.partition });
    expect(second.events[0]?.sequence).toBeGreaterThan(first.events[1]?.sequence ?? Infinity);

    const page = await readStream(subject);
    expect(page.events.map((e) => [e.type, e.streamversion, e.subject])).toEqual([
      ["a", 1, subject],
      ["b", 2, subject],
      ["c", 3, subject],
    ]);
    expect(page).toMatchObject({ version: 3, hasMore: false });
    expect(await info(subject)).toMatchObject({ version: 3, lastSequence: second.events[0]?.sequence, partition: first.partition });
  });

  it("refuses an append at the wrong version with 409 and currentVersion, storing nothing", async () => {
    const subject = subjectOf("conflict");
    await expectAppended(await append(subject, [event(), event()]));
    const before = await allHeads();
    for (const expected of [0, 1, 3, "no-stream"] as const) {
      const problem = await expectProblem(await append(subject, [event()], expected), 409);
      expect(problem).toMatchObject({ code: "version_conflict", currentVersion: 2, subject });
      expect(problem.detail).toContain("version 2");
    }
    expect(await allHeads()).toEqual(before);
    expect((await info(subject)).version).toBe(2);
  });

  it("checks exists / no-stream / any", async () => {
    const subject = subjectOf("keywords");
    const missing = await expectProblem(await append(subject, [event()], "exists"), 409);
    expect(missing).toMatchObject({ code: "version_conflict", currentVersion: 0 });
    await expectAppended(await append(subject, [event()], "no-stream"));
    await expectAppended(await append(subject, [event()], "exists"));
    await expectAppended(await append(subject, [event()], "any"));
    await expectAppended(await append(subject, [event()]));
    expect((await info(subject)).version).toBe(4);
  });

  it("of K concurrent writers expecting the same version, exactly one succeeds and the others get 409 with the current version", async () => {
    const subject = subjectOf("race");
    await expectAppended(await append(subject, [event()], "no-stream"));
    const K = 25;
    const responses = await Promise.all(Array.from({ length: K }, (_, i) => append(subject, [event({ data: { writer: i } })], 1)));
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(K - 1);
    for (const res of responses.filter((r) => r.status === 409)) {
      expect(await expectProblem(res, 409)).toMatchObject({ code: "version_conflict", currentVersion: 2 });
    }
    const page = await readStream(subject);
    expect(page.events.map((e) => e.streamversion)).toEqual([1, 2]);
  });

  it("answers a re-sent append with the original positions (duplicate, not conflict); the same ids elsewhere conflict", async () => {
    const subject = subjectOf("retry");
    const a = event();
    const b = event();
    const original = await expectAppended(await append(subject, [a, b], "no-stream"));
    const again = await expectAppended(await append(subject, [a, b], "no-stream"), 200);
    expect(again.events).toEqual(original.events.map((e) => ({ ...e, duplicate: true })));
    expect(again.version).toBe(2);

    await expectAppended(await append(subject, [event()], 2));
    // Re-sent after the stream moved on: still the original positions.
    expect((await expectAppended(await append(subject, [a, b], "no-stream"), 200)).events.map((e) => e.streamVersion)).toEqual([1, 2]);
    // Re-sending b alone where it stands (after version 1) is a duplicate too.
    expect((await expectAppended(await append(subject, [b], 1), 200)).events[0]).toMatchObject({ streamVersion: 2, duplicate: true });
    // The same event claimed at another position is a conflict, not a duplicate.
    const moved = await expectProblem(await append(subject, [a], 1), 409);
    expect(moved).toMatchObject({ code: "version_conflict", currentVersion: 3 });
    // Different content under a stored id is the ingest conflict.
    const changed = await expectProblem(await append(subject, [{ ...a, data: { other: true } }], "any"), 409);
    expect(changed.code).toBe("duplicate_conflict");
    // With `any`, a mix of stored and new events appends the new ones only.
    const c = event();
    const mixed = await expectAppended(await append(subject, [a, c], "any"));
    expect(mixed.events.map((e) => [e.duplicate, e.streamVersion])).toEqual([
      [true, 1],
      [false, 4],
    ]);
  });

  it("accepts binary mode and fills in the subject", async () => {
    const subject = subjectOf("binary");
    const res = await request(`${streamPath(subject)}/events?expectedVersion=no-stream`, {
      method: "POST",
      headers: { "ce-specversion": "1.0", "ce-id": "bin-1", "ce-source": "/tests", "ce-type": "t.bin", "content-type": "application/json" },
      body: JSON.stringify({ n: 1 }),
    });
    const body = await expectAppended(res);
    expect(body.events[0]?.streamVersion).toBe(1);
    expect((await readStream(subject)).events[0]).toMatchObject({ id: "bin-1", subject, data: { n: 1 } });
  });

  it("refuses events of another subject or another partition key, and bad parameters, storing nothing", async () => {
    const subject = subjectOf("refuse");
    const before = await allHeads();
    const other = await expectProblem(await append(subject, [event(), event({ subject: "someone-else" })]), 400);
    expect(other.issues).toEqual([expect.objectContaining({ path: "/1/subject" })]);
    const keyed = await expectProblem(await append(subject, [event({ partitionkey: "k" })]), 400);
    expect(keyed.issues).toEqual([expect.objectContaining({ path: "/partitionkey" })]);
    for (const bad of ["-1", "1.5", "latest", "99999999999999999999"]) {
      const problem = await expectProblem(await append(subject, [event()], bad), 400);
      expect(problem.code).toBe("invalid_parameter");
      expect(problem.issues?.[0]?.path).toBe("/query/expectedVersion");
    }
    const server = await expectProblem(await append(subject, [event({ streamversion: 7 })]), 400);
    expect(server.issues?.[0]?.path).toBe("/streamversion");
    expect((await expectProblem(await request("/v1/topics/nope/streams/x/events", { method: "POST" }), 404)).code).toBe("topic_not_found");
    expect(await allHeads()).toEqual(before);
  });

  it("keeps versions across eviction of the partition object", async () => {
    const subject = subjectOf("evict");
    const first = await expectAppended(await append(subject, [event(), event()], "no-stream"));
    await evictDurableObject(env.PARTITION_LOG.getByName(`${TOPIC}/${first.partition}`));
    await expectProblem(await append(subject, [event()], 1), 409);
    expect((await expectAppended(await append(subject, [event()], 2))).version).toBe(3);
  });
});

describe("streams and plain ingest", () => {
  it("an event published with a subject joins the subject's stream; one placed by another partition key does not", async () => {
    const subject = subjectOf("ingest");
    const [joined] = await expectAccepted(await postStructured(TOPIC, event({ subject })));
    expect(joined).toMatchObject({ streamVersion: 1 });
    const [keyed] = await expectAccepted(await postStructured(TOPIC, event({ subject, partitionkey: "elsewhere" })));
    expect(keyed?.streamVersion).toBeUndefined();
    await expectAppended(await append(subject, [event()], 1));
    const page = await readStream(subject);
    expect(page.events.map((e) => e.streamversion)).toEqual([1, 2]);
    expect(page.events[0]?.id).toBe(joined?.id);
  });
});

describe("reading streams", () => {
  it("pages with fromVersion and limit, and follows next", async () => {
    const subject = subjectOf("page");
    await expectAppended(
      await append(
        subject,
        Array.from({ length: 7 }, (_, i) => event({ data: { i } })),
      ),
    );
    const first = await readStream(subject, "?limit=3");
    expect(first.events.map((e) => e.streamversion)).toEqual([1, 2, 3]);
    expect(first).toMatchObject({ hasMore: true, next: { fromVersion: 4 } });
    const rest = await request(first.next.href);
    const page = (await rest.json()) as { events: { streamversion: number }[]; hasMore: boolean };
    expect(page.events.map((e) => e.streamversion)).toEqual([4, 5, 6]);
    expect((await readStream(subject, "?fromVersion=7")).events.map((e) => e.streamversion)).toEqual([7]);
    expect((await readStream(subject, "?fromVersion=8")).events).toEqual([]);
    const batch = await request(`${streamPath(subject)}/events?fromVersion=6`, { headers: { accept: BATCH } });
    expect(batch.headers.get("content-type")).toBe(BATCH);
    expect(((await batch.json()) as unknown[]).length).toBe(2);
    expect((await expectProblem(await request(`${streamPath(subject)}/events?limit=0`), 400)).code).toBe("invalid_parameter");
  });

  it("gives a stream's version by GET and HEAD (0 for none)", async () => {
    const subject = subjectOf("info");
    expect(await info(subject)).toMatchObject({ version: 0, lastSequence: 0, updatedAt: null });
    await expectAppended(await append(subject, [event(), event()]));
    const head = await request(streamPath(subject), { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("eventline-stream-version")).toBe("2");
    expect(head.headers.get("etag")).toBe('"2"');
    expect(await head.text()).toBe("");
    const res = await request(streamPath(subject), { method: "DELETE" });
    expect((await expectProblem(res, 405)).code).toBe("method_not_allowed");
  });
});

describe("snapshots beside the stream", () => {
  it("loads the latest snapshot of the wanted schema and the events after it", async () => {
    const subject = subjectOf("snap");
    const appended = await expectAppended(
      await append(
        subject,
        Array.from({ length: 5 }, (_, i) => event({ data: { i } })),
      ),
    );
    const stub = env.PARTITION_LOG.getByName(`${TOPIC}/${appended.partition}`);
    const none = await stub.loadStream(subject, 1);
    expect(none).toMatchObject({ snapshot: null, version: 5, complete: true });
    expect(none.events).toHaveLength(5);

    expect(await stub.saveSnapshot({ subject, version: 3, schema: 1, state: '{"n":3}' })).toBe(true);
    // An older snapshot never replaces a newer one.
    expect(await stub.saveSnapshot({ subject, version: 2, schema: 1, state: '{"n":2}' })).toBe(false);
    const loaded = await stub.loadStream(subject, 1);
    expect(loaded.snapshot).toEqual({ version: 3, schema: 1, state: '{"n":3}' });
    expect(loaded.events.map((e) => (JSON.parse(e) as { streamversion: number }).streamversion)).toEqual([4, 5]);
    // A snapshot of another schema is ignored: the whole stream is loaded.
    expect((await stub.loadStream(subject, 2)).snapshot).toBeNull();
    // Paged when the tail is longer than the limit.
    expect(await stub.loadStream(subject, 2, 2)).toMatchObject({ complete: false, version: 5 });
    // A snapshot beyond the stream is refused.
    const beyond = async () => stub.saveSnapshot({ subject, version: 9, schema: 1, state: "{}" });
    await expect(beyond()).rejects.toThrow(/at version 5/);
  });
});
