import { describe, expect, it } from "vitest";
import { AggregateCache } from "../../durable-objects/partition-log/commands/cache";
import { SubjectLocks } from "../../durable-objects/partition-log/commands/locks";
import { AggregateRegistry } from "../../durable-objects/partition-log/commands/registry";
import config from "../../eventline.config";
import type { AnyAggregate } from "../../shared/aggregate";
import { findTopic } from "../../shared/config";
import { ordersAggregate } from "../../workers/examples/orders/aggregate";
import { counterAggregate } from "../do/counter-aggregate";

/** The pieces of the partition log's command host that hold no storage: cache, turns, registry (ADR 0040). */

const entry = (version: number, aggregate = "a") => ({ aggregate, version, state: { v: version }, snapshotVersion: 0 });

describe("AggregateCache", () => {
  it("keeps the newest version of a subject: an older offer never replaces a newer entry", () => {
    const cache = new AggregateCache(10);
    cache.offer("s", entry(3));
    cache.offer("s", entry(2));
    expect(cache.get("s")?.version).toBe(3);
    cache.offer("s", entry(4));
    expect(cache.get("s")?.version).toBe(4);
    // Another aggregate's state of the subject replaces it whatever its version.
    cache.offer("s", entry(1, "b"));
    expect(cache.get("s")).toMatchObject({ aggregate: "b", version: 1 });
  });

  it("drops the least recently used entries beyond its capacity", () => {
    const cache = new AggregateCache(2);
    cache.offer("a", entry(1));
    cache.offer("b", entry(1));
    expect(cache.get("a")?.version).toBe(1); // a is now the most recently used
    cache.offer("c", entry(1));
    expect(cache.size).toBe(2);
    expect(cache.get("b")).toBeUndefined();
    expect(cache.get("a")).toBeDefined();
    expect(cache.get("c")).toBeDefined();
    expect(() => new AggregateCache(0)).toThrow(RangeError);
  });
});

describe("SubjectLocks", () => {
  it("runs work for one subject one at a time, in arrival order; other subjects go on meanwhile", async () => {
    const locks = new SubjectLocks();
    const trace: string[] = [];
    let running = 0;
    let most = 0;
    const work = (name: string, ms: number) => async () => {
      running++;
      most = Math.max(most, running);
      trace.push(`${name}+`);
      await new Promise((r) => setTimeout(r, ms));
      trace.push(`${name}-`);
      running--;
      return name;
    };
    const results = await Promise.all([
      locks.exclusive("s", work("s1", 15)),
      locks.exclusive("s", work("s2", 1)),
      locks.exclusive("s", work("s3", 1)),
      locks.exclusive("t", work("t1", 1)),
    ]);
    expect(results).toEqual(["s1", "s2", "s3", "t1"]);
    const s = trace.filter((x) => x.startsWith("s"));
    expect(s).toEqual(["s1+", "s1-", "s2+", "s2-", "s3+", "s3-"]);
    // t1 ran while s1 held its subject.
    expect(trace.indexOf("t1-")).toBeLessThan(trace.indexOf("s1-"));
    expect(most).toBe(2);
    expect(locks.held).toBe(0);
  });

  it("hands the turn on at release(), and after a failure", async () => {
    const locks = new SubjectLocks();
    const trace: string[] = [];
    let finish = () => {};
    const first = locks.exclusive("s", async (release) => {
      trace.push("first decided");
      release();
      await new Promise<void>((r) => {
        finish = r;
      });
      trace.push("first done");
    });
    const second = locks.exclusive("s", async () => {
      trace.push("second ran");
      throw new Error("boom");
    });
    await expect(second).rejects.toThrow("boom");
    expect(trace).toEqual(["first decided", "second ran"]);
    const third = locks.exclusive("s", async () => "third");
    expect(await third).toBe("third");
    finish();
    await first;
    expect(trace).toEqual(["first decided", "second ran", "first done"]);
    expect(locks.held).toBe(0);
  });
});

describe("AggregateRegistry", () => {
  it("finds aggregates by name and refuses a second aggregate under a taken name", () => {
    const registry = new AggregateRegistry();
    registry.register([ordersAggregate as AnyAggregate, counterAggregate as AnyAggregate]);
    registry.register([ordersAggregate as AnyAggregate]); // the same one again: no change
    expect(registry.names()).toEqual(["orders", "test-counter"]);
    expect(registry.get("orders")).toBe(ordersAggregate);
    expect(registry.get("nope")).toBeUndefined();
    expect(() => registry.register([{ ...counterAggregate, name: "orders" } as AnyAggregate])).toThrow(/two aggregates are named "orders"/);
  });

  it("refuses an aggregate on a topic with sensitive fields (the partition log cannot encrypt them)", () => {
    const customers = findTopic(config, "customers");
    expect(customers).toBeDefined();
    if (customers === undefined) return;
    const registry = new AggregateRegistry();
    expect(() => registry.register([{ ...counterAggregate, name: "c", topic: customers } as AnyAggregate])).toThrow(/sensitive fields/);
    expect(registry.names()).toEqual([]);
  });
});
