import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Decider, DomainError, fold } from "../../shared/decider";

/** A toy counter: enough to pin down fold's contract without the order rules. */
type CounterEvent = { type: "added"; n: number } | { type: "reset" };
type CounterCommand = { kind: "add"; n: number } | { kind: "reset" };
interface CounterState {
  value: number;
  seen: number;
}

const counter: Decider<CounterCommand, CounterEvent, CounterState> = {
  initialState: { value: 0, seen: 0 },
  decide(command, state) {
    if (command.kind === "reset") {
      if (state.value === 0) throw new DomainError("rejected", "already zero");
      return [{ type: "reset" }];
    }
    return [{ type: "added", n: command.n }];
  },
  evolve(state, event) {
    return event.type === "added" ? { value: state.value + event.n, seen: state.seen + 1 } : { value: 0, seen: state.seen + 1 };
  },
};

const eventArb: fc.Arbitrary<CounterEvent> = fc.oneof(
  fc.record({ type: fc.constant("added" as const), n: fc.integer({ min: -100, max: 100 }) }),
  fc.constant({ type: "reset" as const }),
);

describe("fold", () => {
  it("returns the initial state for an empty stream", () => {
    expect(fold(counter, [])).toEqual({ value: 0, seen: 0 });
    expect(fold(counter, [])).toBe(counter.initialState);
  });

  it("applies events in order", () => {
    expect(fold(counter, [{ type: "added", n: 2 }, { type: "reset" }, { type: "added", n: 5 }])).toEqual({ value: 5, seen: 3 });
    expect(fold(counter, [{ type: "added", n: 5 }, { type: "reset" }, { type: "added", n: 2 }])).toEqual({ value: 2, seen: 3 });
  });

  it("starts from a given state instead of the initial one", () => {
    expect(fold(counter, [{ type: "added", n: 1 }], { value: 10, seen: 4 })).toEqual({ value: 11, seen: 5 });
    expect(fold(counter, [], { value: 7, seen: 1 })).toEqual({ value: 7, seen: 1 });
  });

  it("folding a prefix then the rest equals folding the whole stream (property)", () => {
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 30 }), fc.nat(), (events, at) => {
        const k = at % (events.length + 1);
        expect(fold(counter, events.slice(k), fold(counter, events.slice(0, k)))).toEqual(fold(counter, events));
      }),
    );
  });

  it("folding what decide emits is how a command takes effect", () => {
    const state = fold(counter, counter.decide({ kind: "add", n: 3 }, counter.initialState));
    expect(state).toEqual({ value: 3, seen: 1 });
    expect(fold(counter, counter.decide({ kind: "reset" }, state), state)).toEqual({ value: 0, seen: 2 });
  });
});

describe("DomainError", () => {
  it("carries a code and a message and is an Error", () => {
    const error = new DomainError("not_found", "no such order");
    expect(error).toBeInstanceOf(Error);
    expect(error).toBeInstanceOf(DomainError);
    expect(error.name).toBe("DomainError");
    expect(error.code).toBe("not_found");
    expect(error.message).toBe("no such order");
    expect(String(error)).toBe("DomainError: no such order");
  });

  it("is what decide throws for a refused command", () => {
    expect(() => counter.decide({ kind: "reset" }, counter.initialState)).toThrow(DomainError);
    expect(() => counter.decide({ kind: "reset" }, counter.initialState)).toThrow(expect.objectContaining({ code: "rejected" }));
  });
});
