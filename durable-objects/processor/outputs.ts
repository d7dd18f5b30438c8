import type { Logger } from "../../sdk/logger";
import { newTraceparent, reactionAttributes } from "../../sdk/trace";
import type { CloudEvent } from "../../shared/cloudevents";
import { type EventlineConfig, findTopic } from "../../shared/config";
import type { LateInput, ProcessorResult } from "../../shared/processing";
import { type ProcessorPlan, processorSource, resultData, resultTime, resultType } from "../../shared/processors";
import { configSource } from "../../workers/platform/ingest/data-schema";
import { type PreparedEvent, prepareEvents } from "../../workers/platform/ingest/parse";
import { AppendRefused, appendPrepared } from "./append";
import { type ProcessorDeadLetter, recordDeadLetters } from "./dead-letters";
import type { Output, ProcessorStore } from "./store";

/**
 * Hands a processor instance's committed outputs on (ADR 0053), in commit order: results are
 * appended to the output topic under their deterministic ids (a re-append after a crash is a
 * duplicate, not a second result), late events become the processor's dead letters (one row per
 * input, by a deterministic id), window results are upserted into D1 `processor_windows`. Rows
 * leave the outbox only once all of that succeeded; a failure leaves them for the next flush.
 */

/** Trace context of a result's trigger, when the instance still remembers it. */
export interface TriggerTrace {
  traceparent?: string | undefined;
  tracestate?: string | undefined;
  correlationid?: string | undefined;
}

export interface ResultBody {
  event: CloudEvent;
  /** The D1 row for a window result of a processor with `output.table`. */
  row?: { key: string; windowStart: number; windowEnd: number; revision: number; final: boolean; data: Record<string, unknown> };
}

/** A late input in the outbox; its dead letter's id and topic follow from the processor (recordDeadLetters). */
export interface LateBody {
  input: LateInput;
}

/** The event a result becomes: type and source derived from the processor, subject = key, causation and trace from its trigger. */
export function resultBody(plan: ProcessorPlan, result: ProcessorResult, trigger: TriggerTrace | undefined): ResultBody {
  const data = resultData(result);
  const event: Record<string, unknown> = {
    specversion: "1.0",
    id: result.id,
    source: processorSource(result.processor),
    type: resultType(result),
    subject: result.key === "" ? "(empty)" : result.key,
    time: new Date(resultTime(result)).toISOString(),
    datacontenttype: "application/json",
    data,
  };
  // Causation and correlation as every reaction to an event carries them (sdk/trace.ts); the trace
  // continues the trigger's while the instance remembers it, else the flush's own is stamped.
  const { traceparent, tracestate, ...reaction } = reactionAttributes({ ...trigger, id: result.causationId });
  Object.assign(event, reaction);
  if (trigger?.traceparent !== undefined) Object.assign(event, { traceparent }, tracestate === undefined ? {} : { tracestate });
  const body: ResultBody = { event: event as unknown as CloudEvent };
  if (plan.config.output.table && result.kind === "window")
    body.row = {
      key: result.key,
      windowStart: result.windowStart,
      windowEnd: result.windowEnd,
      revision: result.revision,
      final: result.emit === "final",
      data,
    };
  return body;
}

export interface FlushDeps {
  env: Env;
  config: EventlineConfig;
  plan: ProcessorPlan;
  store: ProcessorStore;
  log: Logger;
  now(): number;
}

/** Outputs handed on per flush step. */
const FLUSH_ROWS = 500;

/** Flushes the outbox; returns how many results were appended. Throws when a step failed (rows stay). */
export async function flushOutputs(deps: FlushDeps): Promise<number> {
  let appended = 0;
  for (;;) {
    const rows = deps.store.pending(FLUSH_ROWS);
    const last = rows.at(-1);
    if (last === undefined) return appended;
    appended += await handOn(deps, rows);
    deps.store.done(last.seq);
  }
}

async function handOn(deps: FlushDeps, rows: Output[]): Promise<number> {
  const { env, config, plan } = deps;
  let appended = 0;
  const results = rows.filter((r) => r.kind === "result").map((r) => JSON.parse(r.body) as ResultBody);
  const late = rows.filter((r) => r.kind === "late").map((r) => JSON.parse(r.body) as LateBody);
  if (results.length > 0) {
    const topic = findTopic(config, plan.config.output.topic);
    if (topic === undefined) throw new Error(`processor ${plan.config.name}: output topic ${plan.config.output.topic} is not configured`);
    const prepared = await prepareEvents(
      results.map((r) => r.event),
      topic,
      config,
      { traceparent: newTraceparent(), batch: true, schemas: configSource(topic, undefined) },
    );
    let kept = results;
    try {
      await appendPrepared(env, topic.name, prepared);
    } catch (err) {
      if (!(err instanceof AppendRefused) || err.code !== "duplicate_conflict") throw err;
      kept = await appendEach(deps, topic.name, results, prepared);
    }
    const tableRows = kept.flatMap((r) => (r.row === undefined ? [] : [r.row]));
    if (tableRows.length > 0) await upsertWindows(env.DB, plan.config.name, tableRows, deps.now());
    appended = kept.length;
  }
  // Late inputs, and input events a backfill found unusable (no key, too far ahead; ADR 0058).
  const letters = [
    ...late.map(lateLetter),
    ...rows.filter((r) => r.kind === "skipped").map((r) => JSON.parse(r.body) as ProcessorDeadLetter),
  ];
  if (letters.length > 0) await recordDeadLetters(env.DB, plan.config.name, plan.config.input.topic, letters, deps.now());
  return appended;
}

/**
 * A result recomputed after a reset can differ from the one appended under its id before: which
 * windows an idle timeout closed, and so which inputs were late, depends on processing time,
 * which a rebuild does not replay. The output topic is the record and an appended event never
 * changes, so the result already there stands: the recomputed one is dropped (and not upserted
 * into D1, which keeps agreeing with the topic), and the others are appended one by one.
 */
async function appendEach(deps: FlushDeps, topic: string, results: ResultBody[], prepared: PreparedEvent[]): Promise<ResultBody[]> {
  const kept: ResultBody[] = [];
  for (const [i, result] of results.entries()) {
    const event = prepared[i];
    if (event === undefined) continue;
    try {
      await appendPrepared(deps.env, topic, [event]);
      kept.push(result);
    } catch (err) {
      if (!(err instanceof AppendRefused) || err.code !== "duplicate_conflict") throw err;
      deps.log.warn("a recomputed result differs from the one already appended under its id; the appended one stands", {
        processor: deps.plan.config.name,
        id: result.event.id,
      });
    }
  }
  return kept;
}

/** Upserts window rows; an older revision never overwrites a newer one, and a final is never replaced by an update. */
async function upsertWindows(db: D1Database, processor: string, rows: NonNullable<ResultBody["row"]>[], now: number): Promise<void> {
  const statement = db.prepare(
    `INSERT INTO processor_windows (processor, key, window_start, window_end, revision, final, data, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (processor, key, window_start) DO UPDATE SET
       window_end = excluded.window_end, revision = excluded.revision, final = excluded.final, data = excluded.data, updated_at = excluded.updated_at
     WHERE excluded.revision > processor_windows.revision OR (excluded.revision = processor_windows.revision AND excluded.final >= processor_windows.final)`,
  );
  await db.batch(
    rows.map((r) => statement.bind(processor, r.key, r.windowStart, r.windowEnd, r.revision, r.final ? 1 : 0, JSON.stringify(r.data), now)),
  );
}

/** A late input as a dead letter: the windows it missed, as closed intervals in the error. */
function lateLetter({ input }: LateBody): ProcessorDeadLetter {
  const windows = input.windows.map((w) => `[${new Date(w.start).toISOString()}, ${new Date(w.end).toISOString()})`).join(", ");
  return {
    partition: input.partition,
    sequence: input.sequence,
    eventId: input.id,
    reason: "late_event",
    error: `event time ${new Date(input.eventTime).toISOString()} is behind the watermark: window(s) ${windows} had closed (end + grace)`,
    body: input,
  };
}
