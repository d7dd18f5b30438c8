import { readCheckpoints } from "../../sdk/consumer-store";
import type { TopicConfig } from "../../shared/config";
import { EventlineError } from "../../shared/errors";
import { partitionStub } from "./ingest/append";

/**
 * Consistency of a read model (a projection subscription's D1 tables) with the log it follows:
 * how far it is behind, and read-your-writes — waiting, bounded, until it has applied a position
 * a command returned.
 */

export interface Position {
  partition: number;
  sequence: number;
}

export interface PartitionFreshness {
  partition: number;
  /** Highest sequence the projection has applied in order. */
  applied: number;
  /** Last sequence committed for (routed to) the projection. */
  committed: number;
  behind: number;
}

export interface Freshness {
  projection: string;
  /** Events committed but not yet reflected in the read model, over the partitions consulted. */
  behindEvents: number;
  partitions: PartitionFreshness[];
  /** How long the query waited for `after`, when it named one. */
  waitedMs?: number;
  /** True while the read model is being rebuilt from the log (its data is incomplete). */
  rebuilding: boolean;
}

const POSITION = /^(\d{1,6}):(\d{1,15})$/;

/** Parses `<partition>:<sequence>` as a command returned it; a malformed one is a 400. */
export function parsePosition(text: string, topic: TopicConfig, where: string): Position {
  const m = POSITION.exec(text.trim());
  const partition = Number(m?.[1]);
  const sequence = Number(m?.[2]);
  if (m === null || partition >= topic.partitions || sequence < 1) {
    throw new EventlineError("invalid_parameter", `a position is <partition>:<sequence> as a command returned it, e.g. "2:17"`, {
      issues: [
        { path: where, message: `${JSON.stringify(text)} is not a position in topic ${topic.name} (partitions 0-${topic.partitions - 1})` },
      ],
    });
  }
  return { partition, sequence };
}

/** How far `projection` is behind in the given partitions of `topic` (all of them by default). */
export async function freshness(env: Env, projection: string, topic: TopicConfig, partitions?: number[]): Promise<Freshness> {
  const which = partitions ?? Array.from({ length: topic.partitions }, (_, p) => p);
  const [checkpoints, stats] = await Promise.all([
    readCheckpoints(env.DB, projection, topic.name),
    Promise.all(which.map((p) => partitionStub(env, topic.name, p).stats())),
  ]);
  const list = which.map((partition, i) => {
    const committed = stats[i]?.routed[projection] ?? 0;
    const done = checkpoints.get(partition) ?? 0;
    return { partition, applied: done, committed, behind: Math.max(0, committed - done) };
  });
  const behindEvents = list.reduce((n, p) => n + p.behind, 0);
  return {
    projection,
    behindEvents,
    partitions: list,
    rebuilding: await rebuilding(env, projection, behindEvents, partitions === undefined),
  };
}

/**
 * Whether a rebuild of `projection` is still under way: its replay has not finished, or the read
 * model has not applied everything yet. Marked finished here, the first time a full check
 * (every partition consulted) finds it caught up.
 */
async function rebuilding(env: Env, projection: string, behindEvents: number, allPartitions: boolean): Promise<boolean> {
  const row = await env.DB.prepare("SELECT replay_id FROM projection_state WHERE projection = ? AND state = 'rebuilding'")
    .bind(projection)
    .first<{ replay_id: string | null }>();
  if (row === null) return false;
  if (row.replay_id === null || !allPartitions || behindEvents > 0) return true;
  const job = await env.REPLAY_JOB.getByName(row.replay_id).status();
  if (job?.state === "running") return true;
  await env.DB.prepare("UPDATE projection_state SET state = 'ready', finished_at = ? WHERE projection = ?")
    .bind(Date.now(), projection)
    .run();
  return false;
}

/**
 * Waits until `projection` has applied `position` (read-your-writes), polling its checkpoint for
 * at most `waitMs`; throws `read_model_behind` (503 + Retry-After) when it has not by then.
 * Returns the milliseconds waited.
 */
export async function waitForPosition(
  env: Env,
  projection: string,
  topic: TopicConfig,
  position: Position,
  waitMs: number,
): Promise<number> {
  const started = Date.now();
  let pause = 10;
  for (;;) {
    const done = (await readCheckpoints(env.DB, projection, topic.name)).get(position.partition) ?? 0;
    if (done >= position.sequence) return Date.now() - started;
    const left = started + waitMs - Date.now();
    if (left <= 0) {
      throw new EventlineError(
        "read_model_behind",
        `read model ${projection} has applied ${topic.name} partition ${position.partition} up to ${done}, not yet ${position.sequence}, after waiting ${waitMs} ms`,
        { retryAfter: 1, extensions: { projection, position: `${position.partition}:${position.sequence}`, applied: done } },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(pause, left)));
    pause = Math.min(200, pause * 2);
  }
}
