import { describe, expect, it } from "vitest";
import { orderEventSchemas } from "../../eventline.config";
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
} from "../../workers/examples/orders/domain";
import { runCommands } from "../orders-arbitraries";
import { cancel, deepFreeze, expectAllowed, expectValidEvent, lines, manyLines, pay, place, ship, states, TOTAL } from "./orders-fixtures";

/*
 * The orders domain's events, evolve, HTTP command bodies and snapshots: every event type matches
 * the topic's schemas, evolve never mutates its inputs, the bodies accept what a command needs
 * and nothing more, and a snapshot round-trips every state and refuses what it cannot trust.
 * Fixtures: orders-fixtures.ts.
 */

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
