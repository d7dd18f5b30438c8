// The processor scenario's arithmetic (bench/processors.mjs), pure so test/unit/bench-processor.test.ts
// can check it: what the bench publishes, which count each (key, minute) must end with, and when
// each window's watermark passed its end + grace, found by replaying the watermark rule of
// shared/processing/watermark.ts over what each processor instance applied, in the order it applied it.

export const MINUTE_MS = 60_000;

/**
 * The published stream: event `i` of `events` has key `k<i mod keys>` and an event time that
 * advances evenly over `minutes` minutes from `start` (a whole minute), so every key has an event
 * in every minute once `events` ≥ `keys × minutes`.
 */
export function streamPlan({ events, keys, minutes, start }) {
  if (start % MINUTE_MS !== 0) throw new Error("start must be a whole minute");
  if (events < keys * minutes) throw new Error(`${events} events cannot give each of ${keys} keys an event in each of ${minutes} minutes`);
  const spanMs = minutes * MINUTE_MS;
  return {
    events,
    keys,
    minutes,
    start,
    key: (i) => `k${i % keys}`,
    time: (i) => start + Math.floor((i * spanMs) / events),
    /** The time of a tick: past every window's end + grace + out-of-orderness, so the watermark closes them all. */
    tickTime: ({ outOfOrdernessMs, graceMs }) => start + spanMs + MINUTE_MS + outOfOrdernessMs + graceMs,
  };
}

/** The final count every (key, window start) must have: "key@start" → count. */
export function expectedCounts(plan) {
  const counts = new Map();
  for (let i = 0; i < plan.events; i++) {
    const t = plan.time(i);
    const id = `${plan.key(i)}@${t - (t % MINUTE_MS)}`;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** Results against the expected counts: every window once, with its exact count. */
export function checkCounts(results, expected) {
  const seen = new Map();
  let wrong = 0;
  let unexpected = 0;
  for (const r of results) {
    const id = `${r.key}@${r.windowStart}`;
    seen.set(id, (seen.get(id) ?? 0) + 1);
    const want = expected.get(id);
    if (want === undefined) unexpected++;
    else if (r.count !== want) wrong++;
  }
  let missing = 0;
  for (const id of expected.keys()) if (!seen.has(id)) missing++;
  const duplicates = [...seen.values()].reduce((n, c) => n + c - 1, 0);
  return {
    expected: expected.size,
    results: results.length,
    missing,
    wrongCount: wrong,
    unexpected,
    duplicates,
    exact: missing === 0 && wrong === 0 && unexpected === 0 && duplicates === 0,
  };
}

/**
 * Replays one instance's combined watermark over its internal partition, in sequence order (the
 * order the instance applies it). Each input moves the processing-time clock to its input commit
 * time (the engine's `receivedTime`), records its input partition's max event time and activity,
 * and the watermark becomes the minimum of (max event time − out-of-orderness) over the partitions
 * that are not idle (all idle: the maximum), never moving back. Returns every move, with the input
 * that made it. Moves made by the instance's alarm (processing time passing with no input) are not
 * in the log and so not here.
 */
export function replayWatermark(inputs, { partitions, outOfOrdernessMs, idleTimeoutMs }) {
  const state = Array.from({ length: partitions }, () => ({ max: null, last: null }));
  let clock = null;
  let startedAt = null;
  let watermark = null;
  const moves = [];
  const sorted = [...inputs].sort((a, b) => a.sequence - b.sequence);
  for (const input of sorted) {
    const p = state[input.partition];
    if (p === undefined) throw new Error(`input partition ${input.partition} is outside 0…${partitions - 1}`);
    if (clock === null || input.committedAt > clock) clock = input.committedAt;
    startedAt ??= input.committedAt;
    if (p.max === null || input.eventTime > p.max) p.max = input.eventTime;
    p.last = clock;
    const idle = (s) => clock >= (s.last ?? startedAt) + idleTimeoutMs + 1;
    const active = state.filter((s) => !idle(s));
    let candidate;
    if (active.length > 0) candidate = active.some((s) => s.max === null) ? null : Math.min(...active.map((s) => s.max - outOfOrdernessMs));
    else {
      const marks = state.filter((s) => s.max !== null).map((s) => s.max - outOfOrdernessMs);
      candidate = marks.length === 0 ? null : Math.max(...marks);
    }
    if (candidate !== null && (watermark === null || candidate > watermark)) {
      watermark = candidate;
      moves.push({
        watermark,
        sequence: input.sequence,
        inputCommittedAt: input.committedAt,
        internalCommittedAt: input.internalCommittedAt,
      });
    }
  }
  return moves;
}

/** The first move that took the watermark to `at` or past it (moves ascend), or undefined. */
export function firstMoveReaching(moves, at) {
  let lo = 0;
  let hi = moves.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (moves[mid].watermark < at) lo = mid + 1;
    else hi = mid;
  }
  return moves[lo];
}

export function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const summary = (values) => ({
  samples: values.length,
  p50: percentile(values, 50),
  p99: percentile(values, 99),
  max: values.length === 0 ? null : Math.max(...values),
});

/**
 * Watermark → result latency of each final result: the result's commit in the output topic minus
 * the commit of the input whose application moved its instance's watermark to the window's
 * end + grace. `fromInput` counts from that input's commit in the processor's input topic (the
 * whole path: re-partition hop, instance, output append); `fromInternal` from its commit in the
 * internal topic, i.e. once the instance could apply it. A result no replayed move explains was
 * closed by the instance's alarm (idle inputs); those are counted, not timed.
 */
export function watermarkLatencies(results, movesByInstance, instanceOfKey, graceMs) {
  const fromInput = [];
  const fromInternal = [];
  let byAlarm = 0;
  let unknownKey = 0;
  for (const r of results) {
    const instance = instanceOfKey.get(r.key);
    if (instance === undefined) {
      unknownKey++;
      continue;
    }
    const move = firstMoveReaching(movesByInstance.get(instance) ?? [], r.windowEnd + graceMs);
    if (move === undefined || move.internalCommittedAt > r.committedAt) {
      byAlarm++;
      continue;
    }
    fromInput.push(r.committedAt - move.inputCommittedAt);
    fromInternal.push(r.committedAt - move.internalCommittedAt);
  }
  return { fromInput: summary(fromInput), fromInternal: summary(fromInternal), closedByAlarm: byAlarm, unknownKey };
}
