import { z } from "zod";
import config from "../../eventline.config";
import { defineConsumer, PermanentError, resolveFromLog } from "../../sdk";

/**
 * Example consumer: counts greetings per subject. Everything that makes it safe — validation,
 * idempotency, ordering, retries with backoff, circuit breaking, dead letters — is the SDK's.
 *
 * Failure on demand, to watch that machinery work (README "Watch a failure handled"): a greeting
 * whose data carries `fail` makes the handler throw —
 *   `"fail": N` (1-10)        its first N delivery attempts fail (a transient error: retried with
 *                             backoff), then it is handled; N above the subscription's maxRetries
 *                             (5) ends in the DLQ, reason max_retries;
 *   `"fail": "until-redrive"` a permanent error (PermanentError: dead-lettered at once, reason
 *                             permanent) until an operator redrives the letter, which is handled;
 *   `"fail": "always"`        a transient error on every attempt, a redrive's too (a poison event).
 */

const subscription = config.subscriptions.find((s) => s.name === "greetings");
if (subscription === undefined) throw new Error("eventline.config.ts must declare the greetings subscription");

const greeting = z.object({
  message: z.string().min(1).max(500),
  fail: z.union([z.int().min(1).max(10), z.literal("until-redrive"), z.literal("always")]).optional(),
});
type Greeting = z.infer<typeof greeting>;

/** The error this delivery of `data` fails with (see above), or undefined when it is handled. */
export function failureAsked(data: Greeting, attempts: number, redriven: boolean): Error | undefined {
  const { fail } = data;
  if (fail === undefined) return undefined;
  if (fail === "always") return new Error('failing on demand: data.fail is "always"');
  if (fail === "until-redrive")
    return redriven ? undefined : new PermanentError('failing on demand until redriven: data.fail is "until-redrive"');
  return attempts <= fail ? new Error(`failing on demand: attempt ${attempts} of the first ${fail} (data.fail)`) : undefined;
}

export const greetingsConsumer = defineConsumer<ExampleConsumerEnv, Greeting>({
  subscription: subscription.name,
  db: (env) => env.DB,
  schema: greeting,
  maxRetries: subscription.maxRetries,
  ordering: subscription.ordering,
  backoff: subscription.backoff,
  circuitBreaker: subscription.circuitBreaker,
  resolveRef: resolveFromLog((env) => env.PARTITION_LOG),
  // Returned statements commit in one D1 batch with the SDK's idempotency record: exactly once.
  handle: async (event, { db, delivery, attempts }) => {
    const failure = failureAsked(event.data, attempts, delivery.redrive !== undefined);
    if (failure !== undefined) throw failure;
    return [
      db
        .prepare(
          `INSERT INTO greetings (subject, greetings, last_message, last_sequence) VALUES (?, 1, ?, ?)
         ON CONFLICT (subject) DO UPDATE SET greetings = greetings + 1, last_message = excluded.last_message, last_sequence = excluded.last_sequence`,
        )
        .bind(typeof event.subject === "string" ? event.subject : "(nobody)", event.data.message, delivery.sequence),
    ];
  },
});

export default {
  queue: (batch, env) => greetingsConsumer.queue(batch, env),
} satisfies ExportedHandler<ExampleConsumerEnv>;
