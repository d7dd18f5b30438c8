import { describe, expect, it } from "vitest";
import { parsePartitionName, partitionName } from "../../sdk/partition-name";

describe("partition object names", () => {
  it("keep the stored format <topic>/<partition>: existing objects are found only under it", () => {
    expect(partitionName("orders", 0)).toBe("orders/0");
    expect(partitionName("a.b_c-d", 15)).toBe("a.b_c-d/15");
  });

  it("parse back to the same topic and partition", () => {
    for (const [topic, partition] of [
      ["orders", 0],
      ["events", 7],
      ["x", 123_456],
    ] as const) {
      expect(parsePartitionName(partitionName(topic, partition))).toEqual({ topic, partition });
    }
  });

  it("refuse names that partitionName cannot have made", () => {
    for (const name of ["", "orders", "/0", "orders/", "orders/-1", "orders/01", "orders/1.5", "orders/x", "orders/1e3"]) {
      expect(parsePartitionName(name), name).toBeUndefined();
    }
  });
});
