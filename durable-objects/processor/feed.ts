import config from "../../eventline.config";
import type { Run } from "../../sdk/messages";
import { partitionName } from "../../sdk/partition-name";
import { newTraceparent } from "../../sdk/trace";
import { findTopic } from "../../shared/config";
import {
  INTERNAL_BATCH_MAX_BYTES,
  INTERNAL_BATCH_MAX_INPUTS,
  processorPlans,
  processorSource,
  type Repartitioned,
} from "../../shared/processors";
import type { DirectTarget } from "../../shared/subscriptions";
import type { StoredRun } from "../partition-log/delivery/runs";
import { appendPrepared } from "./append";
import { inputOrLetter, type ProcessorDeadLetter, recordDeadLetters } from "./dead-letters";
import { packBatches, prepareInternalBatches } from "./internal-events";

/** An internal batch's envelope and trace attributes, on top of its inputs' text. */
const ENVELOPE_ROOM_BYTES = 1024;

/**
 * How a partition log hands events to a processor (ADR 0053): directly, by RPC, instead of through
 * a queue — a processor is a subscription whose transport is a call that returns once the events
 * are committed on the other side, so the call's success is the acknowledgement.
 *
 * - `repartition`: from the processor's input topic, each event's key, event time, values and
 *   role are extracted and appended to the processor's internal topic partitioned by the key
 *   (Kafka Streams' re-partition topic), as batches (ADR 0056): one event per run and instance
 *   holding that instance's inputs of the run, with the id `<topic>/<partition>/<first>-<last>`,
 *   so sending a run again appends nothing twice (and a run cut differently appends inputs the
 *   instance skips by its per-input-partition checkpoints).
 * - `process`: from a partition of the internal topic, to the processor instance of that partition.
 */
export async function feedDirect(env: Env, target: DirectTarget, runs: Run[] | StoredRun[]): Promise<void> {
  if (target.stage === "process") {
    const instance = runs[0]?.partition ?? 0;
    await env.PROCESSOR.getByName(`${target.processor}/${instance}`).feed({ processor: target.processor, instance, runs });
    return;
  }
  // The log sends this stage parsed events (an event given otherwise is read by reference).
  await repartition(env, target.processor, runs as Run[]);
}

async function repartition(env: Env, processor: string, runs: Run[]): Promise<void> {
  const plan = processorPlans(config).get(processor);
  if (plan === undefined) throw new Error(`processor ${processor} is not configured`);
  const internal = findTopic(config, plan.repartitionTopic);
  if (internal === undefined) throw new Error(`processor ${processor}: internal topic ${plan.repartitionTopic} is missing`);
  const source = `${processorSource(processor)}/input`;
  // Batches' bytes of input text: under the topic's event limit with room for the envelope.
  const maxBytes = Math.min(INTERNAL_BATCH_MAX_BYTES, Math.max(0, config.limits.maxEventBytes - ENVELOPE_ROOM_BYTES));
  const letters: ProcessorDeadLetter[] = [];
  // The runs of one call come from one partition's log, in order: their inputs make batches together.
  const byPartition = new Map<string, { topic: string; partition: number; inputs: Repartitioned[] }>();
  for (const run of runs) {
    const where = `${run.topic}/${run.partition}`;
    let group = byPartition.get(where);
    if (group === undefined) {
      group = { topic: run.topic, partition: run.partition, inputs: [] };
      byPartition.set(where, group);
    }
    const { inputs } = group;
    for (const e of run.events) {
      const event = e.event ?? (await readOne(env, run.topic, run.partition, e.sequence));
      if (event === undefined) continue;
      const taken = inputOrLetter(plan, event, { partition: run.partition, sequence: e.sequence, committedAt: e.committedAt });
      if (taken === null) continue;
      if ("input" in taken) inputs.push(taken.input);
      else letters.push(taken.letter);
    }
  }
  const packed: ReturnType<typeof packBatches> = [];
  for (const { topic, partition, inputs } of byPartition.values())
    packed.push(
      ...packBatches(
        inputs,
        { topic, partition, source, partitions: internal.partitions },
        { maxInputs: INTERNAL_BATCH_MAX_INPUTS, maxBytes },
      ),
    );
  if (packed.length > 0) {
    const prepared = await prepareInternalBatches(packed, internal, config, newTraceparent());
    await appendPrepared(env, internal.name, prepared);
  }
  if (letters.length > 0) await recordDeadLetters(env.DB, plan.config.name, plan.config.input.topic, letters, Date.now());
}

async function readOne(env: Env, topic: string, partition: number, sequence: number): Promise<Record<string, unknown> | undefined> {
  const page = await env.PARTITION_LOG.getByName(partitionName(topic, partition)).read(sequence, 1);
  const text = page.events[0];
  return text === undefined ? undefined : (JSON.parse(text) as Record<string, unknown>);
}
