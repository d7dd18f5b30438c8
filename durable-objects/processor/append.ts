import { partitionName } from "../../sdk/partition-name";
import { type PreparedEvent, toAppendEvent } from "../../workers/platform/ingest/parse";

/**
 * Appends prepared events to their partitions (one call per partition touched), as the
 * processor's feeds and outputs do: idempotent by (source, id), so a call sent again after a
 * crash appends nothing twice. Throws when a partition refused or failed (nothing is lost: the
 * caller keeps what it sent and sends it again).
 */
/** A partition refused an append (nothing of that partition's events was stored). */
export class AppendRefused extends Error {
  override readonly name = "AppendRefused";
  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly code: string,
    detail: string,
  ) {
    super(`append to ${topic}/${partition} refused: ${code}: ${detail}`);
  }
}

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
      if (!result.ok) throw new AppendRefused(topic, partition, result.code, result.detail);
    }),
  );
}
