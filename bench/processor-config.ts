// "./../" on purpose: the bench's build substitutes this module for every import of the shipped
// config spelled "../eventline.config" (and the like; bench/stack.mjs), so its own import of the
// shipped config must be spelled differently or it would import itself.
import shipped from "./../eventline.config";
import { defineConfig } from "../shared/config";

export { orderEventSchemas } from "./../eventline.config";

/**
 * The configuration of the bench's processor Worker (`npm run bench`, bench/processors.mjs): the
 * shipped eventline.config.ts plus one topic in, one topic out and issue 21's benchmark
 * processor, a tumbling count per key with 1-minute windows. It is compiled only into the bench's
 * own bundle (bench/stack.mjs builds the platform a second time with wrangler's `--alias`, this
 * module standing in for eventline.config.ts), so nothing here exists in the Worker that
 * `npm run build` / `wrangler deploy` produce.
 */

export const BENCH_PROCESSOR = "bench-count-per-key";
export const BENCH_INPUT_TOPIC = "bench-input";
export const BENCH_OUTPUT_TOPIC = "bench-counts";

export default defineConfig({
  ...shipped,
  topics: [
    ...shipped.topics,
    {
      name: BENCH_INPUT_TOPIC,
      // As many partitions as `orders`, the topic of the batch-ingest scenario it is compared with.
      partitions: 4,
      retentionHours: 24,
      archive: { segmentEvents: 1000, segmentSeconds: 30 },
      description: "Bench only: readings of 1,000 keys, the input of bench-count-per-key.",
    },
    {
      name: BENCH_OUTPUT_TOPIC,
      partitions: 4,
      retentionHours: 24,
      archive: { segmentEvents: 1000, segmentSeconds: 30 },
      internal: true,
      description: "Bench only: bench-count-per-key's results, one per key and minute.",
    },
  ],
  processors: [
    ...shipped.processors,
    {
      name: BENCH_PROCESSOR,
      kind: "aggregate",
      description: "Bench only: events per key per minute of event time, final once the minute (+ grace) has passed.",
      input: { topic: BENCH_INPUT_TOPIC },
      key: "/data/key",
      eventTime: "time",
      window: { type: "tumbling", size: "1m" },
      aggregates: [{ name: "count", op: "count" }],
      emit: "final",
      watermark: { outOfOrderness: "10s", idleTimeout: "10s" },
      grace: "10s",
      output: { topic: BENCH_OUTPUT_TOPIC },
    },
  ],
});
