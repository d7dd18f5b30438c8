import config from "../../../eventline.config";
import { type Consumer, type ConsumerOptions, defineConsumer, resolveFromLog } from "../../../sdk/consumer";
import { fieldDecryption } from "../../../shared/security/fields";

/**
 * An SDK consumer for a subscription declared in eventline.config.ts and hosted by the platform
 * Worker: retries, ordering, backoff and breaker come from the config, events sent by reference
 * are read from the partition logs, effects go to the platform's D1 database.
 */
export function configuredConsumer(
  name: string,
  handle: ConsumerOptions<Env, unknown>["handle"],
  more: Pick<ConsumerOptions<Env, unknown>, "handleBatch" | "settlement"> = {},
): Consumer<Env> {
  const subscription = config.subscriptions.find((s) => s.name === name);
  if (subscription === undefined) throw new Error(`eventline.config.ts must declare the ${name} subscription`);
  return defineConsumer<Env>({
    subscription: subscription.name,
    db: (env) => env.DB,
    maxRetries: subscription.maxRetries,
    ordering: subscription.ordering,
    backoff: subscription.backoff,
    circuitBreaker: subscription.circuitBreaker,
    resolveRef: resolveFromLog((env) => env.PARTITION_LOG),
    // Only a subscription the operator marked `decrypt` sees plaintext of sensitive fields.
    ...(subscription.decrypt ? { decrypt: fieldDecryption((env: Env) => env.KEY_VAULT) } : {}),
    handle,
    ...more,
  });
}
