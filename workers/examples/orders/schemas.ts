import { z } from "zod";

/**
 * The orders demo's event types and their data schemas: the `orders` topic registers them
 * (eventline.config.ts), and the domain (domain.ts) derives its command bodies and state from
 * them. Defined here, beside the domain, so shared/ never imports the application's config file.
 */

const currency = z.string().regex(/^[A-Z]{3}$/, "ISO 4217 code, e.g. EUR");
/** Money in minor units (cents) so totals are exact. */
const amount = z.number().int().nonnegative();
/** Ids that become keys (streams, read-model rows) must be well-formed Unicode (docs/security.md). */
const key = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => s.isWellFormed(), "must be well-formed Unicode (no lone UTF-16 surrogate)");
const orderId = key(128);
const line = z
  .object({
    sku: key(64),
    quantity: z.number().int().positive().max(10_000),
    unitPrice: amount,
  })
  .strict();

export const orderEventSchemas = {
  "orders.placed": z.object({ orderId, customerId: key(128), currency, lines: z.array(line).min(1).max(100) }).strict(),
  "orders.line-added": z.object({ orderId, line }).strict(),
  "orders.line-removed": z.object({ orderId, sku: key(64) }).strict(),
  "orders.paid": z.object({ orderId, amount, currency }).strict(),
  "orders.shipped": z.object({ orderId, carrier: z.string().max(64).optional() }).strict(),
  "orders.cancelled": z.object({ orderId, reason: z.string().max(500).optional() }).strict(),
};
