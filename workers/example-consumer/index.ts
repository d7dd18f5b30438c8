import { z } from "zod";
import config from "../../eventline.config";
import { defineConsumer, resolveFromLog } from "../../sdk";

/**
 * Example consumer: counts greetings per subject. Everything that makes it safe — validation,
 * idempotency, ordering, retries with backoff, circuit breaking, dead letters — is the SDK's.
 */

const subscription = config.subscriptions.find((s) => s.name === "greetings");
if (subscription === undefined) throw new Error("eventline.config.ts must declare the greetings subscription");

const greeting = z.object({ message: z.string().min(1).max(500) });

export const greetingsConsumer = defineConsumer<ExampleConsumerEnv, z.infer<typeof greeting>>({
  subscription: subscription.name,
  db: (env) => env.DB,
  schema: greeting,
  maxRetries: subscription.maxRetries,
  ordering: subscription.ordering,
  backoff: subscription.backoff,
  circuitBreaker: subscription.circuitBreaker,
  resolveRef: resolveFromLog((env) => env.PARTITION_LOG),
  // Returned statements commit in one D1 batch with the SDK's idempotency record: exactly once.
  handle: async (event, { db, delivery }) => [
    db
      .prepare(
        `INSERT INTO greetings (subject, greetings, last_message, last_sequence) VALUES (?, 1, ?, ?)
         ON CONFLICT (subject) DO UPDATE SET greetings = greetings + 1, last_message = excluded.last_message, last_sequence = excluded.last_sequence`,
      )
      .bind(typeof event.subject === "string" ? event.subject : "(nobody)", event.data.message, delivery.sequence),
  ],
});

export default {
  queue: (batch, env) => greetingsConsumer.queue(batch, env),
} satisfies ExportedHandler<ExampleConsumerEnv>;
