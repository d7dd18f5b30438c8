/**
 * Event-time timers: a JSON array kept sorted by (at, key, ref), so the items due under a
 * watermark are a prefix and fire in one deterministic order. `at` is when the item closes
 * (window end + grace, or an event time + grace); `ref` names the item within its key (a window's
 * start, or a pattern input's arrival number).
 */
export interface Timer {
  at: number;
  key: string;
  ref: number;
}

function compare(a: Timer, b: Timer): number {
  if (a.at !== b.at) return a.at - b.at;
  if (a.key !== b.key) return a.key < b.key ? -1 : 1;
  return a.ref - b.ref;
}

/** The first index whose timer is not before `timer`. */
function lowerBound(timers: readonly Timer[], timer: Timer): number {
  let lo = 0;
  let hi = timers.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const t = timers[mid];
    if (t !== undefined && compare(t, timer) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function insertTimer(timers: Timer[], timer: Timer): void {
  timers.splice(lowerBound(timers, timer), 0, { at: timer.at, key: timer.key, ref: timer.ref });
}

/** Removes the timer equal to `timer`; an absent timer is an engine bug, so it throws. */
export function removeTimer(timers: Timer[], timer: Timer): void {
  const index = lowerBound(timers, timer);
  const found = timers[index];
  if (found === undefined || compare(found, timer) !== 0) throw new Error(`timer ${JSON.stringify(timer)} not found`);
  timers.splice(index, 1);
}

/** Removes and returns the timers with at ≤ watermark, in order. */
export function takeDue(timers: Timer[], watermark: number | null): Timer[] {
  if (watermark === null) return [];
  let count = 0;
  while (count < timers.length && (timers[count]?.at ?? Number.POSITIVE_INFINITY) <= watermark) count++;
  return count === 0 ? [] : timers.splice(0, count);
}
