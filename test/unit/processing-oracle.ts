import type { AggregateProcessorSpec, PatternProcessorSpec, ProcessorInput, Scalar } from "../../shared/processing";

/*
 * A brute-force oracle for the processing engine, written apart from it (no engine code): it
 * replays the effective operation log with its own watermark bookkeeping to decide which inputs
 * were redeliveries and which were late, then computes every window (or pattern match) from
 * scratch over the accepted, on-time inputs and keeps those the final watermark has closed.
 */

export type Op = { op: "input"; input: ProcessorInput } | { op: "advance"; now: number };

export interface Accepted {
  input: ProcessorInput;
  arrival: number;
  /** The watermark when it arrived (null: −∞). */
  watermark: number | null;
}

export interface Replay {
  accepted: Accepted[];
  duplicates: number;
  watermark: number | null;
}

/** Redeliveries, arrival order and the watermark at each arrival, per the documented rules. */
export function replay(
  spec: { partitions: number; watermark: { outOfOrdernessMs: number; idleTimeoutMs: number } },
  log: readonly Op[],
): Replay {
  const parts = Array.from({ length: spec.partitions }, () => ({
    checkpoint: -1,
    max: null as number | null,
    last: null as number | null,
  }));
  let clock: number | null = null;
  let started: number | null = null;
  let watermark: number | null = null;
  let duplicates = 0;
  const accepted: Accepted[] = [];
  const tick = (now: number) => {
    clock = clock === null ? now : Math.max(clock, now);
    started ??= now;
  };
  const recompute = () => {
    const c = clock ?? 0;
    const active = parts.filter((p) => {
      const since = p.last ?? started;
      return clock === null || since === null || c - since <= spec.watermark.idleTimeoutMs;
    });
    let candidate: number | null;
    if (active.length > 0) candidate = active.some((p) => p.max === null) ? null : Math.min(...active.map((p) => p.max ?? 0));
    else {
      const seen = parts.flatMap((p) => (p.max === null ? [] : [p.max]));
      candidate = seen.length === 0 ? null : Math.max(...seen);
    }
    if (candidate !== null) {
      candidate -= spec.watermark.outOfOrdernessMs;
      if (watermark === null || candidate > watermark) watermark = candidate;
    }
  };
  for (const entry of log) {
    if (entry.op === "advance") {
      tick(entry.now);
      recompute();
      continue;
    }
    const { input } = entry;
    const p = parts[input.partition];
    if (p === undefined) throw new Error("partition out of range");
    if (input.sequence <= p.checkpoint) {
      duplicates++;
      continue;
    }
    p.checkpoint = input.sequence;
    tick(input.receivedTime);
    accepted.push({ input, arrival: accepted.length, watermark });
    p.max = p.max === null ? input.eventTime : Math.max(p.max, input.eventTime);
    p.last = clock;
    recompute();
  }
  return { accepted, duplicates, watermark };
}

const isClosed = (watermark: number | null, at: number) => watermark !== null && at <= watermark;

export interface ExpectedWindow {
  id: string;
  key: string;
  windowStart: number;
  windowEnd: number;
  aggregates: Record<string, Scalar>;
  causationId: string;
}

export interface ExpectedLate {
  partition: number;
  sequence: number;
  windows: Array<{ start: number; end: number }>;
}

function windowsOf(spec: AggregateProcessorSpec, t: number): Array<{ start: number; end: number }> {
  if (spec.window.type === "session") throw new Error("sessions are clustered, not assigned");
  const size = spec.window.sizeMs;
  const step = spec.window.type === "tumbling" ? size : spec.window.advanceMs;
  const out: Array<{ start: number; end: number }> = [];
  for (let k = Math.floor((t - size) / step); k <= Math.floor(t / step); k++) {
    const start = k * step;
    if (start <= t && t < start + size) out.push({ start, end: start + size });
  }
  return out;
}

function aggregate(spec: AggregateProcessorSpec, members: Accepted[]): Record<string, Scalar> {
  const out: Record<string, Scalar> = {};
  const byTime = [...members].sort((x, y) => x.input.eventTime - y.input.eventTime || x.arrival - y.arrival);
  for (const a of spec.aggregates) {
    const present = byTime.filter((m) => a.field !== undefined && m.input.value !== undefined && Object.hasOwn(m.input.value, a.field));
    const raw = present.map((m) => m.input.value?.[a.field ?? ""] ?? null);
    const nums = raw.filter((x): x is number => typeof x === "number" && Number.isFinite(x));
    if (a.op === "count") out[a.name] = members.length;
    else if (a.op === "sum") out[a.name] = nums.reduce((s, x) => s + x, 0);
    else if (a.op === "min") out[a.name] = nums.length === 0 ? null : Math.min(...nums);
    else if (a.op === "max") out[a.name] = nums.length === 0 ? null : Math.max(...nums);
    else if (a.op === "avg") out[a.name] = nums.length === 0 ? null : nums.reduce((s, x) => s + x, 0) / nums.length;
    else if (a.op === "first") out[a.name] = raw.length === 0 ? null : (raw[0] ?? null);
    else if (a.op === "last") out[a.name] = raw.length === 0 ? null : (raw[raw.length - 1] ?? null);
    else out[a.name] = new Set(raw.map((x) => JSON.stringify(x))).size;
  }
  return out;
}

const idOf = (name: string, key: string, start: number) => `${name}:${encodeURIComponent(key)}:${start}:final`;

/** The final window results and late inputs the engine must produce for this log. */
export function expectWindows(
  spec: AggregateProcessorSpec,
  log: readonly Op[],
): { finals: ExpectedWindow[]; late: ExpectedLate[]; replay: Replay } {
  const r = replay(spec, log);
  const late: ExpectedLate[] = [];
  const groups = new Map<string, { key: string; start: number; end: number; members: Accepted[] }>();
  const byKey = new Map<string, Accepted[]>();
  for (const a of r.accepted) {
    const t = a.input.eventTime;
    if (spec.window.type === "session") {
      if (isClosed(a.watermark, t + spec.graceMs)) {
        late.push({ partition: a.input.partition, sequence: a.input.sequence, windows: [{ start: t, end: t + spec.window.gapMs }] });
        continue;
      }
      byKey.set(a.input.key, [...(byKey.get(a.input.key) ?? []), a]);
      continue;
    }
    const missed: Array<{ start: number; end: number }> = [];
    for (const w of windowsOf(spec, t)) {
      if (isClosed(a.watermark, w.end + spec.graceMs)) {
        missed.push(w);
        continue;
      }
      const id = `${a.input.key}\u0000${w.start}`;
      const group = groups.get(id) ?? { key: a.input.key, start: w.start, end: w.end, members: [] };
      group.members.push(a);
      groups.set(id, group);
    }
    if (missed.length > 0) late.push({ partition: a.input.partition, sequence: a.input.sequence, windows: missed });
  }
  if (spec.window.type === "session") {
    const gap = spec.window.gapMs;
    for (const [key, members] of byKey) {
      const sorted = [...members].sort((x, y) => x.input.eventTime - y.input.eventTime);
      let current: { key: string; start: number; end: number; members: Accepted[] } | null = null;
      for (const m of sorted) {
        const t = m.input.eventTime;
        if (current !== null && t < current.end) {
          current.members.push(m);
          current.end = Math.max(current.end, t + gap);
        } else {
          current = { key, start: t, end: t + gap, members: [m] };
          groups.set(`${key}\u0000${t}`, current);
        }
      }
    }
  }
  const finals: ExpectedWindow[] = [];
  for (const g of groups.values()) {
    if (!isClosed(r.watermark, g.end + spec.graceMs)) continue;
    const lastArrival = g.members.reduce((x, y) => (y.arrival > x.arrival ? y : x));
    finals.push({
      id: idOf(spec.name, g.key, g.start),
      key: g.key,
      windowStart: g.start,
      windowEnd: g.end,
      aggregates: aggregate(spec, g.members),
      causationId: lastArrival.input.id,
    });
  }
  return { finals, late, replay: r };
}

export interface ExpectedMatch {
  key: string;
  a: string;
  b: string | null;
}

/**
 * The pattern results and late inputs the engine must produce for this log. An "a" is on time
 * when its window [t, t + within) has not closed (t + within + grace > watermark) on arrival, a
 * "b" when some window holding it could still be open (b.time + within + grace > watermark); a "b"
 * answers an "a" when it falls in its window and arrived before the window closed. A sequence
 * takes the earliest (time, arrival) answer that arrived before the "a", else the first to arrive
 * after it; an absence fires for an unanswered "a" whose window the final watermark closed.
 */
export function expectMatches(
  spec: PatternProcessorSpec,
  log: readonly Op[],
): { matches: ExpectedMatch[]; late: ExpectedLate[]; replay: Replay } {
  const r = replay(spec, log);
  const within = spec.pattern.withinMs;
  const late: ExpectedLate[] = [];
  const onTime: Accepted[] = [];
  for (const x of r.accepted) {
    const t = x.input.eventTime;
    if (isClosed(x.watermark, t + within + spec.graceMs))
      late.push({ partition: x.input.partition, sequence: x.input.sequence, windows: [{ start: t, end: t + within }] });
    else onTime.push(x);
  }
  const matches: ExpectedMatch[] = [];
  for (const a of onTime.filter((x) => x.input.role === "a")) {
    const ta = a.input.eventTime;
    const closesAt = ta + within + spec.graceMs;
    const answers = onTime.filter(
      (b) =>
        b.input.role === "b" &&
        b.input.key === a.input.key &&
        ta <= b.input.eventTime &&
        b.input.eventTime < ta + within &&
        !isClosed(b.watermark, closesAt),
    );
    const before = answers
      .filter((b) => b.arrival < a.arrival)
      .sort((x, y) => x.input.eventTime - y.input.eventTime || x.arrival - y.arrival);
    const after = answers.filter((b) => b.arrival > a.arrival).sort((x, y) => x.arrival - y.arrival);
    const answer = before[0] ?? after[0];
    if (spec.pattern.type === "absence") {
      if (answer === undefined && isClosed(r.watermark, closesAt)) matches.push({ key: a.input.key, a: a.input.id, b: null });
    } else if (answer !== undefined) matches.push({ key: a.input.key, a: a.input.id, b: answer.input.id });
  }
  return { matches, late, replay: r };
}
