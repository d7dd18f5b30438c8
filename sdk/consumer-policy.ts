/**
 * Retry policy of the consumer SDK: exponential backoff with full jitter, and a per-subscription
 * circuit breaker. Pure apart from the optional D1 write on state transitions.
 */

/** Queues caps a retry delay at 12 hours. */
const MAX_DELAY_SECONDS = 43_200;

/** The upper bound of the delay before delivery attempt `attempts + 1`: base·2^(attempts−1), capped. */
export function backoffCeiling(attempts: number, baseSeconds: number, capSeconds: number): number {
  const exponent = Math.min(Math.max(attempts - 1, 0), 30);
  return Math.min(capSeconds, MAX_DELAY_SECONDS, baseSeconds * 2 ** exponent);
}

/** Full jitter (uniform in [0, ceiling]), so retries of a failed batch do not arrive together. */
export function backoffSeconds(attempts: number, baseSeconds: number, capSeconds: number, random: () => number = Math.random): number {
  const ceiling = backoffCeiling(attempts, baseSeconds, capSeconds);
  return Math.min(ceiling, Math.floor(random() * (ceiling + 1)));
}

export interface CircuitBreakerConfig {
  failureThreshold: number;
  openSeconds: number;
}

export type CircuitStateName = "closed" | "open" | "half_open";

/**
 * Opens after `failureThreshold` consecutive failures; while open, messages are retried after
 * the remaining open time without calling the handler; then one probe is let through
 * (half-open): its success closes the circuit, its failure opens it again. State lives per
 * isolate and every transition is written to D1 (`circuit_state`) for the status API.
 */
export class CircuitBreaker {
  state: CircuitStateName = "closed";
  consecutiveFailures = 0;
  private openedAt = 0;
  private probing = false;

  constructor(
    readonly subscription: string,
    readonly config: CircuitBreakerConfig,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds to hold a message back (0 = go ahead). */
  shouldHold(): number {
    if (this.state === "closed") return 0;
    const remainingMs = this.openedAt + this.config.openSeconds * 1000 - this.now();
    if (this.state === "open" && remainingMs > 0) return Math.max(1, Math.ceil(remainingMs / 1000));
    if (this.probing) return 1;
    this.state = "half_open";
    this.probing = true;
    return 0;
  }

  /** The message let through as a probe ended without telling success from failure. */
  release(): void {
    this.probing = false;
  }

  async success(db?: D1Database): Promise<void> {
    const changed = this.state !== "closed";
    this.state = "closed";
    this.consecutiveFailures = 0;
    this.probing = false;
    if (changed) await this.persist(db);
  }

  async failure(db?: D1Database): Promise<void> {
    this.consecutiveFailures++;
    this.probing = false;
    if (this.state === "half_open" || (this.state === "closed" && this.consecutiveFailures >= this.config.failureThreshold)) {
      this.state = "open";
      this.openedAt = this.now();
      await this.persist(db);
    }
  }

  private async persist(db: D1Database | undefined): Promise<void> {
    if (db === undefined) return;
    const now = this.now();
    await db
      .prepare(
        `INSERT INTO circuit_state (subscription, state, consecutive_failures, opened_at, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (subscription) DO UPDATE SET state = excluded.state, consecutive_failures = excluded.consecutive_failures,
           opened_at = excluded.opened_at, updated_at = excluded.updated_at`,
      )
      .bind(this.subscription, this.state, this.consecutiveFailures, this.state === "open" ? this.openedAt : null, now)
      .run();
  }
}
