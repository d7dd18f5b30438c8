import fc from "fast-check";
import { describe, expect, it } from "vitest";
import benchConfig, { BENCH_INPUT_TOPIC, BENCH_OUTPUT_TOPIC, BENCH_PROCESSOR } from "../../bench/processor-config";
import {
  checkCounts,
  expectedCounts,
  type InternalInput,
  replayWatermark,
  streamPlan,
  type WatermarkMove,
  watermarkLatencies,
} from "../../bench/processor-latency.mjs";
import shipped from "../../eventline.config";
import { apply, createState } from "../../shared/processing";
import { processorPlans } from "../../shared/processors";

/**
 * The processor benchmark (issue 21, bench/processors.mjs): its config is the shipped one plus
 * the benchmark's processor, and the arithmetic that turns what it reads back into figures —
 * expected counts, the check of the results, the watermark replay that finds which input closed
 * each window — is right. The replay must agree with the engine itself.
 */

const MINUTE = 60_000;
const START = Date.UTC(2026, 0, 1, 12, 0, 0);

describe("the bench's processor config", () => {
  it("is the shipped config plus one tumbling count per key over 1-minute windows, on its own topics", () => {
    const plan = processorPlans(benchConfig).get(BENCH_PROCESSOR);
    expect(plan?.spec).toMatchObject({
      kind: "aggregate",
      window: { type: "tumbling", sizeMs: MINUTE },
      aggregates: [{ name: "count", op: "count" }],
      emit: "final",
    });
    expect(plan?.config.input).toEqual({ topic: BENCH_INPUT_TOPIC });
    expect(plan?.config.output.topic).toBe(BENCH_OUTPUT_TOPIC);
    expect(plan?.instances).toBe(4);
    // Everything shipped is there unchanged; the bench adds its processor, its two topics and the internal one.
    expect(benchConfig.processors.slice(0, -1)).toEqual(shipped.processors);
    expect(benchConfig.topics.map((t) => t.name)).toEqual(
      expect.arrayContaining([...shipped.topics.map((t) => t.name), BENCH_INPUT_TOPIC, BENCH_OUTPUT_TOPIC, `processor.${BENCH_PROCESSOR}`]),
    );
    expect(benchConfig.topics).toHaveLength(shipped.topics.length + 3);
    expect(benchConfig.subscriptions).toEqual(shipped.subscriptions);
    // The shipped config itself knows nothing of it.
    expect(processorPlans(shipped).has(BENCH_PROCESSOR)).toBe(false);
    expect(shipped.topics.some((t) => t.name === BENCH_INPUT_TOPIC)).toBe(false);
  });
});

describe("the published stream and its expected counts", () => {
  it("gives every key an event in every minute, and counts per key and minute", () => {
    const plan = streamPlan({ events: 10_000, keys: 1000, minutes: 5, start: START });
    const counts = expectedCounts(plan);
    expect(counts.size).toBe(5000);
    expect(new Set(counts.values())).toEqual(new Set([2]));
    expect(plan.time(0)).toBe(START);
    expect(plan.time(9_999)).toBeLessThan(START + 5 * MINUTE);
    expect(plan.tickTime({ outOfOrdernessMs: 10_000, graceMs: 10_000 })).toBe(START + 6 * MINUTE + 20_000);
    expect(() => streamPlan({ events: 4_999, keys: 1000, minutes: 5, start: START })).toThrow(/cannot give/);
    expect(() => streamPlan({ events: 5_000, keys: 1000, minutes: 5, start: START + 1 })).toThrow(/whole minute/);
  });

  it("finds results missing, twice, with a wrong count or not expected", () => {
    const expected = new Map([
      [`a@${START}`, 2],
      [`b@${START}`, 1],
    ]);
    const ok = [
      { key: "a", windowStart: START, count: 2 },
      { key: "b", windowStart: START, count: 1 },
    ];
    expect(checkCounts(ok, expected)).toMatchObject({ exact: true, missing: 0, duplicates: 0, wrongCount: 0, unexpected: 0 });
    expect(checkCounts([ok[0] as (typeof ok)[0]], expected)).toMatchObject({ exact: false, missing: 1 });
    expect(checkCounts([...ok, ok[1] as (typeof ok)[0]], expected)).toMatchObject({ exact: false, duplicates: 1 });
    expect(checkCounts([{ ...(ok[0] as (typeof ok)[0]), count: 1 }, ok[1] as (typeof ok)[0]], expected)).toMatchObject({
      exact: false,
      wrongCount: 1,
    });
    expect(checkCounts([...ok, { key: "c", windowStart: START, count: 1 }], expected)).toMatchObject({ exact: false, unexpected: 1 });
  });
});

const input = (sequence: number, partition: number, eventTime: number, committedAt: number): InternalInput => ({
  sequence,
  partition,
  eventTime,
  committedAt,
  internalCommittedAt: committedAt + 5,
});

describe("the watermark replay", () => {
  const spec = { partitions: 2, outOfOrdernessMs: 10, idleTimeoutMs: 100 };

  it("moves to the minimum over active partitions, leaves idle ones out and never moves back", () => {
    const moves = replayWatermark(
      [
        input(1, 0, 1_000, 0),
        input(2, 1, 500, 1), // both partitions seen: min(990, 490)
        input(3, 1, 2_000, 2), // min(990, 1990)
        input(4, 0, 1_500, 3), // min(1490, 1990)
        input(5, 0, 1_600, 200), // partition 1 idle (last at 2, clock 200 ≥ 2 + 100 + 1): 1590 alone
        input(6, 1, 1_000, 201), // partition 1 back with 990: no move back
      ],
      spec,
    );
    expect(moves.map((m) => [m.sequence, m.watermark])).toEqual([
      [2, 490],
      [3, 990],
      [4, 1490],
      [5, 1590],
    ]);
  });

  it("agrees with the engine on every move, for random streams", () => {
    const arbitrary = fc.array(
      fc.record({
        partition: fc.integer({ min: 0, max: 2 }),
        eventTime: fc.integer({ min: 0, max: 600_000 }),
        gap: fc.integer({ min: -5_000, max: 30_000 }),
      }),
      { minLength: 1, maxLength: 200 },
    );
    fc.assert(
      fc.property(arbitrary, (stream) => {
        const watermark = { outOfOrdernessMs: 5_000, idleTimeoutMs: 10_000 };
        const state = createState({
          kind: "aggregate",
          name: "bench",
          partitions: 3,
          watermark,
          graceMs: 1_000,
          window: { type: "tumbling", sizeMs: MINUTE },
          emit: "final",
          aggregates: [{ name: "count", op: "count" }],
        });
        const sequences = [0, 0, 0];
        const inputs: InternalInput[] = [];
        const engineMoves: [number, number][] = [];
        let committedAt = START;
        stream.forEach((s, i) => {
          committedAt += s.gap;
          sequences[s.partition] = (sequences[s.partition] ?? 0) + 1;
          const before = state.time.watermark;
          apply(state, {
            partition: s.partition,
            sequence: sequences[s.partition] ?? 1,
            id: `e${i}`,
            key: `k${i % 7}`,
            eventTime: s.eventTime,
            receivedTime: committedAt,
          });
          if (state.time.watermark !== null && state.time.watermark !== before) engineMoves.push([i + 1, state.time.watermark]);
          inputs.push(input(i + 1, s.partition, s.eventTime, committedAt));
        });
        const replayed = replayWatermark(inputs, { partitions: 3, ...watermark }).map((m) => [m.sequence, m.watermark]);
        expect(replayed).toEqual(engineMoves);
      }),
      { numRuns: 200 },
    );
  });
});

describe("watermark → result latency", () => {
  const moves: WatermarkMove[] = [
    { watermark: 50_000, sequence: 3, inputCommittedAt: 1_000, internalCommittedAt: 1_040 },
    { watermark: 70_000, sequence: 9, inputCommittedAt: 2_000, internalCommittedAt: 2_050 },
  ];
  const result = (key: string, windowEnd: number, committedAt: number) => ({
    key,
    windowStart: windowEnd - MINUTE,
    windowEnd,
    count: 1,
    committedAt,
  });

  it("times each result from the input whose move reached its end + grace; what no move explains was the alarm's", () => {
    const l = watermarkLatencies(
      [
        result("a", 60_000, 2_300), // 60 s + 10 s grace: reached by the second move
        result("a", 40_000, 1_200), // 50 s: the first
        result("b", 120_000, 9_000), // never reached by an input: closed by the alarm
        result("a", 60_000, 2_010), // committed before the move's input reached the instance: the alarm's too
        result("z", 60_000, 3_000), // a key the instance never saw
      ],
      new Map([[0, moves]]),
      new Map([
        ["a", 0],
        ["b", 0],
      ]),
      10_000,
    );
    expect(l.fromInput).toEqual({ samples: 2, p50: 300, p99: 300, max: 300 });
    expect(l.fromInternal).toEqual({ samples: 2, p50: 250, p99: 250, max: 250 });
    expect(l.closedByAlarm).toBe(2);
    expect(l.unknownKey).toBe(1);
  });
});
