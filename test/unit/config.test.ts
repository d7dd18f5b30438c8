import { describe, expect, it } from "vitest";
import { z } from "zod";
import config from "../../eventline.config";
import { ConfigError, defineConfig } from "../../shared/config";

const base = {
  topics: [{ name: "t", partitions: 2, retentionHours: 1 }],
  limits: { maxBodyBytes: 1_048_576, maxEventBytes: 65_536, maxBatchEvents: 500 },
  partitionLog: { maxInFlightAppends: 8, retryAfterSeconds: 1 },
  read: { defaultLimit: 100, maxLimit: 1000 },
};

describe("config", () => {
  it("ships topic events (4 partitions, any type) and orders (schemas per type)", () => {
    const events = config.topics.find((t) => t.name === "events");
    const orders = config.topics.find((t) => t.name === "orders");
    expect(events).toMatchObject({ partitions: 4, strictTypes: false, schemas: {} });
    expect(orders?.strictTypes).toBe(true);
    expect(Object.keys(orders?.schemas ?? {})).toEqual(
      expect.arrayContaining(["orders.placed", "orders.paid", "orders.shipped", "orders.cancelled"]),
    );
  });

  it("accepts a valid declaration and fills defaults", () => {
    const cfg = defineConfig(base);
    expect(cfg.topics[0]).toMatchObject({ strictTypes: false, schemas: {} });
  });

  it.each([
    [{ ...base, topics: [{ name: "Bad Name", partitions: 2, retentionHours: 1 }] }, "topics[0].name"],
    [{ ...base, topics: [{ name: "t", partitions: 0, retentionHours: 1 }] }, "topics[0].partitions"],
    [{ ...base, topics: [{ name: "t", partitions: 1.5, retentionHours: 1 }] }, "topics[0].partitions"],
    [{ ...base, topics: [base.topics[0], base.topics[0]] }, "topics[1].name: duplicate topic name"],
    [{ ...base, topics: [{ name: "t", partitions: 1, retentionHours: 1, schemas: { x: "not zod" } }] }, "topics[0].schemas.x"],
    [{ ...base, topics: [{ name: "t", partitions: 1, retentionHours: 1, strictTypes: true }] }, "topics[0].strictTypes"],
    [{ ...base, topics: [{ name: "t", partitions: 1, retentionHours: 1, partitons: 3 }] }, "topics[0]: Unrecognized key"],
    [{ ...base, limits: { ...base.limits, maxEventBytes: 2_000_000 } }, "limits.maxEventBytes"],
    [{ ...base, topics: [] }, "topics"],
  ])("rejects an invalid declaration with a message naming the field (%#)", (input, fragment) => {
    expect(() => defineConfig(input as never)).toThrow(ConfigError);
    expect(() => defineConfig(input as never)).toThrow(fragment);
  });

  it("schemas are real zod schemas", () => {
    const cfg = defineConfig({
      ...base,
      topics: [{ name: "t", partitions: 1, retentionHours: 1, schemas: { a: z.object({ n: z.number() }) } }],
    });
    expect(cfg.topics[0]?.schemas.a?.safeParse({ n: 1 }).success).toBe(true);
  });
});
