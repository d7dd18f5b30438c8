import {
  dlqNameOf,
  type EventlineConfig,
  queueMaxRetries,
  queueNameOf,
  WEBHOOK_MAX_RETRIES,
  WEBHOOK_QUEUE,
  WEBHOOK_QUEUE_BINDING,
} from "./config";

/**
 * Cross-checks the Eventline config against the parsed wrangler.toml: every binding and class
 * the code relies on must be declared there. Returns human-readable problems (empty = agree).
 */

interface WranglerConfig {
  main?: unknown;
  durable_objects?: { bindings?: { name?: unknown; class_name?: unknown }[] };
  migrations?: { tag?: unknown; new_sqlite_classes?: unknown[]; new_classes?: unknown[] }[];
  d1_databases?: { binding?: unknown; migrations_dir?: unknown }[];
  queues?: {
    producers?: { binding?: unknown; queue?: unknown }[];
    consumers?: { queue?: unknown; max_retries?: unknown; dead_letter_queue?: unknown }[];
  };
}

export const REQUIRED_DURABLE_OBJECTS = [{ binding: "PARTITION_LOG", className: "PartitionLog" }] as const;

/**
 * `consumerConfigs` holds the parsed wrangler config of every Worker named as a subscription's
 * `consumer` (by that path); the platform's is `wrangler`.
 */
export function checkWranglerConfig(
  config: EventlineConfig,
  wrangler: WranglerConfig,
  consumerConfigs: Record<string, WranglerConfig> = {},
): string[] {
  const problems: string[] = [];
  if (wrangler.main !== "workers/platform/index.ts") problems.push(`main must be workers/platform/index.ts (is ${String(wrangler.main)})`);
  const bindings = wrangler.durable_objects?.bindings ?? [];
  const sqliteClasses = new Set((wrangler.migrations ?? []).flatMap((m) => m.new_sqlite_classes ?? []));
  const kvClasses = new Set((wrangler.migrations ?? []).flatMap((m) => m.new_classes ?? []));
  for (const { binding, className } of REQUIRED_DURABLE_OBJECTS) {
    const found = bindings.find((b) => b.name === binding);
    if (found === undefined) problems.push(`durable_objects.bindings has no ${binding}`);
    else if (found.class_name !== className) problems.push(`${binding} must bind class ${className} (binds ${String(found.class_name)})`);
    if (!sqliteClasses.has(className)) {
      problems.push(
        `${className} must be in a migration's new_sqlite_classes${kvClasses.has(className) ? " (it is in new_classes: SQLite storage is required)" : ""}`,
      );
    }
  }
  const db = (wrangler.d1_databases ?? []).find((d) => d.binding === "DB");
  if (db === undefined) problems.push("d1_databases has no DB binding");
  else if (db.migrations_dir !== "migrations") problems.push(`DB migrations_dir must be "migrations" (is ${String(db.migrations_dir)})`);
  if (config.topics.length === 0) problems.push("config declares no topics");

  const producers = wrangler.queues?.producers ?? [];
  const consumers = wrangler.queues?.consumers ?? [];
  for (const sub of config.subscriptions) {
    const queue = queueNameOf(sub.name);
    const dlq = dlqNameOf(sub.name);
    const producer = producers.find((p) => p.binding === sub.queue);
    if (producer === undefined) problems.push(`subscription ${sub.name}: no [[queues.producers]] with binding ${sub.queue}`);
    else if (producer.queue !== queue)
      problems.push(`subscription ${sub.name}: binding ${sub.queue} must send to ${queue} (sends to ${String(producer.queue)})`);
    const consumerConfig = sub.consumer === "platform" ? wrangler : consumerConfigs[sub.consumer];
    const consumer = consumerConfig?.queues?.consumers?.find((c) => c.queue === queue);
    if (consumerConfig === undefined) {
      problems.push(`subscription ${sub.name}: consumer config ${sub.consumer} was not checked (not found)`);
    } else if (consumer === undefined) {
      problems.push(
        `subscription ${sub.name}: no [[queues.consumers]] for ${queue} in ${sub.consumer === "platform" ? "wrangler.toml" : sub.consumer}`,
      );
    } else {
      const expected = queueMaxRetries(sub);
      if (consumer.max_retries !== expected) {
        const why = sub.ordering === "partition" ? ` (maxRetries ${sub.maxRetries} + ${expected - sub.maxRetries} ordering deferrals)` : "";
        problems.push(
          `subscription ${sub.name}: max_retries is ${String(consumer.max_retries)} in wrangler.toml but must be ${expected}${why}`,
        );
      }
      if (consumer.dead_letter_queue !== dlq) problems.push(`subscription ${sub.name}: dead_letter_queue must be ${dlq}`);
    }
    if (!consumers.some((c) => c.queue === dlq))
      problems.push(`subscription ${sub.name}: no [[queues.consumers]] for ${dlq} (dead letters would go unrecorded)`);
  }
  const webhookProducer = producers.find((p) => p.binding === WEBHOOK_QUEUE_BINDING);
  if (webhookProducer?.queue !== WEBHOOK_QUEUE)
    problems.push(`webhooks: [[queues.producers]] ${WEBHOOK_QUEUE_BINDING} must send to ${WEBHOOK_QUEUE}`);
  const webhookConsumer = consumers.find((c) => c.queue === WEBHOOK_QUEUE);
  if (webhookConsumer?.max_retries !== WEBHOOK_MAX_RETRIES || webhookConsumer.dead_letter_queue !== `${WEBHOOK_QUEUE}-dlq`) {
    problems.push(
      `webhooks: [[queues.consumers]] for ${WEBHOOK_QUEUE} needs max_retries = ${WEBHOOK_MAX_RETRIES} and dead_letter_queue = "${WEBHOOK_QUEUE}-dlq"`,
    );
  }
  if (!consumers.some((c) => c.queue === `${WEBHOOK_QUEUE}-dlq`))
    problems.push(`webhooks: no [[queues.consumers]] for ${WEBHOOK_QUEUE}-dlq`);
  return problems;
}
