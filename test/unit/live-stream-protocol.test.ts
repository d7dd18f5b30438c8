import { describe, expect, it } from "vitest";
import { firstValues, joinAppends } from "../../durable-objects/live-stream/json-values";
import { judgeProducer } from "../../durable-objects/live-stream/producers";
import { formatOffset, isStreamName, isTextType, parseOffset } from "../../shared/live-stream/protocol";
import { nextCursor } from "../../workers/platform/live-streams/answers";
import { type ReadOk, sseControlEvent, sseDataEvent } from "../../workers/platform/live-streams/live";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const bytes = (s: string) => new TextEncoder().encode(s);

describe("offsets", () => {
  it("are fixed-width, so string order is position order, and parse back", () => {
    const offsets = [0, 1, 9, 10, 4096, 1_000_000].map(formatOffset);
    expect([...offsets].sort()).toEqual(offsets);
    expect(offsets[3]).toBe("0000000000000000_0000000000000010");
    for (const [i, position] of [0, 1, 9, 10, 4096, 1_000_000].entries()) expect(parseOffset(offsets[i] as string)).toBe(position);
  });

  it("refuse every other shape", () => {
    for (const bad of [
      "",
      "0",
      "-1",
      "now",
      "0000000000000000_000000000000001",
      "0000000000000001_0000000000000000",
      "0,1",
      "a_b",
      "0000000000000000_0000000000000000 ",
    ]) {
      expect(parseOffset(bad), bad).toBeUndefined();
    }
  });
});

describe("stream names", () => {
  it("are what grants can name, in non-empty segments", () => {
    for (const ok of ["a", "chat/room-1", "x.y_z:w", "a/b/c"]) expect(isStreamName(ok), ok).toBe(true);
    for (const bad of ["", "A", "a//b", "/a", "a/", "a/../b", "..", "a b", "é", "x".repeat(257)])
      expect(isStreamName(bad), bad).toBe(false);
  });
});

describe("idempotent producers", () => {
  const p = (epoch: number, seq: number) => ({ id: "p", epoch, seq });

  it("accept the next sequence, or 0 of a new producer or of a higher epoch", () => {
    expect(judgeProducer(undefined, p(0, 0)).kind).toBe("accept");
    expect(judgeProducer(undefined, p(3, 0)).kind).toBe("accept");
    expect(judgeProducer(p(0, 4), p(0, 5)).kind).toBe("accept");
    expect(judgeProducer(p(0, 4), p(1, 0)).kind).toBe("accept");
  });

  it("answer a sequence already accepted as a duplicate naming the highest one", () => {
    expect(judgeProducer(p(0, 4), p(0, 2))).toEqual({ kind: "duplicate", highest: p(0, 4) });
    expect(judgeProducer(p(0, 4), p(0, 4))).toEqual({ kind: "duplicate", highest: p(0, 4) });
  });

  it("fence older epochs, refuse gaps and a new epoch not starting at 0", () => {
    expect(judgeProducer(p(2, 0), p(1, 7))).toEqual({ kind: "stale_epoch", epoch: 2 });
    expect(judgeProducer(p(0, 0), p(0, 2))).toEqual({ kind: "gap", expected: 1, received: 2 });
    expect(judgeProducer(undefined, p(0, 1))).toEqual({ kind: "gap", expected: 0, received: 1 });
    expect(judgeProducer(p(0, 0), p(1, 5)).kind).toBe("bad_epoch_start");
  });
});

describe("JSON appends", () => {
  it("join with commas and cut at a value count", () => {
    expect(text(joinAppends([bytes('{"a":1}'), bytes("2,3")], true))).toBe('{"a":1},2,3');
    expect(text(joinAppends([bytes("ab"), bytes("cd")], false))).toBe("abcd");
    const cut = firstValues(bytes('{"a":1},[2,3],"x"'), 2);
    expect(cut && { data: text(cut.data), items: cut.items }).toEqual({ data: '{"a":1},[2,3]', items: 2 });
    expect(firstValues(bytes("1,2"), 3)).toBeUndefined();
  });
});

describe("cursors", () => {
  it("name the current 20 s interval, and move past one the client already has", () => {
    const now = Date.UTC(2026, 0, 1);
    const current = nextCursor(undefined, now);
    expect(current).toMatch(/^\d+$/);
    expect(nextCursor(current, now + 1000)).not.toBe(current);
    expect(Number(nextCursor(current, now))).toBeGreaterThan(Number(current));
    expect(nextCursor(String(Number(current) - 5), now)).toBe(current);
  });
});

describe("SSE events", () => {
  const read = (contentType: string, data: string, over: Partial<ReadOk> = {}): ReadOk => ({
    kind: "read",
    contentType,
    next: 12,
    closed: false,
    ttlSeconds: null,
    expiresAt: null,
    data: bytes(data),
    messages: 1,
    from: 0,
    upToDate: true,
    incarnation: "i",
    ...over,
  });

  it("give every payload line its own data field, whatever its line break", () => {
    const event = sseDataEvent("text/plain", bytes("a\r\n\r\nevent: control\rdata: x\nb"));
    expect(event).toBe("event: data\ndata:a\ndata:\ndata:event: control\ndata:data: x\ndata:b\n\n");
    expect(event.slice(0, -2)).not.toContain("\n\n");
  });

  it("carry JSON as one array and other types as base64", () => {
    expect(sseDataEvent("application/json", bytes('{"a":1},2'))).toBe('event: data\ndata:[{"a":1},2]\n\n');
    expect(sseDataEvent("application/octet-stream", new Uint8Array([72, 105]))).toBe("event: data\ndata:SGk=\n\n");
    expect(isTextType("image/png")).toBe(false);
    expect(isTextType("text/plain; charset=utf-8")).toBe(true);
  });

  it("end a closed stream with streamClosed and no cursor", () => {
    const open = JSON.parse(sseControlEvent(read("text/plain", "x"), "7").split("data:")[1] as string);
    expect(open).toEqual({ streamNextOffset: formatOffset(12), streamCursor: "7", upToDate: true });
    const closed = JSON.parse(sseControlEvent(read("text/plain", "x", { closed: true }), "7").split("data:")[1] as string);
    expect(closed).toEqual({ streamNextOffset: formatOffset(12), streamClosed: true, upToDate: true });
  });
});
