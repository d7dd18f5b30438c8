import { partitionName } from "../../sdk/partition-name";
import { type PreparedEvent, toAppendEvent } from "../../workers/platform/ingest/parse";

/**
 * Appends prepared events to their partitions (one call per partition touched), as the
 * processor's feeds and outputs do: idempotent by (source, id), so a call sent again after a
 * crash appends nothing twice. Throws when a partition refused or failed (nothing is lost: the
 * caller keeps what it sent and sends it again).
 */
export async function appendPrepared(env: Env, topic: string, prepared: PreparedEvent[]): Promise<void> {
  const byPartition = new Map<number, PreparedEvent[]>();
  for (const p of prepared) {
    const list = byPartition.get(p.partition);
    if (list === undefined) byPartition.set(p.partition, [p]);
    else list.push(p);
  }
  await Promise.all(
    [...byPartition].map(async ([partition, events]) => {
      const result = await env.PARTITION_LOG.getByName(partitionName(topic, partition)).append({
        topic,
        partition,
        events: events.map(toAppendEvent),
      });
      if (!result.ok) throw new Error(`append to ${topic}/${partition} refused: ${result.code}: ${result.detail}`);
    }),
  );
}
