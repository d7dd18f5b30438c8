import type { FakeMessage } from "./helpers";

/** D1 round-trip counting for the consumer SDK's batch tests. */

export interface Counting {
  db: D1Database;
  /** SQL of every single-statement round trip (`first`, `all`, `run`, `raw`). */
  single: string[];
  /** `db.batch()` round trips. */
  batches: number;
  /** Runs after the n-th batch (0: the first) committed, before its caller continues. */
  afterBatch?: (n: number) => Promise<void>;
  /** Makes the n-th batch fail. */
  failBatch?: number;
  /** Runs when the failing batch is refused, before its caller sees the error. */
  onFail?: () => void;
}

/** Wraps D1 to count round trips; statements are unwrapped again for the real `batch()`. */
export function counting(db: D1Database): Counting {
  const state: Counting = { db, single: [], batches: 0 };
  const real = new WeakMap<D1PreparedStatement, D1PreparedStatement>();
  const wrap = (statement: D1PreparedStatement, sql: string): D1PreparedStatement => {
    const proxy = new Proxy(statement, {
      get(target, prop) {
        if (prop === "bind") return (...values: unknown[]) => wrap(target.bind(...values), sql);
        const value: unknown = Reflect.get(target, prop);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          if (prop === "first" || prop === "all" || prop === "run" || prop === "raw") state.single.push(sql);
          return Reflect.apply(value, target, args);
        };
      },
    });
    real.set(proxy, statement);
    return proxy;
  };
  state.db = new Proxy(db, {
    get(target, prop) {
      if (prop === "prepare") return (sql: string) => wrap(target.prepare(sql), sql);
      if (prop === "batch") {
        return async (statements: D1PreparedStatement[]) => {
          const n = state.batches++;
          if (n === state.failBatch) {
            state.onFail?.();
            throw new Error("D1_ERROR: injected failure");
          }
          const results = await target.batch(statements.map((s) => real.get(s) ?? s));
          await state.afterBatch?.(n);
          return results;
        };
      }
      const value: unknown = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return state;
}

export function batchOf(messages: FakeMessage[]): MessageBatch<unknown> {
  return { queue: "q", messages, ackAll() {}, retryAll() {}, metadata: {} } as unknown as MessageBatch<unknown>;
}
