import fc from "fast-check";
import { fold } from "../shared/decider";
import {
  MAX_ORDER_LINES,
  type OrderCommand,
  type OrderEvent,
  type OrderLine,
  type OrderState,
  orderDecider,
} from "../workers/examples/orders/domain";

/**
 * fast-check arbitraries for the order aggregate, shared by the domain tests and any test that
 * needs realistic order streams (e.g. appending them to a partition log).
 */

export const currencyArb = fc.constantFrom("EUR", "USD", "GBP", "JPY");

/** A small SKU alphabet, so generated lines collide often enough to exercise the duplicate rules. */
export const skuArb = fc.constantFrom("A-1", "A-2", "B-7", "C-3", "D-9", "E-5");

/** Prices and quantities stay small enough that 100 lines cannot overflow a safe integer. */
export const lineArb: fc.Arbitrary<OrderLine> = fc.record({
  sku: skuArb,
  quantity: fc.integer({ min: 1, max: 10_000 }),
  unitPrice: fc.integer({ min: 0, max: 1_000_000 }),
});

const idArb = fc.string({ minLength: 1, maxLength: 16 });

export const placeCommandArb = (orderId?: string): fc.Arbitrary<Extract<OrderCommand, { kind: "place" }>> =>
  fc.record({
    kind: fc.constant("place" as const),
    orderId: orderId === undefined ? idArb : fc.constant(orderId),
    customerId: idArb,
    currency: currencyArb,
    lines: fc.uniqueArray(lineArb, { selector: (l) => l.sku, minLength: 1, maxLength: 5 }),
  });

/** The random choices for one step after place; which command they become depends on the state reached. */
const stepSeedArb = fc.record({
  /** Compared with the sequence's exit rate: below it, an open order moves on (pay or cancel). */
  roll: fc.nat(99),
  pick: fc.nat(),
  line: lineArb,
  carrier: fc.option(fc.string({ maxLength: 64 }), { nil: undefined }),
  reason: fc.option(fc.string({ maxLength: 500 }), { nil: undefined }),
});
type StepSeed = typeof stepSeedArb extends fc.Arbitrary<infer T> ? T : never;

/**
 * The command one seed becomes in `state`, always one the state allows; undefined once the order
 * is final. `exitPercent` is drawn per sequence so that some orders are paid at once and others
 * stay open for the whole sequence, changing lines.
 */
function nextCommand(state: OrderState, seed: StepSeed, exitPercent: number): OrderCommand | undefined {
  // Optional fields are left out rather than set to undefined, as a parsed HTTP body would be.
  const cancel: OrderCommand = seed.reason === undefined ? { kind: "cancel" } : { kind: "cancel", reason: seed.reason };
  switch (state.status) {
    case "open": {
      const canAdd = state.lines.length < MAX_ORDER_LINES;
      const canRemove = state.lines.length > 1;
      if (seed.roll < exitPercent || (!canAdd && !canRemove)) {
        // Paying is the usual way on; cancelling an open order one time in three.
        return seed.pick % 3 === 0 ? cancel : { kind: "pay", amount: state.total, currency: state.currency ?? "" };
      }
      if (canRemove && (!canAdd || seed.pick % 5 < 2)) {
        const line = state.lines[seed.pick % state.lines.length];
        if (line !== undefined) return { kind: "remove-line", sku: line.sku };
      }
      // Make the SKU unique on the order: an add-line of a present SKU would be refused.
      const taken = new Set(state.lines.map((l) => l.sku));
      let sku = seed.line.sku;
      for (let n = 2; taken.has(sku); n++) sku = `${seed.line.sku}.${n}`;
      return { kind: "add-line", line: { ...seed.line, sku } };
    }
    case "paid":
      if (seed.pick % 4 === 0) return cancel;
      return seed.carrier === undefined ? { kind: "ship" } : { kind: "ship", carrier: seed.carrier };
    default:
      // shipped and cancelled are final; none cannot occur after place.
      return undefined;
  }
}

/**
 * 1..30 commands, starting with place, each valid in the state the previous ones reach.
 * Each step turns its seed into a command the current state allows, so no step is ever
 * refused; the sequence ends early once the order is shipped or cancelled.
 */
export const commandSequenceArb = (orderId?: string): fc.Arbitrary<OrderCommand[]> =>
  fc
    .tuple(placeCommandArb(orderId), fc.integer({ min: 0, max: 50 }), fc.array(stepSeedArb, { maxLength: 29, size: "max" }))
    .map(([place, exitPercent, seeds]) => {
      const commands: OrderCommand[] = [place];
      let state = fold(orderDecider, orderDecider.decide(place, orderDecider.initialState));
      for (const seed of seeds) {
        const command = nextCommand(state, seed, exitPercent);
        if (command === undefined) break;
        commands.push(command);
        state = fold(orderDecider, orderDecider.decide(command, state), state);
      }
      return commands;
    });

/** Strings that are sometimes outside the event schemas' field rules (empty, too long). */
const looseString = (max: number) => fc.oneof(fc.string({ maxLength: 8 }), fc.string({ minLength: max + 1, maxLength: max + 4 }));
const looseLineArb: fc.Arbitrary<OrderLine> = fc.record({
  sku: fc.oneof(skuArb, looseString(64)),
  quantity: fc.oneof(fc.integer({ min: 1, max: 10 }), fc.integer({ min: -2, max: 0 }), fc.constant(10_001), fc.constant(1.5)),
  unitPrice: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.constant(-1), fc.constant(0.5), fc.constant(Number.MAX_SAFE_INTEGER)),
});
const looseCurrency = fc.oneof(currencyArb, fc.constantFrom("eur", "EURO", ""));
const looseAmount = fc.oneof(fc.integer({ min: 0, max: 10_000 }), fc.constantFrom(-1, 0.5, Number.NaN));

/** Any command, with fields that may break domain rules or the event schemas' field rules. */
export const anyCommandArb: fc.Arbitrary<OrderCommand> = fc.oneof(
  fc.record({
    kind: fc.constant("place" as const),
    orderId: fc.oneof(idArb, looseString(128)),
    customerId: fc.oneof(idArb, looseString(128)),
    currency: looseCurrency,
    lines: fc.array(fc.oneof(lineArb, looseLineArb), { maxLength: 5 }),
  }),
  fc.record({ kind: fc.constant("add-line" as const), line: fc.oneof(lineArb, looseLineArb) }),
  fc.record({ kind: fc.constant("remove-line" as const), sku: fc.oneof(skuArb, looseString(64)) }),
  fc.record({ kind: fc.constant("pay" as const), amount: looseAmount, currency: looseCurrency }),
  fc.record({ kind: fc.constant("ship" as const), carrier: fc.option(looseString(64), { nil: undefined }) }, { requiredKeys: ["kind"] }),
  fc.record({ kind: fc.constant("cancel" as const), reason: fc.option(looseString(500), { nil: undefined }) }, { requiredKeys: ["kind"] }),
);

/**
 * Runs commands through the decider from the initial state. `events` is the resulting stream;
 * `states[i]` is the state after `commands[i]`. A refused command throws its DomainError.
 */
export function runCommands(commands: readonly OrderCommand[]): { events: OrderEvent[]; states: OrderState[] } {
  const events: OrderEvent[] = [];
  const states: OrderState[] = [];
  let state = orderDecider.initialState;
  for (const command of commands) {
    const emitted = orderDecider.decide(command, state);
    state = fold(orderDecider, emitted, state);
    events.push(...emitted);
    states.push(state);
  }
  return { events, states };
}
