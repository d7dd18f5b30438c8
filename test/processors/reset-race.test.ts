import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Processor } from "../../durable-objects/processor";
import { expectAccepted, postBatch, waitFor } from "../helpers";
import { minute, paid, view } from "./fixtures";

/**
 * A reset that lands while an instance is reading a page of its backfill from the input topic
 * (ADR 0058) must not have that page applied on top of the fresh state, or the rebuilt state
 * would miss or double what came before it. The instance reads 16 input events per backfill step
 * here (2,000 in production), so a few events make several pages.
 */

const EVENTS = 240;
const POSTS = 8;
const PROCESSOR = "revenue-per-minute";

describe("reset during a backfill", () => {
  it("rebuilds from the first event when a reset comes in while a later page of the input topic is being read", {
    timeout: 120_000,
  }, async () => {
    // One key, one instance: every event lands in the same internal partition, in one open window.
    const events = Array.from({ length: EVENTS }, (_, i) => paid(`race-${i}`, "EUR", 1, minute(30) + (i % 50) * 1_000));
    const per = EVENTS / POSTS;
    for (let i = 0; i < events.length; i += per) await expectAccepted(await postBatch("orders", events.slice(i, i + per)));
    const settled = await waitFor(
      () => view(PROCESSOR),
      (v) => v.partitions.some((p) => p.inputsApplied === EVENTS && p.applied === p.head && p.head >= POSTS),
      90_000,
    );
    const partition = settled.partitions.find((p) => p.inputsApplied === EVENTS);
    if (partition === undefined) throw new Error(`no instance got the ${EVENTS} events`);
    const instance = partition.partition;
    const head = partition.head;

    const stub = env.PROCESSOR.getByName(`${PROCESSOR}/${instance}`);
    await runInDurableObject(stub, async (object: Processor) => {
      // The first read of a later page of the raced topic lets a reset in before it answers.
      let raced = false;
      const logs = env.PARTITION_LOG;
      const racing = {
        ...env,
        PARTITION_LOG: {
          getByName: (name: string) => {
            const real = logs.getByName(name);
            return {
              read: async (from: number, limit: number) => {
                if (from > 1 && !raced && name.startsWith("orders/")) {
                  raced = true;
                  await object.reset({ processor: PROCESSOR, instance });
                }
                return real.read(from, limit);
              },
              append: (input: Parameters<typeof real.append>[0]) => real.append(input),
              stats: () => real.stats(),
            };
          },
        },
      };
      Object.defineProperty(object, "env", { value: racing });
      object.testing.catchUpPage = 2;
      object.testing.backfillStep = 16;
      await object.reset({ processor: PROCESSOR, instance });
      // Catch-up runs from the alarm; each run reads at most 5 pages, so run it until it is done.
      for (let i = 0; i < 50 && (await object.status({ processor: PROCESSOR, instance })).catchingUp; i++) await object.alarm();
      expect(raced).toBe(true);
      const status = await object.status({ processor: PROCESSOR, instance });
      expect(status.catchingUp).toBe(false);
      expect(status.applied).toBe(head);
      // Every event of the partition is in the rebuilt state, once: none was skipped by the race.
      expect(status.counters.accepted).toBe(EVENTS);
      expect(status.openWindows).toBe(1);
    });
  });
});
