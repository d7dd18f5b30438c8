import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { PartitionLog } from "../../durable-objects/partition-log";
import { gunzip, segmentLines } from "../../durable-objects/partition-log/archive/format";
import { event, expectAccepted, partitionKeyFor, postBatch } from "../helpers";

/**
 * Where a segment ends: at `segmentEvents` events, or sooner once its stored text passes the size
 * bound (seam `segmentMaxChars`; about 8 MiB in production), never with no event at all.
 */

const TOPIC = "events";
const PARTITION = 2;
const stub = () => env.PARTITION_LOG.getByName(`${TOPIC}/${PARTITION}`);

describe("archive segment size", () => {
  it("cuts a segment before the event that would take its text past the bound, and seals each event once", async () => {
    const key = partitionKeyFor(PARTITION, 4, "segment-size");
    // Events of different sizes, so the cuts fall at different counts.
    const sizes = [10, 400, 50, 900, 2_000, 30, 30, 600, 700];
    await expectAccepted(
      await postBatch(
        TOPIC,
        sizes.map((n, i) => event({ partitionkey: key, data: { i, pad: "x".repeat(n) } })),
      ),
    );
    const bodies = (await stub().read(1, 1000)).events;
    expect(bodies).toHaveLength(sizes.length);

    const max = 1_500;
    await runInDurableObject(stub(), (instance: PartitionLog) => {
      instance.testing.segmentMaxChars = max;
      instance.testing.segmentEvents = 4;
    });
    const result = await stub().archiveNow();

    // The expected cuts, worked out from the stored text: at most 4 events, text ≤ max unless one event alone.
    const expected: [number, number][] = [];
    let first = 1;
    let chars = 0;
    for (const [i, body] of bodies.entries()) {
      const sequence = i + 1;
      if (sequence > first && (chars + body.length > max || sequence - first >= 4)) {
        expected.push([first, sequence - 1]);
        first = sequence;
        chars = 0;
      }
      chars += body.length;
    }
    expected.push([first, bodies.length]);
    expect(expected.length).toBeGreaterThan(3);
    expect(result.sealed.map((s) => [s.first, s.last])).toEqual(expected);

    // Each segment holds exactly its events' stored text, in order.
    const archived: string[] = [];
    for (const segment of result.sealed) {
      const object = await env.ARCHIVE.get(segment.key);
      archived.push(...segmentLines(await gunzip(await (object as R2ObjectBody).arrayBuffer())));
    }
    expect(archived).toEqual(bodies);
  });
});
