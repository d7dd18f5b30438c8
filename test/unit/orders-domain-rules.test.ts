import { describe, expect, it } from "vitest";
import { fold } from "../../shared/decider";
import { MAX_ORDER_LINES, type OrderCommand, orderDecider } from "../../workers/examples/orders/domain";
import { cancel, expectAllowed, expectRefused, lines, manyLines, pay, place, ship, stateAfter, states, TOTAL } from "./orders-fixtures";

/*
 * The orders decider's rules, command by command (place, add-line, remove-line, pay, ship,
 * cancel, and any command on an order that does not exist): what each allows in which state and
 * what it refuses, with which code. Fixtures: orders-fixtures.ts.
 */

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
