import { parse } from "smol-toml";
import { describe, expect, it } from "vitest";
import config from "../../eventline.config";
import { checkWranglerConfig } from "../../shared/doctor";
import exampleToml from "../../workers/example-consumer/wrangler.toml?raw";
import wranglerToml from "../../wrangler.toml?raw";

const wrangler = parse(wranglerToml) as Parameters<typeof checkWranglerConfig>[1];
const consumerConfigs = { "workers/example-consumer/wrangler.toml": parse(exampleToml) as Parameters<typeof checkWranglerConfig>[1] };

describe("eventline.config.ts and wrangler.toml agree", () => {
  it("the shipped files agree", () => {
    expect(checkWranglerConfig(config, wrangler, consumerConfigs)).toEqual([]);
  });

  it("a subscription consumed by another Worker is checked against that Worker's config", () => {
    expect(checkWranglerConfig(config, wrangler)).toEqual([
      "subscription greetings: consumer config workers/example-consumer/wrangler.toml was not checked (not found)",
    ]);
    const broken = structuredClone(consumerConfigs["workers/example-consumer/wrangler.toml"]);
    broken.queues = { consumers: [{ queue: "eventline-greetings", max_retries: 5, dead_letter_queue: "eventline-greetings-dlq" }] };
    expect(checkWranglerConfig(config, wrangler, { "workers/example-consumer/wrangler.toml": broken })).toEqual([
      "subscription greetings: max_retries is 5 in wrangler.toml but must be 25 (maxRetries 5 + 20 ordering deferrals)",
    ]);
  });

  it("a missing partition-log binding or a non-SQLite class is reported", () => {
    const broken = structuredClone(wrangler);
    broken.durable_objects = { bindings: [] };
    broken.migrations = [{ tag: "v1", new_classes: ["PartitionLog"] }];
    expect(checkWranglerConfig(config, broken, consumerConfigs)).toEqual([
      "durable_objects.bindings has no PARTITION_LOG",
      "PartitionLog must be in a migration's new_sqlite_classes (it is in new_classes: SQLite storage is required)",
    ]);
  });

  it("a D1 binding without the migrations folder is reported", () => {
    const broken = structuredClone(wrangler);
    broken.d1_databases = [{ binding: "DB", migrations_dir: "drizzle" }];
    expect(checkWranglerConfig(config, broken, consumerConfigs)).toEqual(['DB migrations_dir must be "migrations" (is drizzle)']);
  });

  it("a subscription whose queues disagree with the config is reported", () => {
    const broken = structuredClone(wrangler);
    const consumers = broken.queues?.consumers ?? [];
    broken.queues = {
      producers: (broken.queues?.producers ?? []).filter((p) => p.binding !== "SUB_ACTIVITY"),
      consumers: consumers
        .filter((c) => c.queue !== "eventline-activity-dlq")
        .map((c) => (c.queue === "eventline-activity" ? { ...c, max_retries: 9 } : c)),
    };
    expect(checkWranglerConfig(config, broken, consumerConfigs)).toEqual([
      "subscription activity: no [[queues.producers]] with binding SUB_ACTIVITY",
      "subscription activity: max_retries is 9 in wrangler.toml but must be 3",
      "subscription activity: no [[queues.consumers]] for eventline-activity-dlq (dead letters would go unrecorded)",
    ]);
  });

  it("the webhook delivery queue must be declared with its retries and DLQ", () => {
    const broken = structuredClone(wrangler);
    broken.queues = {
      producers: broken.queues?.producers ?? [],
      consumers: (broken.queues?.consumers ?? []).filter((c) => !String(c.queue).startsWith("eventline-webhooks")),
    };
    expect(checkWranglerConfig(config, broken, consumerConfigs)).toEqual([
      'webhooks: [[queues.consumers]] for eventline-webhooks needs max_retries = 10 and dead_letter_queue = "eventline-webhooks-dlq"',
      "webhooks: no [[queues.consumers]] for eventline-webhooks-dlq",
    ]);
  });
});
