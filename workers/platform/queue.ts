import config from "../../eventline.config";
import { createLogger } from "../../sdk/logger";
import { queueNameOf } from "../../shared/config";
import { recordDlqBatch } from "./consumers/dead-letters";
import { hostedConsumers } from "./consumers/hosted";
import { handleWebhookBatch } from "./consumers/webhooks";
import { WEBHOOK_QUEUE } from "./subscription-registry";

const log = createLogger({ component: "queue" });
const DLQ = /^eventline-(.+)-dlq$/;

/** Queue name → the hosted consumer of the platform-consumed subscription it delivers (from the config). */
const byQueue = new Map(
  config.subscriptions.flatMap((s) => {
    const consumer = s.consumer === "platform" ? hostedConsumers[s.name] : undefined;
    return consumer === undefined ? [] : [[queueNameOf(s.name), consumer] as const];
  }),
);

/** The platform Worker's queue() handler: routes each batch by the queue it came from. */
export async function handleQueue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const dlq = DLQ.exec(batch.queue);
  if (dlq?.[1] !== undefined) return recordDlqBatch(batch, env, dlq[1]);
  if (batch.queue === WEBHOOK_QUEUE) return handleWebhookBatch(batch, env);
  const consumer = byQueue.get(batch.queue);
  if (consumer !== undefined) return consumer.queue(batch, env);
  log.error("batch from an unknown queue: retried", { queue: batch.queue, messages: batch.messages.length });
  batch.retryAll();
}
