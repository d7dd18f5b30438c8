import { createApp } from "./app";
import { handleQueue } from "./queue";
import { handleScheduled } from "./scheduled";

export { AuditTally } from "../../durable-objects/audit-tally";
export { KeyVault } from "../../durable-objects/key-vault";
export { LiveStream } from "../../durable-objects/live-stream";
export { PartitionLog } from "../../durable-objects/partition-log";
export { ReplayJob } from "../../durable-objects/replay-job";

const app = createApp();

export default {
  fetch: app.fetch,
  queue: handleQueue,
  scheduled: handleScheduled,
} satisfies ExportedHandler<Env>;
