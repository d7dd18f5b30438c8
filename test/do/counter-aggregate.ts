import { z } from "zod";
import config from "../../eventline.config";
import type { Aggregate } from "../../shared/aggregate";
import { findTopic } from "../../shared/config";
import { type Decider, DomainError } from "../../shared/decider";

/**
 * A second aggregate, nothing like orders, for the partition log's generic command host: a
 * counter on the `events` topic that may not pass a limit. Its state is a number, so a snapshot
 * is its decimal text.
 */

export type CounterCommand = { kind: "add"; by: number } | { kind: "touch" };
export type CounterEvent = { type: "counter.added"; data: { by: number } };

export const COUNTER_LIMIT = 100;

const decider: Decider<CounterCommand, CounterEvent, number> = {
  initialState: 0,
  decide(command, state) {
    if (command.kind === "touch") return [];
    if (state + command.by > COUNTER_LIMIT)
      throw new DomainError("rejected", `the counter is at ${state}; adding ${command.by} passes ${COUNTER_LIMIT}`);
    return [{ type: "counter.added", data: { by: command.by } }];
  },
  evolve: (state, event) => state + event.data.by,
};

const topic = findTopic(config, "events");
if (topic === undefined) throw new Error("the events topic is missing");

export const counterAggregate: Aggregate<CounterCommand, CounterEvent, number> = {
  name: "test-counter",
  topic,
  source: (subject) => `/counters/${subject}`,
  decider,
  commandSchema: z.discriminatedUnion("kind", [
    z.object({ kind: z.literal("add"), by: z.number().int().positive() }).strict(),
    z.object({ kind: z.literal("touch") }).strict(),
  ]),
  snapshotSchema: 1,
  serialize: (state) => String(state),
  deserialize: (text) => {
    const n = Number(text);
    if (!Number.isInteger(n) || text.trim() === "") throw new Error(`not a counter snapshot: ${JSON.stringify(text)}`);
    return n;
  },
  parse: (stored) => {
    const data = z.object({ by: z.number().int() }).safeParse(stored.data);
    if (stored.type !== "counter.added" || !data.success) throw new Error(`not a counter event: ${JSON.stringify(stored)}`);
    return { type: "counter.added", data: data.data };
  },
};
