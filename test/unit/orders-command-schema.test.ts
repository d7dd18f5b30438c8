import { describe, expect, it } from "vitest";
import { orderCommandSchema } from "../../workers/examples/orders/domain";

/** What an order command must look like when it reaches the partition log that runs it (ADR 0040). */
describe("orderCommandSchema", () => {
  const line = { sku: "A", quantity: 1, unitPrice: 100 };

  it("accepts each command the routes build", () => {
    const commands = [
      { kind: "place", orderId: "ord_1", customerId: "c", currency: "EUR", lines: [line] },
      { kind: "add-line", line },
      { kind: "remove-line", sku: "A" },
      { kind: "pay", amount: 100, currency: "EUR" },
      { kind: "ship" },
      { kind: "ship", carrier: "dhl" },
      { kind: "cancel", reason: "changed my mind" },
    ];
    for (const command of commands) expect(orderCommandSchema.parse(command)).toEqual(command);
  });

  it("refuses unknown kinds, missing and extra fields, and a place without its id", () => {
    const bad = [
      { kind: "refund" },
      { kind: "pay", amount: 100 },
      { kind: "remove-line", sku: "A", extra: true },
      { kind: "place", customerId: "c", currency: "EUR", lines: [line] },
      { kind: "add-line", line: { ...line, quantity: -1 } },
      "pay",
    ];
    for (const command of bad) expect(orderCommandSchema.safeParse(command).success, JSON.stringify(command)).toBe(false);
  });
});
