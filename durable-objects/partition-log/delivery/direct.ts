import { RUN_MAX_EVENTS, type Run } from "../../../sdk/messages";
import type { DirectTarget, Route } from "../../../shared/subscriptions";
import { envelopeView } from "./envelope";
import { chunk, type FeedRuns, type Row, type RunMessage, runsOf, type StoredRun } from "./runs";

/**
 * Sending a direct route's outbox rows (a processor's feed, ADR 0053/0056). A direct route's row
 * is a range: the events of one append transaction, `sequence` through `through`, that its
 * filter matched (OutboxWrites). Sending reads those events from the log in one query, applies
 * the filter again to the ones in between (a transaction's events need not all match), and
 * feeds them as runs, in order; a call returns once the other side committed them, so rows whose
 * range was fed go. A failed call leaves the rows: the relay sends them again (what was already
 * committed on the other side is a duplicate there, by id or by sequence).
 */

/** Events (sequences covered) one pass over a direct route reads at most; a pass always takes one row. */
export const DIRECT_EVENTS_PER_PASS = 2000;

/** The route's filter as the relay applies it to a range's events: absent for an unfiltered route. */
export interface DirectFilter {
  matches: Route["matches"];
  /** The attributes the filter reads; when all are envelope columns, the event is not parsed. */
  envelopeOnly: boolean;
}

export type DirectRow = Row & {
  /** The range's last sequence (null: a row of one event, as rows were before ranges). */
  through: number | null;
};

/** An event as the relay reads it: sequence, body, commit time, then (for an envelope-only filter) its envelope columns. */
type EventRow = [sequence: number, body: string, receivedAt: number, ...envelope: (string | number | null)[]];
/** An EventRow read with ENVELOPE_COLUMNS. */
type EnvelopeRow = [number, string, number, id: string, source: string, type: string, subject: string | null, streamVersion: number | null];

const BASE_COLUMNS = "sequence, body, received_at";
const ENVELOPE_COLUMNS = `${BASE_COLUMNS}, id, source, type, subject, stream_version`;

function matches(filter: DirectFilter | undefined, e: EventRow): boolean {
  if (filter === undefined) return true;
  if (!filter.envelopeOnly) return filter.matches(JSON.parse(e[1]) as Record<string, unknown>);
  const [, , , id, source, type, subject, streamVersion] = e as EnvelopeRow;
  return filter.matches(envelopeView(id, source, type, subject, streamVersion));
}

/** The events of `rows` (ranges from `first` to `last`) that the route's filter matches, each naming its predecessor in the chain. */
function rangeEvents(
  sql: SqlStorage,
  target: { subscription: string; filter?: DirectFilter },
  rows: DirectRow[],
  first: number,
  last: number,
): Row[] {
  // Arrays, not objects, and only the columns the filter reads: this runs for every routed event.
  const columns = target.filter?.envelopeOnly === true ? ENVELOPE_COLUMNS : BASE_COLUMNS;
  const events = [
    ...sql.exec(`SELECT ${columns} FROM events WHERE sequence BETWEEN ? AND ? ORDER BY sequence`, first, last).raw(),
  ] as unknown as EventRow[];
  // Each row's events that the filter matches, chained: the first names the row's `prev`, the rest their predecessor.
  const matched: Row[] = [];
  let i = 0;
  for (const row of rows) {
    const end = row.through ?? row.sequence;
    let prev = row.prev;
    while (i < events.length && (events[i] as EventRow)[0] < row.sequence) i++;
    for (; i < events.length && (events[i] as EventRow)[0] <= end; i++) {
      const e = events[i] as EventRow;
      if (!matches(target.filter, e)) continue;
      matched.push({ subscription: target.subscription, sequence: e[0], prev, body: e[1], received_at: e[2] });
      prev = e[0];
    }
  }
  return matched;
}

/**
 * Feeds a direct route's unsent rows (ordered by sequence) from the first, up to
 * DIRECT_EVENTS_PER_PASS sequences' worth; returns the events fed. Throws on the first failed call.
 */
export async function drainDirect(
  sql: SqlStorage,
  target: { subscription: string; direct: DirectTarget; filter?: DirectFilter },
  rows: DirectRow[],
  at: { topic: string; partition: number },
  feed: FeedRuns,
  runEvents: number = RUN_MAX_EVENTS,
): Promise<number> {
  const taken: DirectRow[] = [];
  let covered = 0;
  for (const row of rows) {
    const span = (row.through ?? row.sequence) - row.sequence + 1;
    if (taken.length > 0 && covered + span > DIRECT_EVENTS_PER_PASS) break;
    taken.push(row);
    covered += span;
  }
  const first = taken[0];
  if (first === undefined) return 0;
  const last = taken.reduce((m, r) => Math.max(m, r.through ?? r.sequence), first.sequence);
  // Rows of one event each (a command's append, a lone event) came with it, and it matched at commit: no read needed.
  const matched = taken.every((r) => (r.through ?? r.sequence) === r.sequence)
    ? taken.map(
        (r): Row => ({ subscription: target.subscription, sequence: r.sequence, prev: r.prev, body: r.body, received_at: r.received_at }),
      )
    : rangeEvents(sql, target, taken, first.sequence, last);
  const done = (through: number) =>
    sql.exec(
      `DELETE FROM outbox WHERE subscription = ? AND sequence >= ? AND COALESCE(through, sequence) <= ?`,
      target.subscription,
      first.sequence,
      through,
    );
  // A processor's instances get the stored text (they parse it once); the re-partition stage reads the events here.
  const runs =
    target.direct.stage === "process"
      ? runsOf(matched, at.topic, at.partition, runEvents, true)
      : runsOf(matched, at.topic, at.partition, runEvents);
  for (const batch of chunk<RunMessage<Run | StoredRun>>(runs)) {
    await feed(target.direct, batch.map((m) => m.body) as Run[] | StoredRun[]);
    // Rows wholly fed go now; one the call's end fell inside stays until the next call covers it.
    done(batch.at(-1)?.body.events.at(-1)?.sequence ?? first.sequence - 1);
  }
  // Everything the taken rows matched was fed: what is left of them held only events the filter skips.
  done(last);
  return matched.length;
}
