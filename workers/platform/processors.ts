import type { InstanceStatus } from "../../durable-objects/processor";
import { partitionName } from "../../sdk/partition-name";
import type { EventlineConfig } from "../../shared/config";
import type { FilterPattern } from "../../shared/filter";
import { type ProcessorPlan, processorPlans } from "../../shared/processors";
import { processorRouteOf } from "../../shared/processors-config";

/**
 * What the platform shows of a stream processor (GET /v1/processors, /v1/metrics, /v1/health,
 * the dashboard, the CLI; ADR 0053): its declaration, and per instance (partition of its internal
 * topic) the watermark, lag, open windows and late events, read from the instances and the logs.
 */

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export interface ProcessorPartitionView {
  /** The partition of the processor's internal topic (one instance each). */
  partition: number;
  /** The instance's watermark (RFC 3339; null before its first input): the minimum over its non-idle inputs. */
  watermark: string | null;
  /** Per input partition: checkpoint (input sequence), watermark, and whether it is idle. */
  inputs: { partition: number; checkpoint: number | null; watermark: string | null; idle: boolean }[];
  /** The internal partition's sequence the instance has applied through (0 right after a reset). */
  applied: number;
  /** The internal partition's head sequence (a rebuild is done when `applied` reaches the head it had when the reset was taken). */
  head: number;
  /** Events of the internal partition not yet applied (each a batch of one input run's inputs for this instance, ADR 0056). */
  lag: number;
  /** Inputs (events of the input topic) the instance has applied since it was last reset. */
  inputsApplied: number;
  openWindows: number;
  keys: number;
  lateEvents: number;
  results: number;
  pendingOutputs: number;
  outputPerSecond: number;
  lastOutputError: string | null;
  catchingUp: boolean;
  /** While the instance reads the input topic's history (ADR 0058): input events read of the total. */
  backfill: BackfillProgress | null;
}

export interface BackfillProgress {
  read: number;
  total: number;
}

export interface ProcessorView {
  name: string;
  kind: "aggregate" | "pattern";
  description?: string;
  input: { topic: string; filter?: FilterPattern };
  key: string;
  eventTime: "time" | "received";
  output: { topic: string; table: boolean };
  /** The internal topic it re-partitions through. */
  internalTopic: string;
  window?: Record<string, string>;
  aggregates?: { name: string; op: string; field?: string }[];
  emit?: "final" | "updates";
  pattern?: { type: "sequence" | "absence"; a: FilterPattern; b: FilterPattern; within: string };
  watermark: { outOfOrderness: string; idleTimeout: string; maxAhead: string; whenIdle: "hold" | "clock" };
  grace: string;
  /** The lowest instance watermark: every result up to it is final (null before any input). */
  lowWatermark: string | null;
  /** Events not yet applied: waiting in the input topic's outboxes plus those in the internal topic. */
  lag: number;
  /** Of `lag`, the events waiting in the input topic's outboxes to be re-partitioned (the rest is per partition). */
  inputLag: number;
  openWindows: number;
  lateEvents: number;
  results: number;
  outputPerSecond: number;
  pendingOutputs: number;
  /** The instances' backfills under way, summed (null: none is). */
  backfill: BackfillProgress | null;
  partitions: ProcessorPartitionView[];
}

/** The declaration part of a view (no calls). */
export function describeProcessor(
  plan: ProcessorPlan,
): Omit<
  ProcessorView,
  | "lowWatermark"
  | "lag"
  | "inputLag"
  | "openWindows"
  | "lateEvents"
  | "results"
  | "outputPerSecond"
  | "pendingOutputs"
  | "backfill"
  | "partitions"
> {
  const c = plan.config;
  const base = {
    name: c.name,
    kind: c.kind,
    ...(c.description === undefined ? {} : { description: c.description }),
    input: { topic: c.input.topic, ...(c.input.filter === undefined ? {} : { filter: c.input.filter }) },
    key: c.key,
    eventTime: c.eventTime,
    output: { topic: c.output.topic, table: c.output.table },
    internalTopic: plan.repartitionTopic,
    watermark: { ...c.watermark, whenIdle: c.watermark.whenIdle ?? "hold" },
    grace: c.grace,
  };
  if (c.kind === "aggregate") return { ...base, window: { ...c.window }, aggregates: c.aggregates.map((a) => ({ ...a })), emit: c.emit };
  return { ...base, pattern: { ...c.pattern } };
}

export async function processorView(env: Env, config: EventlineConfig, plan: ProcessorPlan): Promise<ProcessorView> {
  const name = plan.config.name;
  const route = processorRouteOf(name);
  const inputTopic = config.topics.find((t) => t.name === plan.config.input.topic);
  const [instances, heads, waiting] = await Promise.all([
    Promise.all(
      Array.from({ length: plan.instances }, (_, i) => env.PROCESSOR.getByName(`${name}/${i}`).status({ processor: name, instance: i })),
    ),
    Promise.all(
      Array.from({ length: plan.instances }, (_, i) => env.PARTITION_LOG.getByName(partitionName(plan.repartitionTopic, i)).stats()),
    ),
    Promise.all(
      Array.from({ length: inputTopic?.partitions ?? 0 }, (_, p) =>
        env.PARTITION_LOG.getByName(partitionName(plan.config.input.topic, p)).stats(),
      ),
    ),
  ]);
  const partitions = (instances as InstanceStatus[]).map((s, i) => partitionView(s, heads[i]?.head ?? 0));
  const upstream = waiting.reduce((n, s) => n + (s.outbox[route] ?? 0), 0);
  const watermarks = partitions.map((p) => p.watermark);
  const low = watermarks.some((w) => w === null) ? null : ((watermarks as string[]).sort()[0] ?? null);
  const sum = (f: (p: ProcessorPartitionView) => number) => sumOf(partitions, f);
  const backfilling = partitions.flatMap((p) => (p.backfill === null ? [] : [p.backfill]));
  return {
    ...describeProcessor(plan),
    lowWatermark: low,
    lag: upstream + sum((p) => p.lag),
    inputLag: upstream,
    openWindows: sum((p) => p.openWindows),
    lateEvents: sum((p) => p.lateEvents),
    results: sum((p) => p.results),
    outputPerSecond: sum((p) => p.outputPerSecond),
    pendingOutputs: sum((p) => p.pendingOutputs),
    backfill: backfilling.length === 0 ? null : { read: sumOf(backfilling, (b) => b.read), total: sumOf(backfilling, (b) => b.total) },
    partitions,
  };
}

function partitionView(s: InstanceStatus, head: number): ProcessorPartitionView {
  return {
    partition: s.instance,
    watermark: iso(s.watermark),
    inputs: s.inputs.map((i) => ({ partition: i.partition, checkpoint: i.checkpoint, watermark: iso(i.watermark), idle: i.idle })),
    applied: s.applied,
    head,
    lag: Math.max(0, head - s.applied),
    inputsApplied: s.counters.accepted,
    openWindows: s.openWindows,
    keys: s.keys,
    lateEvents: s.counters.late,
    results: s.counters.finals + s.counters.updates + s.counters.matches,
    pendingOutputs: s.pendingOutputs,
    outputPerSecond: s.outputPerSecond,
    lastOutputError: s.lastOutputError,
    catchingUp: s.catchingUp,
    backfill: s.backfill,
  };
}

function sumOf<T>(list: readonly T[], f: (t: T) => number): number {
  return list.reduce((n, t) => n + f(t), 0);
}

export async function allProcessorViews(env: Env, config: EventlineConfig): Promise<ProcessorView[]> {
  return await Promise.all([...processorPlans(config).values()].map((plan) => processorView(env, config, plan)));
}
