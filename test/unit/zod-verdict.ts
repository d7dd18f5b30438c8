import { expect } from "vitest";
import type { z } from "zod";

/**
 * zod's verdict in the terms of a hand-written fast check that stands in for `schema`: the value
 * is accepted and returned exactly as given (no defaults filled, no unknown keys stripped).
 */
export function zodTakesUnchanged(schema: z.ZodType, value: unknown): boolean {
  const parsed = schema.safeParse(value);
  if (!parsed.success) return false;
  try {
    expect(parsed.data).toStrictEqual(value);
    return true;
  } catch {
    return false;
  }
}
