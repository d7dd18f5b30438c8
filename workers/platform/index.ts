import { createApp } from "./app";

export { PartitionLog } from "../../durable-objects/partition-log";

const app = createApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
