import { createLogger } from "../../sdk/logger";
import { activityConsumer } from "./consumers/activity";
import { recordDlqBatch } from "./consumers/dead-letters";
import { customerSummaryConsumer, ordersViewConsumer } from "./consumers/orders-projections";
import { handleWebhookBatch } from "./consumers/webhooks";
import { WEBHOOK_QUEUE } from "./subscription-registry";

const log = createLogger({ component: "queue" });
const DLQ = /^eventline-(.+)-dlq$/;

/** The platform Worker's queue() handler: routes each batch by the queue it came from. */
export async function handleQueue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const dlq = DLQ.exec(batch.queue);
  if (dlq?.[1] !== undefined) return recordDlqBatch(batch, env, dlq[1]);
  if (batch.queue === "eventline-activity") return activityConsumer.queue(batch, env);
  if (batch.queue === "eventline-orders-view") return ordersViewConsumer.queue(batch, env);
  if (batch.queue === "eventline-customer-summary") return customerSummaryConsumer.queue(batch, env);
  if (batch.queue === WEBHOOK_QUEUE) return handleWebhookBatch(batch, env);
  log.error("batch from an unknown queue: retried", { queue: batch.queue, messages: batch.messages.length });
  batch.retryAll();
}
