import { type Histogram, observe, parseHistogram } from "../../shared/metrics";
import type { SqlMigration } from "../sql-migrations";
import type { LogHost } from "./host";

/**
 * The metrics capability (EVENTLINE_METRICS): bytes stored, duplicates answered and append
 * latency, in one `append_metrics` row updated by each append's own transaction, so the counters
 * are exactly as durable as the events they count.
 */

export const appendMetricsMigration: SqlMigration = {
  id: 7,
  name: "append metrics",
  up: ({ sql }) => {
    sql.exec(`CREATE TABLE IF NOT EXISTS append_metrics (
      id INTEGER PRIMARY KEY CHECK (id = 1), bytes INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0, latency TEXT
    )`);
    sql.exec(`INSERT OR IGNORE INTO append_metrics (id) VALUES (1)`);
  },
};

export class AppendMetrics {
  /** Append latency, persisted by the next append's transaction. */
  private latency: Histogram;

  constructor(private readonly host: Pick<LogHost, "sql">) {
    this.latency = parseHistogram(host.sql.exec<{ latency: string | null }>(`SELECT latency FROM append_metrics`).one().latency);
  }

  /**
   * Inside an append's transaction: one UPDATE per call. The latency histogram written is the one
   * in memory, so a call's own latency is persisted by the next call.
   */
  count(bytes: number, duplicates: number): void {
    this.host.sql.exec(
      `UPDATE append_metrics SET bytes = bytes + ?, duplicates = duplicates + ?, latency = ? WHERE id = 1`,
      bytes,
      duplicates,
      JSON.stringify(this.latency),
    );
  }

  /** A successful append's latency, once it is durable. */
  observe(seconds: number): void {
    observe(this.latency, seconds);
  }

  counters(): { bytes: number; duplicates: number; appendLatency: Histogram } {
    const row = this.host.sql.exec<{ bytes: number; duplicates: number }>(`SELECT bytes, duplicates FROM append_metrics`).one();
    return {
      bytes: row.bytes,
      duplicates: row.duplicates,
      appendLatency: { buckets: [...this.latency.buckets], sum: this.latency.sum, count: this.latency.count },
    };
  }
}
