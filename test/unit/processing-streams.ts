import fc from "fast-check";
import {
  advance,
  apply,
  createState,
  type EngineState,
  type LateInput,
  type ProcessorInput,
  type ProcessorResult,
  type ProcessorSpecInput,
  restoreState,
} from "../../shared/processing";
import type { Op } from "./processing-oracle";

/*
 * Random input streams for the processing engine's properties, and a host simulation that
 * crashes: several partitions with increasing (gapped) sequences, event times that wander
 * forwards and sometimes jump far back (late), redeliveries of inputs already seen, processing
 * time ticks, and a run that commits now and then and crashes at random points. A crash throws
 * away the uncommitted state and results, restores the committed state from its JSON text
 * (restoreState: parsed, not cast) and
 * redelivers the inputs since the commit (the dead process's ticks are not replayed).
 */

export const KEYS = ["a", "b", "__proto__", "x:y/z"] as const;
const CUSTOMERS = ["ann", "bo", "cy", "1"] as const;

type Step =
  | {
      t: "event";
      partition: number;
      dt: number;
      back: boolean;
      key: number;
      amount: number | null;
      customer: number | null;
      skip: number;
      rdt: number;
      role: boolean;
    }
  | { t: "dup"; partition: number; back: number }
  | { t: "advance"; dt: number };

const stepArb = (partitions: number): fc.Arbitrary<Step> =>
  fc.oneof(
    {
      weight: 8,
      arbitrary: fc.record({
        t: fc.constant("event" as const),
        partition: fc.nat(partitions - 1),
        // Coarse times (multiples of 500 ms) so that window ends, grace and idle boundaries are hit exactly.
        dt: fc.integer({ min: -5, max: 12 }).map((x) => x * 500),
        back: fc.nat(9).map((x) => x === 0),
        key: fc.nat(KEYS.length - 1),
        amount: fc.option(fc.integer({ min: -50, max: 1_000 }), { freq: 6 }),
        customer: fc.option(fc.nat(CUSTOMERS.length - 1), { freq: 5 }),
        skip: fc.integer({ min: 1, max: 3 }),
        rdt: fc.integer({ min: 0, max: 8 }).map((x) => x * 500),
        role: fc.boolean(),
      }),
    },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("dup" as const), partition: fc.nat(partitions - 1), back: fc.nat(5) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("advance" as const), dt: fc.integer({ min: 0, max: 50 }).map((x) => x * 500) }) },
  );

/** Turns steps into operations: inputs (new or redelivered) and ticks. */
export function buildOps(partitions: number, steps: readonly Step[], withRoles: boolean): Op[] {
  const seq = Array.from({ length: partitions }, () => 0);
  const time = Array.from({ length: partitions }, () => 100_000);
  const delivered: ProcessorInput[][] = Array.from({ length: partitions }, () => []);
  let clock = 1_000_000;
  let n = 0;
  const ops: Op[] = [];
  for (const step of steps) {
    if (step.t === "advance") {
      clock += step.dt;
      ops.push({ op: "advance", now: clock });
      continue;
    }
    const list = delivered[step.partition] ?? [];
    if (step.t === "dup") {
      const again = list[list.length - 1 - step.back];
      if (again !== undefined) ops.push({ op: "input", input: { ...again } });
      continue;
    }
    clock += step.rdt;
    const p = step.partition;
    seq[p] = (seq[p] ?? 0) + step.skip;
    time[p] = (time[p] ?? 0) + step.dt;
    const eventTime = step.back ? (time[p] ?? 0) - 30_000 : (time[p] ?? 0);
    const value: Record<string, string | number> = {};
    if (step.amount !== null) value.amount = step.amount;
    if (step.customer !== null) value.customer = CUSTOMERS[step.customer] ?? "ann";
    const input: ProcessorInput = {
      partition: p,
      sequence: seq[p] ?? 0,
      id: `e${n++}`,
      key: KEYS[step.key] ?? "a",
      eventTime,
      receivedTime: clock,
      value,
      ...(withRoles ? { role: step.role ? ("a" as const) : ("b" as const) } : {}),
    };
    list.push(input);
    delivered[p] = list;
    ops.push({ op: "input", input });
  }
  return ops;
}

export const streamArb = (maxSteps: number) =>
  fc.integer({ min: 1, max: 3 }).chain((partitions) =>
    fc.record({
      partitions: fc.constant(partitions),
      steps: fc.array(stepArb(partitions), { minLength: 1, maxLength: maxSteps, size: "max" }),
      commits: fc.array(
        fc.nat(3).map((n) => n === 0),
        { minLength: maxSteps, maxLength: maxSteps },
      ),
      crashes: fc.uniqueArray(fc.nat(maxSteps), { maxLength: 4, size: "max" }),
    }),
  );

export interface HostRun {
  /** Operations applied to the state that survived (what the oracle replays). */
  log: Op[];
  /** Committed results by id (the idempotent output topic). */
  output: Map<string, ProcessorResult>;
  /** Committed late inputs, in order. */
  late: LateInput[];
  state: EngineState;
  /** Inputs handed over again after a crash (they had been applied, then lost with the uncommitted state). */
  redelivered: number;
}

/**
 * Runs ops through the engine as a host would: each step's results are kept with the state and
 * published only when the state commits (an outbox); a crash loses what was not committed.
 * Throws when a committed result id is committed twice.
 */
export function runWithCrashes(
  spec: ProcessorSpecInput,
  ops: readonly Op[],
  commits: readonly boolean[],
  crashes: readonly number[],
): HostRun {
  let committed = JSON.stringify(createState(spec));
  let state = restoreState(committed);
  let committedLog: Op[] = [];
  let log: Op[] = [];
  let pendingResults: ProcessorResult[] = [];
  let pendingLate: LateInput[] = [];
  const output = new Map<string, ProcessorResult>();
  const late: LateInput[] = [];
  const crashAt = new Set(crashes);
  // Inputs handed over since the last commit: what the source redelivers after a crash.
  let uncommittedInputs: Op[] = [];
  const queue: Op[] = [...ops];
  let step = 0;
  let redelivered = 0;

  const commit = () => {
    committed = JSON.stringify(state);
    committedLog = [...log];
    uncommittedInputs = [];
    for (const r of pendingResults) {
      if (output.has(r.id)) throw new Error(`result ${r.id} committed twice`);
      output.set(r.id, r);
    }
    late.push(...pendingLate);
    pendingResults = [];
    pendingLate = [];
  };

  while (queue.length > 0) {
    if (crashAt.delete(step)) {
      state = restoreState(committed);
      log = [...committedLog];
      pendingResults = [];
      pendingLate = [];
      queue.unshift(...uncommittedInputs);
      redelivered += uncommittedInputs.length;
      uncommittedInputs = [];
      step++;
      continue;
    }
    const op = queue.shift();
    if (op === undefined) break;
    log.push(op);
    if (op.op === "advance") {
      pendingResults.push(...advance(state, op.now).results);
    } else {
      uncommittedInputs.push(op);
      const outcome = apply(state, op.input);
      pendingResults.push(...outcome.results);
      pendingLate.push(...outcome.late);
    }
    if (commits[step % commits.length] === true) commit();
    step++;
  }
  commit();
  return { log, output, late, state: restoreState(committed), redelivered };
}
