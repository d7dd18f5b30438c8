import { env } from "cloudflare:workers";
import type { Consumer } from "../../sdk/consumer";
import type { Delivery } from "../../sdk/messages";

/** A Queues message we can redeliver by hand, recording acks, retries and their delays. */
export class FakeMessage implements Message<unknown> {
  readonly id = crypto.randomUUID();
  readonly timestamp = new Date();
  attempts = 1;
  acked = false;
  retries: (number | undefined)[] = [];
  private retried = false;
  constructor(readonly body: unknown) {}
  ack(): void {
    this.acked = true;
  }
  retry(options?: QueueRetryOptions): void {
    this.retried = true;
    this.retries.push(options?.delaySeconds);
  }
  /** Delivers the message until it is acked (or `max` attempts), like Queues would. */
  async deliverUntilSettled(consumer: Consumer<Env>, max = 50): Promise<string[]> {
    const outcomes: string[] = [];
    for (;;) {
      this.retried = false;
      outcomes.push(await consumer.process(this, env));
      if (this.acked || !this.retried || outcomes.length >= max) return outcomes;
      this.attempts++;
    }
  }
}

let counter = 0;
export function delivery(overrides: Partial<Delivery> & { event?: Record<string, unknown> } = {}): Delivery {
  counter++;
  const sequence = overrides.sequence ?? counter;
  return {
    v: 1,
    subscription: "test-sub",
    topic: "events",
    partition: 0,
    sequence,
    prev: overrides.prev ?? sequence - 1,
    committedAt: Date.now(),
    event: { specversion: "1.0", id: `evt-${sequence}-${counter}`, source: "/test", type: "test.thing", data: { n: sequence } },
    ...overrides,
  };
}

/** Empties the test effects and every table the SDK writes, so each test starts from nothing. */
export async function resetConsumerState(): Promise<void> {
  await env.DB.batch(
    ["test_effects", "processed_events", "checkpoints", "dead_letters", "delivery_failures", "subscription_stats"].map((table) =>
      env.DB.prepare(`DELETE FROM ${table}`),
    ),
  );
}

export async function createEffectsTable(): Promise<void> {
  await env.DB.exec(
    "CREATE TABLE IF NOT EXISTS test_effects (event_id TEXT NOT NULL, sequence INTEGER NOT NULL, applied_at INTEGER NOT NULL)",
  );
}

export function effect(db: D1Database, event: { id: string }, sequence: number): D1PreparedStatement {
  return db.prepare("INSERT INTO test_effects (event_id, sequence, applied_at) VALUES (?, ?, ?)").bind(event.id, sequence, Date.now());
}

export async function effects(): Promise<{ event_id: string; sequence: number }[]> {
  return (await env.DB.prepare("SELECT event_id, sequence FROM test_effects ORDER BY rowid").all<{ event_id: string; sequence: number }>())
    .results;
}
