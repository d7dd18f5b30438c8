import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import type { AuditTally } from "../../durable-objects/audit-tally";
import { auditTallyName, type TallyWindow } from "../../shared/audit-tally";

/*
 * The AuditTally object of one (action, actor, resource) (ADR 0031), for tests of records written
 * per window: read its windows, and write a window's record as its alarm does once it has closed
 * (windows last minutes, so tests close them by passing the time instead of waiting).
 */

export interface TestTally {
  /** Windows not yet written, oldest first. */
  windows(): Promise<TallyWindow[]>;
  /** Writes the record of every window closed by `at`; how many. */
  flush(at: number): Promise<number>;
  /**
   * Asserts one open window whose `counts[name]` is `expected` and writes its record as its alarm
   * would (nothing before it closes); returns the window.
   */
  close(name: string, expected: number): Promise<TallyWindow>;
}

export function tallyOf(action: string, actorId: string, resource: string): TestTally {
  const stub = () => env.AUDIT_TALLY.getByName(auditTallyName(action, actorId, resource));
  const windows = () => runInDurableObject(stub(), (t: AuditTally) => t.windows());
  const flush = (at: number) => runInDurableObject(stub(), (t: AuditTally) => t.flush(at));
  return {
    windows,
    flush,
    async close(name, expected) {
      const open = await windows();
      expect(open.map((w) => w.counts[name])).toEqual([expected]);
      const window = open[0] as TallyWindow;
      expect(await flush(window.until - 1)).toBe(0);
      expect(await flush(window.until)).toBe(1);
      expect(await windows()).toEqual([]);
      return window;
    },
  };
}
