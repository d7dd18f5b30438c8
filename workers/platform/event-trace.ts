import type { PendingDelivery } from "../../durable-objects/partition-log";
import { type AttemptOutcome, chunks } from "../../sdk/consumer-store";
import type { EventlineConfig, TopicConfig } from "../../shared/config";
import { EventlineError } from "../../shared/errors";
import { compileFilter, type FilterPattern } from "../../shared/filter";
import { redactUrlIn } from "../../shared/redact-url";
import { partitionStub } from "./ingest/append";
import { webhookSubscriptionsOf } from "./subscription-registry";
import { requirePartition } from "./validation";

/**
 * An event's journey (GET /v1/topics/{topic}/partitions/{p}/events/{sequence}/trace): the stored
 * event's identity and trace context, when it was committed, and per subscription of its topic
 * whether its filter matches the stored event, whether the partition routed it there, every
 * delivery attempt the consumer SDK recorded, and where it stands now.
 *
 * Sources: the partition log (the event, archived or not, and its routing), D1 (`delivery_attempts`
 * written by the SDK with each outcome, `processed_events`, `delivery_failures`; the webhook
 * subscriptions through the subscription registry). One partition read, one stats call, the
 * topic's webhook subscriptions and one D1 batch of records per trace.
 */

/**
 * `routed`: committed for the subscription, not handed to its queue yet; `in_transit`: sent, not
 * settled; `redelivered`: sent more than once (the log sent it again after its redelivery timeout);
 * `retrying`: its handler failed and the queue retries it; `pending`: none of these is known (an
 * event acknowledged before the partition kept delivery state).
 */
export type TraceState = "pending" | "routed" | "in_transit" | "redelivered" | "handled" | "dead_lettered" | "filtered_out" | "retrying";

export interface TraceAttempt {
  attempt: number;
  at: string;
  /** When the queue accepted the message (null: not known). */
  sentAt: string | null;
  outcome: AttemptOutcome;
  error?: string;
}

export interface SubscriptionTrace {
  subscription: string;
  kind: "worker" | "webhook";
  matched: boolean;
  routed: boolean;
  attempts: TraceAttempt[];
  state: TraceState;
  /** While unacknowledged: how often the partition handed it to the queue, and when last. */
  delivery?: { sends: number; sentAt: string | null };
  handledAt?: string;
  deadLetteredAt?: string;
}

export interface EventTrace {
  topic: string;
  partition: number;
  sequence: number;
  id: string;
  source: string;
  type: string;
  subject?: string;
  traceparent: string;
  tracestate?: string;
  correlationid?: string;
  causationid?: string;
  committed: { at: string };
  subscriptions: SubscriptionTrace[];
}

interface Candidate {
  name: string;
  kind: "worker" | "webhook";
  filter: FilterPattern | undefined;
  /** Created after the event was committed: it never saw it, unless a replay sent it there. */
  late: boolean;
  /** A webhook's URL: attempt errors name it by its origin only. */
  url?: string;
}

/** D1 binds at most 100 parameters per statement: subscriptions per IN list, with 3 more for the position. */
const NAMES_PER_QUERY = 90;

const iso = (ms: number) => new Date(ms).toISOString();
const optionalString = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);

type PartitionStub = ReturnType<typeof partitionStub>;

/** The stored event at `sequence`, exactly as committed (from the archive when trimmed); 404 when there is none. */
async function storedEvent(stub: PartitionStub, topic: TopicConfig, partition: number, sequence: number): Promise<Record<string, unknown>> {
  const missing = () => new EventlineError("not_found", `topic ${topic.name} partition ${partition} has no event at sequence ${sequence}`);
  if (sequence < 1) throw missing();
  const page = await stub.read(sequence, 1);
  const text = page.events[0];
  if (text === undefined || page.last !== sequence) throw missing();
  return JSON.parse(text) as Record<string, unknown>;
}

/**
 * The topic's subscriptions: configured ones (in config order), then webhook ones (by name). A
 * configured subscription is taken to have existed at commit; a webhook one knows when it was created.
 * Webhook rows are read through the registry, so a row it cannot parse (a stored filter failing
 * its schema) fails the trace as it fails every other reader of the registry, rather than being guessed at.
 */
async function candidates(env: Env, config: EventlineConfig, topic: string, committedAt: number): Promise<Candidate[]> {
  const configured: Candidate[] = config.subscriptions
    .filter((s) => s.topic === topic)
    .map((s) => ({ name: s.name, kind: "worker", filter: s.filter, late: false }));
  const webhooks: Candidate[] = (await webhookSubscriptionsOf(env.DB, topic)).map((w) => ({
    name: w.name,
    kind: "webhook",
    filter: w.filter,
    late: w.createdAt > committedAt,
    ...(w.webhook === undefined ? {} : { url: w.webhook.url }),
  }));
  return [...configured, ...webhooks];
}

interface Records {
  attempts: Map<string, TraceAttempt[]>;
  settled: Map<string, { outcome: string; at: number }>;
  failing: Set<string>;
}

/** Everything D1 holds about the event at this position, for these subscriptions, in one batch. */
async function records(env: Env, names: string[], topic: string, partition: number, sequence: number): Promise<Records> {
  const db = env.DB;
  const groups = chunks(names, NAMES_PER_QUERY);
  const inList = (n: number) => Array.from({ length: n }, () => "?").join(", ");
  const statements = [
    db
      .prepare(
        `SELECT subscription, attempt, outcome, error, at, sent_at FROM delivery_attempts
         WHERE topic = ? AND partition = ? AND sequence = ? ORDER BY at, id`,
      )
      .bind(topic, partition, sequence),
    // The primary key and the position index start with the subscription: look each one up.
    ...groups.map((group) =>
      db
        .prepare(
          `SELECT subscription, outcome, processed_at FROM processed_events
           WHERE subscription IN (${inList(group.length)}) AND topic = ? AND partition = ? AND sequence = ?`,
        )
        .bind(...group, topic, partition, sequence),
    ),
    ...groups.map((group) =>
      db
        .prepare(
          `SELECT subscription FROM delivery_failures
           WHERE subscription IN (${inList(group.length)}) AND topic = ? AND partition = ? AND sequence = ?`,
        )
        .bind(...group, topic, partition, sequence),
    ),
  ];
  const [attemptRows, ...rest] = await db.batch(statements);
  const out: Records = { attempts: new Map(), settled: new Map(), failing: new Set() };
  for (const row of (attemptRows?.results ?? []) as {
    subscription: string;
    attempt: number;
    outcome: AttemptOutcome;
    error: string | null;
    at: number;
    sent_at: number | null;
  }[]) {
    const list = out.attempts.get(row.subscription) ?? [];
    list.push({
      attempt: row.attempt,
      at: iso(row.at),
      sentAt: row.sent_at === null ? null : iso(row.sent_at),
      outcome: row.outcome,
      ...(row.error === null ? {} : { error: row.error }),
    });
    out.attempts.set(row.subscription, list);
  }
  for (const result of rest.slice(0, groups.length)) {
    for (const row of result.results as { subscription: string; outcome: string; processed_at: number }[]) {
      out.settled.set(row.subscription, { outcome: row.outcome, at: row.processed_at });
    }
  }
  for (const result of rest.slice(groups.length)) {
    for (const row of result.results as { subscription: string }[]) out.failing.add(row.subscription);
  }
  return out;
}

/**
 * Attempts with the webhook's URL in their errors reduced to its origin. Deliveries record it so
 * already; rows from before they did (or an error text quoting the URL) would otherwise show a
 * consume-only reader the URL's token.
 */
function redacted(attempts: TraceAttempt[], url: string | undefined): TraceAttempt[] {
  if (url === undefined) return attempts;
  return attempts.map((a) => (a.error === undefined ? a : { ...a, error: redactUrlIn(a.error, url) }));
}

/** Where a subscription stands with the event, from what it recorded (or did not). */
function stateOf(
  matched: boolean,
  settled: { outcome: string; at: number } | undefined,
  failing: boolean,
  attempts: TraceAttempt[],
  pending: PendingDelivery | undefined,
): Pick<SubscriptionTrace, "state" | "handledAt" | "deadLetteredAt"> {
  // A dead letter redriven and then handled keeps its dead-lettering in the attempts.
  const lastDeadLettered = attempts.findLast((a) => a.outcome === "dead_lettered")?.at;
  if (settled?.outcome === "dead_lettered") return { state: "dead_lettered", deadLetteredAt: iso(settled.at) };
  if (settled !== undefined) {
    // `handled`, or `duplicate_id`: the same event (source, id) was handled at another position.
    return {
      state: "handled",
      handledAt: iso(settled.at),
      ...(lastDeadLettered === undefined ? {} : { deadLetteredAt: lastDeadLettered }),
    };
  }
  if (!matched && attempts.length === 0) return { state: "filtered_out" };
  if (failing || attempts.at(-1)?.outcome === "failed") return { state: "retrying" };
  return { state: pending?.state ?? "pending" };
}

/**
 * A run that handled the event at its first delivery writes no attempt record (batch settlement,
 * ADR 0035): its settlement stands for it. So a handled event whose records end without a
 * `handled` attempt gets one from its `processed_events` row: the next attempt number, the time it
 * was settled, and no queue time (not recorded).
 */
function withSettlement(attempts: TraceAttempt[], settled: { outcome: string; at: number } | undefined): TraceAttempt[] {
  if (settled?.outcome !== "handled") return attempts;
  const last = attempts.at(-1);
  if (last !== undefined && (last.outcome === "handled" || Date.parse(last.at) > settled.at)) return attempts;
  const attempt = Math.max(0, ...attempts.map((a) => a.attempt)) + 1;
  return [...attempts, { attempt, at: iso(settled.at), sentAt: null, outcome: "handled" }];
}

/** The journey of the event at `sequence` of `topic`/`partition`; 404 when there is no such event. */
export async function traceEvent(
  env: Env,
  config: EventlineConfig,
  topic: TopicConfig,
  partition: number,
  sequence: number,
): Promise<EventTrace> {
  requirePartition(topic, partition);
  const stub = partitionStub(env, topic.name, partition);
  const [event, stats, deliveries] = await Promise.all([
    storedEvent(stub, topic, partition, sequence),
    stub.stats(),
    stub.deliveryOf(sequence),
  ]);
  const pendingOf = new Map(deliveries.map((d) => [d.subscription, d]));
  const committedAt = Date.parse(String(event.receivedtime));
  const listed = await candidates(env, config, topic.name, committedAt);
  const found = await records(
    env,
    listed.map((c) => c.name),
    topic.name,
    partition,
    sequence,
  );

  const subscriptions: SubscriptionTrace[] = [];
  for (const candidate of listed) {
    const settled = found.settled.get(candidate.name);
    const attempts = withSettlement(redacted(found.attempts.get(candidate.name) ?? [], candidate.url), settled);
    const failing = found.failing.has(candidate.name);
    const pending = pendingOf.get(candidate.name);
    const evidence = attempts.length > 0 || settled !== undefined || failing || pending !== undefined;
    if (candidate.late && !evidence) continue;
    // Evaluated on the event as stored, as the partition did at commit (a webhook's filter never
    // changes; a configured one only with a deploy).
    const matched = compileFilter(candidate.filter)(event);
    // The routing keeps each subscription's last routed sequence: a matching event at or before it
    // went into the outbox. What the subscription recorded proves it reached it anyway.
    const routed = evidence || (matched && (stats.routed[candidate.name] ?? 0) >= sequence);
    subscriptions.push({
      subscription: candidate.name,
      kind: candidate.kind,
      matched,
      routed,
      attempts,
      ...stateOf(matched, settled, failing, attempts, pending),
      ...(pending === undefined || settled !== undefined
        ? {}
        : { delivery: { sends: pending.sends, sentAt: pending.sentAt === null ? null : iso(pending.sentAt) } }),
    });
  }

  const tracestate = optionalString(event.tracestate);
  const correlationid = optionalString(event.correlationid);
  const causationid = optionalString(event.causationid);
  const subject = optionalString(event.subject);
  return {
    topic: topic.name,
    partition,
    sequence,
    id: String(event.id),
    source: String(event.source),
    type: String(event.type),
    ...(subject === undefined ? {} : { subject }),
    traceparent: String(event.traceparent),
    ...(tracestate === undefined ? {} : { tracestate }),
    ...(correlationid === undefined ? {} : { correlationid }),
    ...(causationid === undefined ? {} : { causationid }),
    committed: { at: iso(committedAt) },
    subscriptions,
  };
}
