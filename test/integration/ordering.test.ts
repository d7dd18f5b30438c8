import { describe, expect, it } from "vitest";
import { partitionFor } from "../../shared/partitioner";
import { allHeads, event, expectAccepted, postBatch, postStructured, readAll } from "../helpers";

describe("ordering under concurrency", () => {
  it("many concurrent producers to one partition: contiguous sequences, each id once, all readable", async () => {
    const key = "hot-key";
    const partition = partitionFor({ id: "", partitionkey: key }, 4);
    const headBefore = (await allHeads()).events?.[partition] ?? -1;

    const singles = Array.from({ length: 150 }, (_, i) => event({ id: `single-${i}`, partitionkey: key }));
    const batches = Array.from({ length: 10 }, (_, b) =>
      Array.from({ length: 10 }, (_, i) => event({ id: `batch-${b}-${i}`, partitionkey: key })),
    );
    const responses = await Promise.all([
      ...singles.map((e) => postStructured("events", e)),
      ...batches.map((b) => postBatch("events", b)),
    ]);
    const acks = (await Promise.all(responses.map(expectAccepted))).flat();

    expect(acks).toHaveLength(250);
    expect(new Set(acks.map((a) => a.partition))).toEqual(new Set([partition]));
    expect(acks.every((a) => !a.duplicate)).toBe(true);
    const sequences = acks.map((a) => a.sequence).sort((a, b) => a - b);
    expect(sequences).toEqual(Array.from({ length: 250 }, (_, i) => headBefore + 1 + i));

    // A batch is one transaction: its events hold consecutive sequences, in request order.
    for (const batch of batches) {
      const seqs = batch.map((e) => acks.find((a) => a.id === e.id)?.sequence ?? -1);
      expect(seqs).toEqual(Array.from({ length: 10 }, (_, i) => (seqs[0] ?? 0) + i));
    }

    const stored = await readAll("events", partition, 64);
    const ours = stored.filter((e) => String(e.id).startsWith("single-") || String(e.id).startsWith("batch-"));
    expect(ours.map((e) => e.id).sort()).toEqual(acks.map((a) => a.id).sort());
    expect(stored.map((e) => Number(e.sequence))).toEqual(Array.from({ length: stored.length }, (_, i) => i + 1));
    for (const a of acks) expect(Number(stored[a.sequence - 1]?.sequence)).toBe(a.sequence);
    expect((await allHeads()).events?.[partition]).toBe(headBefore + 250);
  });

  it("events of one subject keep their order across partitions of a mixed batch", async () => {
    const events = Array.from({ length: 60 }, (_, i) =>
      event({ id: `mixed-${i}`, subject: `subject-${i % 6}`, data: { step: Math.floor(i / 6) } }),
    );
    const acks = await expectAccepted(await postBatch("events", events));
    for (let s = 0; s < 6; s++) {
      const mine = acks.filter((_, i) => i % 6 === s);
      expect(new Set(mine.map((a) => a.partition)).size).toBe(1);
      const seqs = mine.map((a) => a.sequence);
      expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    }
  });
});
