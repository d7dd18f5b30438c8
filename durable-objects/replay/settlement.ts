import { z } from "zod";

/**
 * How a replay job learns that what it replayed was delivered (ADR 0035): it keeps a `watch` row
 * per event it sent, or left to the partition log's live delivery (`held`), and reads the target
 * subscription's settlement records from the platform's D1 — the same records the partition log
 * reads as acknowledgements (ADR 0030) — until each is settled. The job is `done` when none is
 * left, so `done` means delivered, not sent.
 *
 * Each settled event is counted once, by how it was settled:
 * - `handled`: settled at or after the moment the job reached it (by the replay's message, or by
 *   the live delivery the job left it to);
 * - `alreadyHandled`: settled before that (the consumer absorbed the replayed copy as a
 *   duplicate), or its id was already handled at another position (`duplicate_id`);
 * - `deadLettered`: its settlement is a dead letter (then or before).
 * For a subscription with `replays: "always"` (webhooks) an event it already had is sent again:
 * it counts once an attempt record (`delivery_attempts`, handled or dead-lettered) at or after the
 * send shows the new delivery ended — as `alreadyHandled` or `deadLettered`. Where attempt records
 * are off (EVENTLINE_METRICS=off) such a re-send counts as `alreadyHandled` at once (sent semantics).
 */

export type WatchKind = "sent" | "held";

export interface WatchRow {
  partition: number;
  sequence: number;
  kind: WatchKind;
  /** When the job sent it or left it to the log (ms, the job's clock). */
  at: number;
}

export type Settlement = "handled" | "alreadyHandled" | "deadLettered";

export interface SettledEvent {
  partition: number;
  sequence: number;
  as: Settlement;
}

export interface SettlementTarget {
  subscription: string;
  topic: string;
  /** `always`: an event the subscription had is delivered again (webhooks); its attempt records say when. */
  replays: "once" | "always";
  /** Whether the SDK writes attempt records (EVENTLINE_METRICS is not off). */
  attempts: boolean;
}

export function createWatchTable(sql: SqlStorage): void {
  sql.exec(`CREATE TABLE IF NOT EXISTS watch (
    partition INTEGER NOT NULL, sequence INTEGER NOT NULL, kind TEXT NOT NULL, at INTEGER NOT NULL,
    PRIMARY KEY (partition, sequence)
  )`);
}

/** Records events to watch; a row already there (the batch sent again after a resume) keeps its time. */
export function watch(sql: SqlStorage, partition: number, sequences: number[], kind: WatchKind, at: number): void {
  for (const sequence of sequences) {
    sql.exec(`INSERT OR IGNORE INTO watch (partition, sequence, kind, at) VALUES (?, ?, ?, ?)`, partition, sequence, kind, at);
  }
}

/** Watched events per poll and partition: bounded D1 reads per tick, whatever the backlog. */
export const WATCH_POLL_LIMIT = 450;
/** Sequences per D1 statement (D1 binds at most 100 parameters). */
const PER_STATEMENT = 90;

/** The oldest watched events of each partition (at most WATCH_POLL_LIMIT each). */
export function watchedBatch(sql: SqlStorage): WatchRow[] {
  const partitions = sql.exec<{ partition: number }>(`SELECT DISTINCT partition FROM watch`).toArray();
  return partitions.flatMap(({ partition }) =>
    sql
      .exec<{ partition: number; sequence: number; kind: string; at: number }>(
        `SELECT partition, sequence, kind, at FROM watch WHERE partition = ? ORDER BY sequence LIMIT ?`,
        partition,
        WATCH_POLL_LIMIT,
      )
      .toArray()
      .map((r) => ({ ...r, kind: r.kind === "held" ? ("held" as const) : ("sent" as const) })),
  );
}

const processedRow = z.object({ sequence: z.number(), outcome: z.string(), processed_at: z.number() });
const attemptRow = z.object({ sequence: z.number(), outcome: z.string(), at: z.number() });

/**
 * Reads the settlement of `rows` from D1 in one `db.batch()`: per partition and chunk, the
 * `processed_events` rows at those positions (index `processed_events_position`) and, for
 * `replays: "always"`, the attempt records since the earliest send. Returns the settled ones.
 */
export async function readSettlement(db: D1Database, target: SettlementTarget, rows: WatchRow[]): Promise<SettledEvent[]> {
  if (rows.length === 0) return [];
  const groups: WatchRow[][] = [];
  const byPartition = new Map<number, WatchRow[]>();
  for (const row of rows) byPartition.set(row.partition, [...(byPartition.get(row.partition) ?? []), row]);
  for (const list of byPartition.values()) {
    for (let i = 0; i < list.length; i += PER_STATEMENT) groups.push(list.slice(i, i + PER_STATEMENT));
  }
  const values = (n: number) => Array.from({ length: n }, () => "(?)").join(", ");
  const rerun = target.replays === "always" && target.attempts;
  const statements = groups.flatMap((group) => {
    const partition = group[0]?.partition ?? 0;
    const sequences = group.map((r) => r.sequence);
    const processed = db
      .prepare(
        `WITH k(sequence) AS (VALUES ${values(sequences.length)})
         SELECT p.sequence, p.outcome, p.processed_at FROM k JOIN processed_events p
         ON p.subscription = ? AND p.topic = ? AND p.partition = ? AND p.sequence = k.sequence`,
      )
      .bind(...sequences, target.subscription, target.topic, partition);
    if (!rerun) return [processed];
    const since = Math.min(...group.map((r) => r.at));
    const attempts = db
      .prepare(
        `WITH k(sequence) AS (VALUES ${values(sequences.length)})
         SELECT a.sequence, a.outcome, a.at FROM k JOIN delivery_attempts a
         ON a.topic = ? AND a.partition = ? AND a.sequence = k.sequence
         WHERE a.subscription = ? AND a.at >= ? AND a.outcome IN ('handled', 'dead_lettered')`,
      )
      .bind(...sequences, target.topic, partition, target.subscription, since);
    return [processed, attempts];
  });
  const results = await db.batch(statements);
  const settled: SettledEvent[] = [];
  groups.forEach((group, g) => {
    const processed = new Map(
      (results[rerun ? 2 * g : g]?.results ?? []).map((raw) => {
        const r = processedRow.parse(raw);
        return [r.sequence, r] as const;
      }),
    );
    const reran = new Map<number, { outcome: string; at: number }[]>();
    for (const raw of rerun ? (results[2 * g + 1]?.results ?? []) : []) {
      const a = attemptRow.parse(raw);
      reran.set(a.sequence, [...(reran.get(a.sequence) ?? []), a]);
    }
    for (const row of group) {
      const as = classify(row, processed.get(row.sequence), reran.get(row.sequence) ?? [], target);
      if (as !== undefined) settled.push({ partition: row.partition, sequence: row.sequence, as });
    }
  });
  return settled;
}

/** How one watched event was settled; undefined while it is not (yet). */
function classify(
  row: WatchRow,
  processed: { outcome: string; processed_at: number } | undefined,
  attempts: { outcome: string; at: number }[],
  target: SettlementTarget,
): Settlement | undefined {
  if (processed === undefined) return undefined;
  if (processed.outcome === "dead_lettered") return "deadLettered";
  if (processed.processed_at >= row.at) return processed.outcome === "duplicate_id" ? "alreadyHandled" : "handled";
  // Settled before the job reached it. Only a re-send to a `replays: "always"` subscription is
  // still on its way: it counts once an attempt since the send has ended.
  if (row.kind === "held" || target.replays === "once" || !target.attempts) return "alreadyHandled";
  const ended = attempts.find((a) => a.at >= row.at);
  if (ended === undefined) return undefined;
  return ended.outcome === "dead_lettered" ? "deadLettered" : "alreadyHandled";
}

/**
 * Which of `sequences` the subscription has settled (a `processed_events` row at the position).
 * An event the log still holds but the subscription settled is only waiting for the log to read
 * the acknowledgement: the job sends it like history (absorbed as a duplicate, or delivered again
 * to a `replays: "always"` webhook) instead of leaving it to a delivery that already happened.
 */
export async function settledAmong(
  db: D1Database,
  at: { subscription: string; topic: string; partition: number },
  sequences: number[],
): Promise<Set<number>> {
  if (sequences.length === 0) return new Set();
  const groups: number[][] = [];
  for (let i = 0; i < sequences.length; i += PER_STATEMENT) groups.push(sequences.slice(i, i + PER_STATEMENT));
  const results = await db.batch(
    groups.map((group) =>
      db
        .prepare(
          `WITH k(sequence) AS (VALUES ${group.map(() => "(?)").join(", ")})
           SELECT p.sequence FROM k JOIN processed_events p
           ON p.subscription = ? AND p.topic = ? AND p.partition = ? AND p.sequence = k.sequence`,
        )
        .bind(...group, at.subscription, at.topic, at.partition),
    ),
  );
  return new Set(results.flatMap((r) => r.results.map((raw) => z.object({ sequence: z.number() }).parse(raw).sequence)));
}
