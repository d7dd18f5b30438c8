import { evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { partitionFor } from "../../shared/partitioner";
import { allHeads, event, expectAccepted, expectProblem, postBatch, postStructured, readAll } from "../helpers";

const headOf = async (partition: number) => (await allHeads()).events?.[partition] ?? -1;

describe("idempotent producer", () => {
  it("a sequential retry returns the original position with duplicate: true and stores nothing", async () => {
    const ev = event({ id: "retry-1" });
    const [first] = await expectAccepted(await postStructured("events", ev));
    const head = await headOf(first?.partition ?? -1);
    const [second] = await expectAccepted(
      await postStructured("events", ev, { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" }),
    );
    expect(second).toEqual({ ...first, duplicate: true });
    expect(await headOf(first?.partition ?? -1)).toBe(head);
  });

  it("identical content in another key order is still the same event", async () => {
    const [first] = await expectAccepted(
      await postStructured("events", { specversion: "1.0", id: "order-1", source: "/o", type: "t", data: { a: 1, b: 2 } }),
    );
    const [again] = await expectAccepted(
      await postStructured("events", { data: { b: 2, a: 1 }, type: "t", source: "/o", id: "order-1", specversion: "1.0" }),
    );
    expect(again).toEqual({ ...first, duplicate: true });
  });

  it("concurrent duplicates: exactly one is stored, all get the same sequence", async () => {
    const ev = event({ id: "concurrent-dup" });
    const partition = partitionFor({ id: "concurrent-dup" }, 4);
    const head = await headOf(partition);
    const acks = (await Promise.all(Array.from({ length: 25 }, () => postStructured("events", ev).then(expectAccepted)))).flat();
    expect(acks.filter((a) => !a.duplicate)).toHaveLength(1);
    expect(new Set(acks.map((a) => a.sequence))).toEqual(new Set([head + 1]));
    expect(await headOf(partition)).toBe(head + 1);
    expect((await readAll("events", partition)).filter((e) => e.id === "concurrent-dup")).toHaveLength(1);
  });

  it("a retry after the partition object is evicted is still recognised", async () => {
    const ev = event({ id: "evicted-retry" });
    const [first] = await expectAccepted(await postStructured("events", ev));
    const partition = first?.partition ?? -1;
    await evictDurableObject(env.PARTITION_LOG.getByName(`events/${partition}`));
    const [retry] = await expectAccepted(await postStructured("events", ev));
    expect(retry).toEqual({ ...first, duplicate: true });
    const [fresh] = await expectAccepted(await postStructured("events", event({ id: "after-evict", partitionkey: "evicted-retry" })));
    expect(fresh?.partition).toBe(partition);
    expect(fresh?.sequence).toBe((first?.sequence ?? 0) + 1);
  });

  it("the same source+id with different content is a 409 that stores nothing", async () => {
    const [first] = await expectAccepted(await postStructured("events", event({ id: "conflict-1", data: { v: 1 } })));
    const head = await headOf(first?.partition ?? -1);
    const problem = await expectProblem(await postStructured("events", event({ id: "conflict-1", data: { v: 2 } })), 409);
    expect(problem.code).toBe("duplicate_conflict");
    expect(problem.detail).toContain(`sequence ${first?.sequence}`);
    expect(await headOf(first?.partition ?? -1)).toBe(head);
    // A different source makes it a different event.
    await expectAccepted(await postStructured("events", event({ id: "conflict-1", source: "/other", data: { v: 2 } })));
  });

  it("retrying a batch stores only what is new", async () => {
    const a = event({ id: "ba-a" });
    const b = event({ id: "ba-b" });
    const c = event({ id: "ba-c" });
    const firstAcks = await expectAccepted(await postBatch("events", [a, b]));
    const retryAcks = await expectAccepted(await postBatch("events", [a, b, c]));
    expect(retryAcks.slice(0, 2)).toEqual(firstAcks.map((x) => ({ ...x, duplicate: true })));
    expect(retryAcks[2]?.duplicate).toBe(false);
  });

  it("a batch that fails in one partition reports per event what was stored; the corrected retry is safe", async () => {
    // Occupy an id in one partition, then send a batch spanning partitions that conflicts there.
    const taken = event({ id: "taken", partitionkey: "pk-taken", data: { v: 1 } });
    const [takenAck] = await expectAccepted(await postStructured("events", taken));
    const others = Array.from({ length: 12 }, (_, i) => event({ id: `span-${i}` })).filter(
      (e) => partitionFor({ id: String(e.id) }, 4) !== takenAck?.partition,
    );
    const batch = [...others, { ...taken, data: { v: 2 } }];
    const headsBefore = await allHeads();
    const problem = await expectProblem(await postBatch("events", batch), 409);
    const outcomes = problem.events as { id: string; status: string; partition: number; sequence?: number }[];
    expect(outcomes).toHaveLength(batch.length);
    expect(outcomes.filter((o) => o.status === "stored").map((o) => o.id)).toEqual(others.map((e) => e.id));
    expect(outcomes.find((o) => o.id === "taken")?.status).toBe("not_stored");
    const headsAfter = await allHeads();
    expect(headsAfter.events?.[takenAck?.partition ?? -1]).toBe(headsBefore.events?.[takenAck?.partition ?? -1]);
    const storedCount = (headsAfter.events ?? []).reduce((s, h) => s + h, 0) - (headsBefore.events ?? []).reduce((s, h) => s + h, 0);
    expect(storedCount).toBe(others.length);

    const retry = await expectAccepted(await postBatch("events", [...others, taken]));
    expect(retry.every((r) => r.duplicate)).toBe(true);
    expect(retry.map((r) => r.sequence)).toEqual([
      ...outcomes.filter((o) => o.status === "stored").map((o) => o.sequence),
      takenAck?.sequence,
    ]);
  });
});
