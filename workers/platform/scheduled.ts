import { createLogger } from "../../sdk/logger";
import { vaultShards } from "./encryption-status";

const log = createLogger({ component: "scheduled" });

/**
 * The platform Worker's scheduled() handler (wrangler.toml `[triggers] crons`): asks every KeyVault
 * shard for its KEK rotation, which arms the shard's alarm when keys are still wrapped under an
 * older KEK version. A shard also looks by itself on its first call after a deploy; the cron is
 * for shards nothing calls, and retries rotations that stopped (durable-objects/key-rotation.ts).
 * Cheap when there is nothing to do: one count per shard.
 */
export async function handleScheduled(controller: ScheduledController, env: Env): Promise<void> {
  const shards = vaultShards(env);
  const settled = await Promise.allSettled(shards.map(({ stub }) => stub.rotation()));
  let remaining = 0;
  const failed: string[] = [];
  settled.forEach((result, i) => {
    const shard = shards[i]?.name ?? String(i);
    if (result.status === "rejected") {
      failed.push(shard);
      log.error("KEK rotation check failed", { cron: controller.cron, shard, error: result.reason });
      return;
    }
    const { rotation } = result.value;
    remaining += rotation.remaining;
    if (rotation.state === "stalled") log.warn("KEK rotation stalled", { shard, current: rotation.current, error: rotation.error });
  });
  if (remaining > 0) log.info("KEK rotation in progress", { cron: controller.cron, remaining });
  // A failed run shows as such in the Cron Trigger's history; the next run tries every shard again.
  if (failed.length > 0) throw new Error(`KEK rotation check failed on ${failed.join(", ")}`);
}
