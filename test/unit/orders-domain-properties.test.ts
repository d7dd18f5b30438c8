import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type DomainErrorCode, fold } from "../../shared/decider";
import { deserializeState, orderDecider, orderStateSchema, serializeState } from "../../workers/examples/orders/domain";
import { anyCommandArb, commandSequenceArb, runCommands } from "../orders-arbitraries";
import { ALLOWED_EDGES, attempt, deepFreeze, expectValidEvent, sumOfLines } from "./orders-fixtures";

/*
 * Properties of the orders decider (fast-check): over valid command sequences (every command
 * accepted with one valid event, invariants kept, status only along allowed edges, folding and
 * snapshot + tail giving the same state, nothing mutated) and over arbitrary commands (a
 * DomainError or valid events, nothing emitted on an order that does not exist but place).
 * Fixtures: orders-fixtures.ts.
 */

describe("properties of valid command sequences", () => {
  it("the arbitrary yields 1..30 commands starting with place, for the given order id", () => {
    fc.assert(
      fc.property(commandSequenceArb("order-42"), (commands) => {
        expect(commands.length).toBeGreaterThanOrEqual(1);
        expect(commands.length).toBeLessThanOrEqual(30);
        expect(commands[0]).toMatchObject({ kind: "place", orderId: "order-42" });
        expect(commands.slice(1).every((c) => c.kind !== "place")).toBe(true);
      }),
    );
  });

  it("decide accepts every command, emitting one valid event each", () => {
    fc.assert(
      fc.property(commandSequenceArb(), (commands) => {
        let state = orderDecider.initialState;
        for (const command of commands) {
          const events = orderDecider.decide(command, state);
          expect(events).toHaveLength(1);
          for (const event of events) expectValidEvent(event);
          state = fold(orderDecider, events, state);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("every state keeps its invariants: total is the sum of the lines", () => {
    fc.assert(
      fc.property(commandSequenceArb(), (commands) => {
        const { states: reached } = runCommands(commands);
        for (const state of reached) {
          expect(state.total).toBe(sumOfLines(state));
          expect(orderStateSchema.safeParse(state).error).toBeUndefined();
        }
      }),
      { numRuns: 200 },
    );
  });

  it("status only moves along allowed edges", () => {
    fc.assert(
      fc.property(commandSequenceArb(), (commands) => {
        const statuses = [orderDecider.initialState, ...runCommands(commands).states].map((s) => s.status);
        for (let i = 1; i < statuses.length; i++) expect(ALLOWED_EDGES).toContain(`${statuses[i - 1]}>${statuses[i]}`);
      }),
      { numRuns: 200 },
    );
  });

  it("folding the stream gives the final state", () => {
    fc.assert(
      fc.property(commandSequenceArb(), (commands) => {
        const { events, states: reached } = runCommands(commands);
        expect(events).toHaveLength(commands.length);
        expect(fold(orderDecider, events)).toStrictEqual(reached.at(-1));
      }),
      { numRuns: 200 },
    );
  });

  it("snapshot + tail = whole stream, at every split point", () => {
    fc.assert(
      fc.property(commandSequenceArb(), (commands) => {
        const { events } = runCommands(commands);
        const whole = fold(orderDecider, events);
        for (let k = 0; k <= events.length; k++) {
          const snapshot = deserializeState(serializeState(fold(orderDecider, events.slice(0, k))));
          expect(fold(orderDecider, events.slice(k), snapshot)).toStrictEqual(whole);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("evolve never mutates states or events (all frozen)", () => {
    fc.assert(
      fc.property(commandSequenceArb(), (commands) => {
        const { events, states: reached } = runCommands(commands);
        const frozenEvents = deepFreeze(structuredClone(events));
        let state = deepFreeze(structuredClone(orderDecider.initialState));
        for (const [i, event] of frozenEvents.entries()) {
          state = deepFreeze(orderDecider.evolve(state, event));
          expect(state).toStrictEqual(reached[i]);
        }
      }),
    );
  });
});

describe("properties of arbitrary commands", () => {
  it("on any reachable state, decide refuses with a DomainError or emits valid events", () => {
    const codes: DomainErrorCode[] = ["not_found", "already_exists", "rejected"];
    fc.assert(
      fc.property(commandSequenceArb(), fc.nat(), anyCommandArb, (commands, at, command) => {
        const reached = [orderDecider.initialState, ...runCommands(commands).states];
        const state = reached[at % reached.length] ?? orderDecider.initialState;
        const { events, error } = attempt(command, state);
        if (error !== undefined) {
          expect(codes).toContain(error.code);
          expect(error.message.length).toBeGreaterThan(0);
          expect(events).toEqual([]);
          return;
        }
        expect(events.length).toBeGreaterThan(0);
        for (const event of events) expectValidEvent(event);
        expect(orderStateSchema.safeParse(fold(orderDecider, events, state)).error).toBeUndefined();
      }),
      { numRuns: 500 },
    );
  });

  it("never emits on an order that does not exist, except for place", () => {
    fc.assert(
      fc.property(anyCommandArb, (command) => {
        const { events, error } = attempt(command, orderDecider.initialState);
        if (command.kind === "place") expect(error === undefined ? "ok" : error.code).not.toBe("not_found");
        else expect({ events, code: error?.code }).toStrictEqual({ events: [], code: "not_found" });
      }),
    );
  });
});
