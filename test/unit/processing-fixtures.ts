import {
  advance,
  apply,
  createState,
  type EngineState,
  type ProcessorInput,
  type ProcessorResult,
  type ProcessorSpecInput,
} from "../../shared/processing";

/* Small builders for the processing engine's table tests. */

/** An input; ids are "p<partition>s<sequence>" so tables can name the expected causation. */
export function ev(
  partition: number,
  sequence: number,
  key: string,
  eventTime: number,
  extra: Partial<ProcessorInput> = {},
): ProcessorInput {
  return { partition, sequence, id: `p${partition}s${sequence}`, key, eventTime, receivedTime: 0, ...extra };
}

export type Step = ProcessorInput | { now: number };

/** Runs steps, round-tripping the state through JSON after each, and collects everything emitted. */
export function run(spec: ProcessorSpecInput, steps: readonly Step[], start?: EngineState) {
  let state = start ?? createState(spec);
  const results: ProcessorResult[] = [];
  const late: string[] = [];
  const perStep: ProcessorResult[][] = [];
  for (const step of steps) {
    if ("now" in step) {
      const outcome = advance(state, step.now);
      state = outcome.state;
      results.push(...outcome.results);
      perStep.push(outcome.results);
    } else {
      const outcome = apply(state, step);
      state = outcome.state;
      results.push(...outcome.results);
      late.push(...outcome.late.map((l) => l.id));
      perStep.push(outcome.results);
    }
    state = JSON.parse(JSON.stringify(state)) as EngineState;
  }
  return { state, results, late, perStep };
}
