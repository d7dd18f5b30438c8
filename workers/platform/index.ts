import { hostedAggregates } from "../../durable-objects/partition-log/commands/registry";
import { createApp } from "./app";
import { hostedExamples } from "./hosting";
import { handleQueue } from "./queue";
import { handleScheduled } from "./scheduled";

export { AuditTally } from "../../durable-objects/audit-tally";
export { KeyVault } from "../../durable-objects/key-vault";
export { LiveStream } from "../../durable-objects/live-stream";
export { PartitionLog } from "../../durable-objects/partition-log";
export { Processor } from "../../durable-objects/processor";
export { ReplayJob } from "../../durable-objects/replay-job";

// Before any object of this script handles a call: the aggregates whose commands partition logs run.
hostedAggregates.register(hostedExamples.flatMap((example) => example.aggregates ?? []));

const app = createApp();

export default {
  fetch: app.fetch,
  queue: handleQueue,
  scheduled: handleScheduled,
} satisfies ExportedHandler<Env>;
