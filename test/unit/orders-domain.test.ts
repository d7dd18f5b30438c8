import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { orderEventSchemas } from "../../eventline.config";
import { DomainError, type DomainErrorCode, fold } from "../../shared/decider";
import {
  addLineBody,
  cancelBody,
  commandBodies,
  deserializeState,
  MAX_ORDER_LINES,
  ORDER_EVENT_TYPES,
  type OrderCommand,
  type OrderEvent,
  type OrderLine,
  type OrderState,
  type OrderStatus,
  orderDecider,
  orderStateSchema,
  payBody,
  placeOrderBody,
  removeLineBody,
  SNAPSHOT_SCHEMA_VERSION,
  serializeState,
  shipBody,
} from "../../shared/orders/domain";
import { anyCommandArb, commandSequenceArb, runCommands } from "../orders-arbitraries";

// ---------------------------------------------------------------------------------------------
// Fixtures and helpers

const lines: OrderLine[] = [
  { sku: "A", quantity: 2, unitPrice: 500 },
  { sku: "B", quantity: 1, unitPrice: 250 },
];
const TOTAL = 1250;

const place = (overrides: Partial<Extract<OrderCommand, { kind: "place" }>> = {}): OrderCommand => ({
  kind: "place",
  orderId: "o-1",
  customerId: "c-1",
  currency: "EUR",
  lines,
  ...overrides,
});
const pay: OrderCommand = { kind: "pay", amount: TOTAL, currency: "EUR" };
const ship: OrderCommand = { kind: "ship", carrier: "DHL" };
const cancel: OrderCommand = { kind: "cancel", reason: "changed my mind" };

const stateAfter = (...commands: OrderCommand[]): OrderState => runCommands(commands).states.at(-1) ?? orderDecider.initialState;

const states = {
  none: orderDecider.initialState,
  open: stateAfter(place()),
  paid: stateAfter(place(), pay),
  shipped: stateAfter(place(), pay, ship),
  cancelled: stateAfter(place(), cancel),
  "cancelled after payment": stateAfter(place(), pay, cancel),
} satisfies Record<string, OrderState>;

/** Runs decide, catching a DomainError, and checks decide left the state untouched either way. */
function attempt(command: OrderCommand, state: OrderState): { events: OrderEvent[]; error?: DomainError } {
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
function expectRefused(command: OrderCommand, state: OrderState, code: DomainErrorCode, message: RegExp): void {
  const { events, error } = attempt(command, state);
  expect(events).toEqual([]);
  expect(error).toBeInstanceOf(DomainError);
  expect(error?.code).toBe(code);
  expect(error?.message).toMatch(message);
}

/** Asserts the command is allowed and returns its single event after checking it against the topic schema. */
function expectAllowed(command: OrderCommand, state: OrderState): OrderEvent {
  const { events, error } = attempt(command, state);
  expect(error).toBeUndefined();
  expect(events).toHaveLength(1);
  for (const event of events) expectValidEvent(event);
  const [event] = events;
  if (event === undefined) throw new Error("unreachable: length checked above");
  return event;
}

function expectValidEvent(event: OrderEvent): void {
  expect(ORDER_EVENT_TYPES).toContain(event.type);
  const result = orderEventSchemas[event.type].safeParse(event.data);
  expect(result.error).toBeUndefined();
  expect(result.data).toStrictEqual(event.data);
}

const manyLines = (n: number): OrderLine[] => Array.from({ length: n }, (_, i) => ({ sku: `sku-${i}`, quantity: 1, unitPrice: 10 }));

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** The status changes a single command may cause; shipped and cancelled are final. */
const ALLOWED_EDGES = new Set(["none>open", "open>open", "open>paid", "open>cancelled", "paid>shipped", "paid>cancelled"]);

const sumOfLines = (state: OrderState) => state.lines.reduce((sum, l) => sum + l.quantity * l.unitPrice, 0);

// ---------------------------------------------------------------------------------------------
// Rules

describe("place", () => {
  it("emits orders.placed and opens the order", () => {
    const event = expectAllowed(place(), states.none);
    expect(event).toStrictEqual({ type: "orders.placed", data: { orderId: "o-1", customerId: "c-1", currency: "EUR", lines } });
    expect(fold(orderDecider, [event])).toStrictEqual({
      status: "open",
      orderId: "o-1",
      customerId: "c-1",
      currency: "EUR",
      lines,
      total: TOTAL,
      paid: 0,
    });
  });

  it.each(["open", "paid", "shipped", "cancelled", "cancelled after payment"] as const)("is refused when the order is %s", (name) => {
    expectRefused(place(), states[name], "already_exists", /already exists/);
  });

  it("needs at least one line", () => {
    expectRefused(place({ lines: [] }), states.none, "rejected", /at least one line/);
  });

  it("refuses the same SKU on two lines", () => {
    const dup = [...lines, { sku: "A", quantity: 1, unitPrice: 1 }];
    expectRefused(place({ lines: dup }), states.none, "rejected", /SKU A appears on more than one line/);
  });

  it(`allows ${MAX_ORDER_LINES} lines, not more`, () => {
    expect(expectAllowed(place({ lines: manyLines(MAX_ORDER_LINES) }), states.none).type).toBe("orders.placed");
    expectRefused(place({ lines: manyLines(MAX_ORDER_LINES + 1) }), states.none, "rejected", /at most 100 lines/);
  });

  it("refuses fields the topic schema would refuse", () => {
    expectRefused(place({ currency: "eur" }), states.none, "rejected", /invalid orders.placed data: currency/);
    expectRefused(place({ orderId: "" }), states.none, "rejected", /orderId/);
    expectRefused(place({ lines: [{ sku: "A", quantity: 0, unitPrice: 1 }] }), states.none, "rejected", /lines\.0\.quantity/);
    expectRefused(place({ lines: [{ sku: "A", quantity: 1, unitPrice: 1.5 }] }), states.none, "rejected", /unitPrice/);
  });

  it("refuses a total that is not a safe integer", () => {
    const huge = [
      { sku: "A", quantity: 2, unitPrice: Number.MAX_SAFE_INTEGER },
      { sku: "B", quantity: 1, unitPrice: 1 },
    ];
    expectRefused(place({ lines: huge }), states.none, "rejected", /MAX_SAFE_INTEGER/);
  });

  it("copies the lines: the event shares no objects with the command", () => {
    const command = place();
    const event = expectAllowed(command, states.none);
    if (event.type !== "orders.placed" || command.kind !== "place") throw new Error("unexpected event");
    expect(event.data.lines).not.toBe(command.lines);
    expect(event.data.lines[0]).not.toBe(command.lines[0]);
  });
});

describe("commands on an order that does not exist", () => {
  it.each<OrderCommand>([
    { kind: "add-line", line: { sku: "C", quantity: 1, unitPrice: 1 } },
    { kind: "remove-line", sku: "A" },
    { kind: "pay", amount: 0, currency: "EUR" },
    { kind: "ship" },
    { kind: "cancel" },
  ])("$kind is not_found", (command) => {
    expectRefused(command, states.none, "not_found", /no such order/);
  });
});

describe("add-line", () => {
  const line = { sku: "C", quantity: 3, unitPrice: 100 };

  it("adds a line while the order is open and raises the total", () => {
    const event = expectAllowed({ kind: "add-line", line }, states.open);
    expect(event).toStrictEqual({ type: "orders.line-added", data: { orderId: "o-1", line } });
    const after = fold(orderDecider, [event], states.open);
    expect(after.lines).toStrictEqual([...lines, line]);
    expect(after.total).toBe(TOTAL + 300);
    expect(after.status).toBe("open");
  });

  it.each(["paid", "shipped", "cancelled", "cancelled after payment"] as const)("is refused when the order is %s", (name) => {
    expectRefused({ kind: "add-line", line }, states[name], "rejected", /lines can only change while it is open/);
  });

  it("refuses a SKU already on the order", () => {
    expectRefused({ kind: "add-line", line: { ...line, sku: "A" } }, states.open, "rejected", /SKU A is already on order o-1/);
  });

  it(`allows the ${MAX_ORDER_LINES}th line, not the ${MAX_ORDER_LINES + 1}st`, () => {
    const almostFull = stateAfter(place({ lines: manyLines(MAX_ORDER_LINES - 1) }));
    const event = expectAllowed({ kind: "add-line", line }, almostFull);
    const full = fold(orderDecider, [event], almostFull);
    expect(full.lines).toHaveLength(MAX_ORDER_LINES);
    expectRefused({ kind: "add-line", line: { ...line, sku: "D" } }, full, "rejected", /at most 100 lines/);
  });

  it("refuses a line the topic schema would refuse", () => {
    expectRefused({ kind: "add-line", line: { sku: "", quantity: 1, unitPrice: 1 } }, states.open, "rejected", /line\.sku/);
    expectRefused({ kind: "add-line", line: { sku: "Z", quantity: 10_001, unitPrice: 1 } }, states.open, "rejected", /quantity/);
  });

  it("refuses a line that would push the total past a safe integer", () => {
    const big = { sku: "Z", quantity: 2, unitPrice: Number.MAX_SAFE_INTEGER - 1 };
    expectRefused({ kind: "add-line", line: big }, states.open, "rejected", /MAX_SAFE_INTEGER/);
  });
});

describe("remove-line", () => {
  it("removes a line while the order is open and lowers the total", () => {
    const event = expectAllowed({ kind: "remove-line", sku: "A" }, states.open);
    expect(event).toStrictEqual({ type: "orders.line-removed", data: { orderId: "o-1", sku: "A" } });
    const after = fold(orderDecider, [event], states.open);
    expect(after.lines).toStrictEqual([{ sku: "B", quantity: 1, unitPrice: 250 }]);
    expect(after.total).toBe(250);
  });

  it("refuses a SKU that is not on the order", () => {
    expectRefused({ kind: "remove-line", sku: "Z" }, states.open, "rejected", /SKU Z is not on order o-1/);
  });

  it("refuses to remove the last line (cancel instead)", () => {
    const single = stateAfter(place(), { kind: "remove-line", sku: "A" });
    expectRefused({ kind: "remove-line", sku: "B" }, single, "rejected", /last line.*cancel the order instead/);
    expect(expectAllowed(cancel, single).type).toBe("orders.cancelled");
  });

  it.each(["paid", "shipped", "cancelled", "cancelled after payment"] as const)("is refused when the order is %s", (name) => {
    expectRefused({ kind: "remove-line", sku: "A" }, states[name], "rejected", /lines can only change while it is open/);
  });

  it("a removed SKU can be added again", () => {
    const removed = stateAfter(place(), { kind: "remove-line", sku: "A" });
    const event = expectAllowed({ kind: "add-line", line: { sku: "A", quantity: 1, unitPrice: 1 } }, removed);
    expect(fold(orderDecider, [event], removed).total).toBe(251);
  });
});

describe("pay", () => {
  it("accepts the exact total in the order's currency", () => {
    const event = expectAllowed(pay, states.open);
    expect(event).toStrictEqual({ type: "orders.paid", data: { orderId: "o-1", amount: TOTAL, currency: "EUR" } });
    const after = fold(orderDecider, [event], states.open);
    expect(after.status).toBe("paid");
    expect(after.paid).toBe(TOTAL);
  });

  it("accepts 0 for an order of free items", () => {
    const free = stateAfter(place({ lines: [{ sku: "F", quantity: 3, unitPrice: 0 }] }));
    expect(expectAllowed({ kind: "pay", amount: 0, currency: "EUR" }, free).type).toBe("orders.paid");
  });

  it("refuses another currency", () => {
    expectRefused({ ...pay, currency: "USD" }, states.open, "rejected", /currency USD differs from the order's EUR/);
  });

  it.each([TOTAL - 1, TOTAL + 1, 0])("refuses an amount of %i (not the total)", (amount) => {
    expectRefused({ kind: "pay", amount, currency: "EUR" }, states.open, "rejected", /must equal the order total 1250/);
  });

  it.each(["paid", "shipped", "cancelled", "cancelled after payment"] as const)("is refused when the order is %s", (name) => {
    expectRefused(pay, states[name], "rejected", /only an open order can be paid/);
  });
});

describe("ship", () => {
  it("ships a paid order, with or without a carrier", () => {
    expect(expectAllowed(ship, states.paid)).toStrictEqual({ type: "orders.shipped", data: { orderId: "o-1", carrier: "DHL" } });
    const bare = expectAllowed({ kind: "ship" }, states.paid);
    expect(bare).toStrictEqual({ type: "orders.shipped", data: { orderId: "o-1" } });
    expect(Object.keys(bare.data)).toEqual(["orderId"]);
    expect(fold(orderDecider, [bare], states.paid).status).toBe("shipped");
  });

  it.each([
    ["open", /only a paid order can be shipped/],
    ["shipped", /is shipped; only a paid order/],
    ["cancelled", /is cancelled; only a paid order/],
    ["cancelled after payment", /is cancelled; only a paid order/],
  ] as const)("is refused when the order is %s", (name, message) => {
    expectRefused(ship, states[name], "rejected", message);
  });

  it("refuses a carrier the topic schema would refuse", () => {
    expectRefused({ kind: "ship", carrier: "x".repeat(65) }, states.paid, "rejected", /carrier/);
  });
});

describe("cancel", () => {
  it.each(["open", "paid"] as const)("cancels an order that is %s, keeping what was paid", (name) => {
    const event = expectAllowed(cancel, states[name]);
    expect(event).toStrictEqual({ type: "orders.cancelled", data: { orderId: "o-1", reason: "changed my mind" } });
    const after = fold(orderDecider, [event], states[name]);
    expect(after.status).toBe("cancelled");
    expect(after.paid).toBe(states[name].paid);
  });

  it("leaves the reason out when none is given", () => {
    expect(expectAllowed({ kind: "cancel" }, states.open)).toStrictEqual({ type: "orders.cancelled", data: { orderId: "o-1" } });
  });

  it("is refused after shipping", () => {
    expectRefused(cancel, states.shipped, "rejected", /has shipped and can no longer be cancelled/);
  });

  it.each(["cancelled", "cancelled after payment"] as const)("is refused twice (%s)", (name) => {
    expectRefused(cancel, states[name], "rejected", /already cancelled/);
  });

  it("refuses a reason the topic schema would refuse", () => {
    expectRefused({ kind: "cancel", reason: "x".repeat(501) }, states.open, "rejected", /reason/);
  });
});

// ---------------------------------------------------------------------------------------------
// Events, evolve, bodies, snapshots

describe("events", () => {
  it("ORDER_EVENT_TYPES lists exactly the topic's schemas", () => {
    expect([...ORDER_EVENT_TYPES].sort()).toEqual(Object.keys(orderEventSchemas).sort());
  });

  it("the topic schema allows exactly MAX_ORDER_LINES lines", () => {
    const data = { orderId: "o", customerId: "c", currency: "EUR" };
    expect(orderEventSchemas["orders.placed"].safeParse({ ...data, lines: manyLines(MAX_ORDER_LINES) }).success).toBe(true);
    expect(orderEventSchemas["orders.placed"].safeParse({ ...data, lines: manyLines(MAX_ORDER_LINES + 1) }).success).toBe(false);
  });

  it("a full lifecycle emits one valid event of every type", () => {
    const { events } = runCommands([
      place(),
      { kind: "add-line", line: { sku: "C", quantity: 1, unitPrice: 5 } },
      { kind: "remove-line", sku: "C" },
      pay,
      ship,
    ]);
    const cancelled = runCommands([place(), cancel]).events;
    const all = [...events, ...cancelled];
    for (const event of all) expectValidEvent(event);
    expect(new Set(all.map((e) => e.type))).toEqual(new Set(ORDER_EVENT_TYPES));
  });
});

describe("evolve", () => {
  it("does not mutate its inputs and shares no objects with them", () => {
    const before = deepFreeze(structuredClone(states.open));
    const line = { sku: "C", quantity: 1, unitPrice: 1 };
    const event = deepFreeze<OrderEvent>({ type: "orders.line-added", data: { orderId: "o-1", line } });
    const after = orderDecider.evolve(before, event);
    expect(before).toStrictEqual(states.open);
    expect(after).not.toBe(before);
    expect(after.lines).not.toBe(before.lines);
    expect(after.lines[0]).not.toBe(before.lines[0]);
    expect(after.lines[2]).toStrictEqual(line);
    expect(after.lines[2]).not.toBe(line);
    expect(after.total).toBe(TOTAL + 1);
  });

  it("leaves the state as it was for an event type it does not know", () => {
    const unknown = { type: "orders.refunded", data: { orderId: "o-1" } } as unknown as OrderEvent;
    expect(orderDecider.evolve(states.paid, unknown)).toStrictEqual(states.paid);
  });

  it("the initial state is status none with nothing on it", () => {
    expect(orderDecider.initialState).toStrictEqual({ status: "none", lines: [], total: 0, paid: 0 });
  });
});

describe("HTTP command bodies", () => {
  it("accept what the command needs, without orderId", () => {
    expect(placeOrderBody.parse({ customerId: "c", currency: "EUR", lines })).toStrictEqual({ customerId: "c", currency: "EUR", lines });
    expect(addLineBody.parse({ line: lines[0] })).toStrictEqual({ line: lines[0] });
    expect(removeLineBody.parse({ sku: "A" })).toStrictEqual({ sku: "A" });
    expect(payBody.parse({ amount: 1, currency: "EUR" })).toStrictEqual({ amount: 1, currency: "EUR" });
    expect(shipBody.parse({})).toStrictEqual({});
    expect(shipBody.parse({ carrier: "UPS" })).toStrictEqual({ carrier: "UPS" });
    expect(cancelBody.parse({})).toStrictEqual({});
    expect(cancelBody.parse({ reason: "r" })).toStrictEqual({ reason: "r" });
  });

  it("are strict: unknown keys, orderId included, are refused", () => {
    expect(placeOrderBody.safeParse({ orderId: "o", customerId: "c", currency: "EUR", lines }).success).toBe(false);
    expect(payBody.safeParse({ amount: 1, currency: "EUR", tip: 1 }).success).toBe(false);
    expect(shipBody.safeParse({ orderId: "o" }).success).toBe(false);
    expect(addLineBody.safeParse({ line: { ...lines[0], note: "x" } }).success).toBe(false);
  });

  it("apply the event schemas' field rules", () => {
    expect(placeOrderBody.safeParse({ customerId: "c", currency: "EUR", lines: [] }).success).toBe(false);
    expect(placeOrderBody.safeParse({ customerId: "c", currency: "eur", lines }).success).toBe(false);
    expect(payBody.safeParse({ amount: -1, currency: "EUR" }).success).toBe(false);
    expect(payBody.safeParse({ amount: 1.5, currency: "EUR" }).success).toBe(false);
    expect(removeLineBody.safeParse({ sku: "" }).success).toBe(false);
    expect(shipBody.safeParse({ carrier: "x".repeat(65) }).success).toBe(false);
    expect(cancelBody.safeParse({ reason: "x".repeat(501) }).success).toBe(false);
  });

  it("commandBodies maps every command kind but place to its body", () => {
    expect(Object.keys(commandBodies).sort()).toEqual(["add-line", "cancel", "pay", "remove-line", "ship"]);
    expect(commandBodies.pay).toBe(payBody);
    expect(commandBodies["add-line"]).toBe(addLineBody);
    expect(commandBodies["remove-line"]).toBe(removeLineBody);
    expect(commandBodies.ship).toBe(shipBody);
    expect(commandBodies.cancel).toBe(cancelBody);
  });

  it("a parsed body plus its kind is a command decide accepts", () => {
    const command: OrderCommand = { kind: "pay", ...commandBodies.pay.parse({ amount: TOTAL, currency: "EUR" }) };
    expect(expectAllowed(command, states.open).type).toBe("orders.paid");
  });
});

describe("snapshots", () => {
  it.each(Object.entries(states))("round-trip the %s state", (_name, state) => {
    const text = serializeState(state);
    expect(JSON.parse(text)).toStrictEqual({ version: SNAPSHOT_SCHEMA_VERSION, state });
    expect(deserializeState(text)).toStrictEqual(state);
  });

  it("refuse text that is not a snapshot", () => {
    expect(() => deserializeState("{")).toThrow(/not JSON/);
    expect(() => deserializeState("null")).toThrow(/\{ version, state \}/);
    expect(() => deserializeState(JSON.stringify(states.open))).toThrow(/\{ version, state \}/);
  });

  it("refuse another version", () => {
    const text = JSON.stringify({ version: SNAPSHOT_SCHEMA_VERSION + 1, state: states.open });
    expect(() => deserializeState(text)).toThrow(/version 2, expected 1/);
  });

  it.each<[string, OrderState, RegExp]>([
    ["a total that is not the sum", { ...states.open, total: 1 }, /total must equal the sum/],
    ["duplicate SKUs", { ...states.open, lines: [...lines, lines[0] as OrderLine], total: TOTAL + 1000 }, /SKUs must be unique/],
    ["an id on a missing order", { ...states.none, orderId: "o" }, /status none has no orderId/],
    ["an open order without a currency", { ...states.open, currency: undefined }, /has orderId, customerId and currency/],
    ["an open order without lines", { ...states.open, lines: [], total: 0 }, /at least one line/],
    ["a paid order that paid nothing", { ...states.paid, paid: 0 }, /paid must be 1250/],
    ["an open order that paid", { ...states.open, paid: 5 }, /paid must be 0/],
    ["an unknown status", { ...states.open, status: "lost" as OrderStatus }, /status/],
  ])("refuse a state with %s", (_name, state, message) => {
    expect(orderStateSchema.safeParse(state).success).toBe(false);
    expect(() => deserializeState(JSON.stringify({ version: SNAPSHOT_SCHEMA_VERSION, state }))).toThrow(message);
  });

  it("refuse extra fields in the state", () => {
    const state = { ...states.open, note: "x" };
    expect(() => deserializeState(JSON.stringify({ version: SNAPSHOT_SCHEMA_VERSION, state }))).toThrow(/invalid order snapshot/);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

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
