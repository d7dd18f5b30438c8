import { expect } from "vitest";
import { orderEventSchemas } from "../../eventline.config";
import { DomainError, type DomainErrorCode } from "../../shared/decider";
import {
  ORDER_EVENT_TYPES,
  type OrderCommand,
  type OrderEvent,
  type OrderLine,
  type OrderState,
  orderDecider,
} from "../../workers/examples/orders/domain";
import { runCommands } from "../orders-arbitraries";

/*
 * Shared fixtures of the orders domain's unit tests (test/unit/orders-domain-*.test.ts): a
 * two-line order and its commands, the states they lead to, and the assertions that a command
 * is refused (with its code and rule) or allowed (with one event the topic's schema accepts),
 * decide never touching the state it is given. All pure: nothing here is shared state.
 */

export const lines: OrderLine[] = [
  { sku: "A", quantity: 2, unitPrice: 500 },
  { sku: "B", quantity: 1, unitPrice: 250 },
];
export const TOTAL = 1250;

export const place = (overrides: Partial<Extract<OrderCommand, { kind: "place" }>> = {}): OrderCommand => ({
  kind: "place",
  orderId: "o-1",
  customerId: "c-1",
  currency: "EUR",
  lines,
  ...overrides,
});
// Typed as their own variant (not OrderCommand), so a test may spread one and change a field.
export const pay: Extract<OrderCommand, { kind: "pay" }> = { kind: "pay", amount: TOTAL, currency: "EUR" };
export const ship: Extract<OrderCommand, { kind: "ship" }> = { kind: "ship", carrier: "DHL" };
export const cancel: Extract<OrderCommand, { kind: "cancel" }> = { kind: "cancel", reason: "changed my mind" };

export const stateAfter = (...commands: OrderCommand[]): OrderState => runCommands(commands).states.at(-1) ?? orderDecider.initialState;

export const states = {
  none: orderDecider.initialState,
  open: stateAfter(place()),
  paid: stateAfter(place(), pay),
  shipped: stateAfter(place(), pay, ship),
  cancelled: stateAfter(place(), cancel),
  "cancelled after payment": stateAfter(place(), pay, cancel),
} satisfies Record<string, OrderState>;

/** Runs decide, catching a DomainError, and checks decide left the state untouched either way. */
export function attempt(command: OrderCommand, state: OrderState): { events: OrderEvent[]; error?: DomainError } {
  const before = structuredClone(state);
  try {
    return { events: orderDecider.decide(command, state) };
  } catch (error) {
    if (!(error instanceof DomainError)) throw error;
    return { events: [], error };
  } finally {
    expect(state).toStrictEqual(before);
  }
}

/** Asserts a refusal: the code, a message naming the rule, and no events. */
export function expectRefused(command: OrderCommand, state: OrderState, code: DomainErrorCode, message: RegExp): void {
  const { events, error } = attempt(command, state);
  expect(events).toEqual([]);
  expect(error).toBeInstanceOf(DomainError);
  expect(error?.code).toBe(code);
  expect(error?.message).toMatch(message);
}

/** Asserts the command is allowed and returns its single event after checking it against the topic schema. */
export function expectAllowed(command: OrderCommand, state: OrderState): OrderEvent {
  const { events, error } = attempt(command, state);
  expect(error).toBeUndefined();
  expect(events).toHaveLength(1);
  for (const event of events) expectValidEvent(event);
  const [event] = events;
  if (event === undefined) throw new Error("unreachable: length checked above");
  return event;
}

export function expectValidEvent(event: OrderEvent): void {
  expect(ORDER_EVENT_TYPES).toContain(event.type);
  const result = orderEventSchemas[event.type].safeParse(event.data);
  expect(result.error).toBeUndefined();
  expect(result.data).toStrictEqual(event.data);
}

export const manyLines = (n: number): OrderLine[] => Array.from({ length: n }, (_, i) => ({ sku: `sku-${i}`, quantity: 1, unitPrice: 10 }));

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** The status changes a single command may cause; shipped and cancelled are final. */
export const ALLOWED_EDGES = new Set(["none>open", "open>open", "open>paid", "open>cancelled", "paid>shipped", "paid>cancelled"]);

export const sumOfLines = (state: OrderState) => state.lines.reduce((sum, l) => sum + l.quantity * l.unitPrice, 0);
