import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import exampleWorker from "../../workers/example-consumer/index";

/** The example Worker's queue() handler, called the way Queues calls it (unit layer). */
export async function deliver(bodies: unknown[], attempts = 1) {
  const batch = createMessageBatch(
    "eventline-greetings",
    bodies.map((body, i) => ({ id: `m-${i}-${crypto.randomUUID()}`, timestamp: new Date(), attempts, body })),
  );
  const ctx = createExecutionContext();
  // The example declares its own Env; the test env has the same DB and PARTITION_LOG bindings.
  await exampleWorker.queue(batch, env as unknown as ExampleConsumerEnv);
  return getQueueResult(batch, ctx);
}

/** The greetings row of `subject` (null: never greeted). */
export const row = (subject: string) =>
  env.DB.prepare("SELECT greetings, last_message, last_sequence FROM greetings WHERE subject = ?")
    .bind(subject)
    .first<{ greetings: number; last_message: string; last_sequence: number }>();
