// The bench's knobs: command-line flags (`npm run bench -- --e2e-events 2000`), each with an
// environment variable of the same meaning (BENCH_E2E_EVENTS=2000) for CI and older habits; a
// flag wins over its variable. `--smoke` lowers every size at once for a quick check that the
// scripts work, and writes bench/results/smoke.* instead of latest.* (latest.* is the committed
// record of a full run).
import { parseArgs } from "node:util";

/** flag → [environment variable, default, minimum, smoke value, what it sets]. */
const KNOBS = {
  duration: ["BENCH_DURATION", 8, 1, 1, "seconds per ingest run"],
  runs: ["BENCH_RUNS", 3, 1, 1, "interleaved runs per ingest scenario"],
  warmup: ["BENCH_WARMUP", 3, 0, 0, "warm-up seconds per ingest scenario"],
  connections: ["BENCH_CONNECTIONS", 16, 1, 16, "autocannon connections"],
  "batch-size": ["BENCH_BATCH_SIZE", 100, 1, 100, "events per ingest batch request"],
  "max-retries": ["BENCH_MAX_RETRIES", 5, 0, 0, "ingest runs repeated in all because others used the CPU"],
  "e2e-events": ["BENCH_E2E_EVENTS", 20_000, 100, 2_000, "events published by the end-to-end scenario"],
  "e2e-concurrency": ["BENCH_E2E_CONCURRENCY", 8, 1, 8, "end-to-end publish requests in flight (batches of 100)"],
  "e2e-timeout": ["BENCH_E2E_TIMEOUT", 300, 5, 120, "seconds to wait for the end-to-end events to be handled"],
  "replay-timeout": ["BENCH_REPLAY_TIMEOUT", 300, 5, 120, "seconds to wait for the replay's events to be handled"],
  "replay-rate": ["BENCH_REPLAY_RATE", 10_000, 1, 10_000, "the replay job's rate limit, events/s (the API's maximum)"],
  "steady-skip": ["BENCH_STEADY_SKIP", 10, 0, 10, "% of handled events left out at the start of the steady-state window"],
  "steady-tail": ["BENCH_STEADY_TAIL", 10, 0, 10, "% of handled events left out at the end of the steady-state window"],
  "command-duration": ["BENCH_COMMAND_DURATION", 8, 1, 2, "seconds per command scenario"],
  "command-connections": ["BENCH_COMMAND_CONNECTIONS", 8, 1, 8, "concurrent command clients"],
  "visibility-samples": ["BENCH_VISIBILITY_SAMPLES", 100, 1, 20, "orders timed from command to read model"],
  "processor-events": [
    "BENCH_PROCESSOR_EVENTS",
    50_000,
    5_000,
    5_000,
    "events through the count-per-key processor (1,000 keys over 5 minutes of event time)",
  ],
  "processor-timeout": ["BENCH_PROCESSOR_TIMEOUT", 300, 5, 120, "seconds to wait for the processor to apply them and append its results"],
  "live-duration": ["BENCH_LIVE_DURATION", 10, 1, 2, "seconds of posting at 1,000 events/s while an SSE reader follows the partition"],
};

export function usage() {
  const lines = Object.entries(KNOBS).map(
    ([flag, [env, dflt, , smoke, what]]) => `  --${flag.padEnd(20)} ${what} (default ${dflt}, --smoke ${smoke}; ${env})`,
  );
  return [
    "usage: npm run bench [-- [--smoke] [--flag N …]]",
    "  --smoke                lower every size below to its smoke value; results go to bench/results/smoke.*",
    "  --out NAME             results file name under bench/results (default latest, or smoke with --smoke)",
    "  --foreign-cpu CORES    cores others may use before an ingest run is repeated (default 0.25; BENCH_FOREIGN_CPU)",
    ...lines,
  ].join("\n");
}

function integer(name, raw, min) {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer ≥ ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

/** Settings from argv and the environment; throws with the usage on a bad flag. */
export function readSettings(argv = process.argv.slice(2), env = process.env) {
  const { values } = parseArgs({
    args: argv,
    options: {
      smoke: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
      out: { type: "string" },
      "foreign-cpu": { type: "string" },
      ...Object.fromEntries(Object.keys(KNOBS).map((flag) => [flag, { type: "string" }])),
    },
    strict: true,
  });
  if (values.help) return { help: true };
  const knob = (flag) => {
    const [envName, dflt, min, smoke] = KNOBS[flag];
    if (values[flag] !== undefined) return integer(`--${flag}`, values[flag], min);
    if (env[envName] !== undefined && env[envName] !== "") return integer(envName, env[envName], min);
    return values.smoke ? smoke : dflt;
  };
  const foreignCpu = Number(values["foreign-cpu"] ?? env.BENCH_FOREIGN_CPU ?? 0.25);
  if (!(foreignCpu >= 0)) throw new Error(`--foreign-cpu must be a number ≥ 0, got ${JSON.stringify(values["foreign-cpu"])}`);
  const steadySkip = knob("steady-skip");
  const steadyTail = knob("steady-tail");
  if (steadySkip + steadyTail >= 90) throw new Error("--steady-skip + --steady-tail must leave at least 10% of the events");
  return {
    smoke: values.smoke,
    out: values.out ?? (values.smoke ? "smoke" : "latest"),
    durationSec: knob("duration"),
    runs: knob("runs"),
    warmupSec: knob("warmup"),
    // Enough concurrency to keep workerd's JS thread busy without the load generator (same
    // 2 cores) becoming the bottleneck; clientCpuShare in the results shows it was not.
    connections: knob("connections"),
    batchSize: knob("batch-size"),
    // Cores that other processes may use during a run before it counts as disturbed, and how many
    // disturbed runs in all are repeated (a budget, so a busy machine can't stretch the bench
    // by more than that many runs); a disturbed run past the budget is kept and flagged.
    foreignCpuLimit: foreignCpu,
    maxRetries: knob("max-retries"),
    // End-to-end scenario: events published (batches of 100, `e2eConcurrency` requests at a time,
    // as fast as ingest takes them) and how long to wait for the consumer to handle them.
    e2eEvents: knob("e2e-events"),
    e2eConcurrency: knob("e2e-concurrency"),
    e2eTimeoutSec: knob("e2e-timeout"),
    // Replay (a rebuild of `activity`): its rate limit, and how long to wait for it to be handled.
    replayRate: knob("replay-rate"),
    replayTimeoutSec: knob("replay-timeout"),
    // Steady state: the handled events/s between these shares of the events (start-up and tail left out).
    steadyWindowPct: [steadySkip, 100 - steadyTail],
    // Command scenarios: seconds per scenario, concurrent clients, and orders timed until visible.
    commandSec: knob("command-duration"),
    commandConcurrency: knob("command-connections"),
    visibilitySamples: knob("visibility-samples"),
    liveSec: knob("live-duration"),
    // Processor scenario (issue 21): events through bench-count-per-key, and how long to wait for them.
    processorEvents: knob("processor-events"),
    processorTimeoutSec: knob("processor-timeout"),
    compatibilityDate: "2026-11-01",
  };
}
