import { expect } from "vitest";
import type { ProcessorPartitionView } from "../../workers/platform/processors";
import { readAll, request, type StoredEvent } from "../helpers";

/** Events and reads shared by the processors' route tests (test/processors/*.test.ts). */

export const minute = (n: number) => Date.UTC(2026, 0, 1, 12, n, 0);
export const iso = (ms: number) => new Date(ms).toISOString();

export function paid(id: string, currency: string, amount: number, time: number) {
  return {
    specversion: "1.0",
    id: `paid-${id}`,
    source: "/test/orders",
    type: "orders.paid",
    time: iso(time),
    datacontenttype: "application/json",
    data: { orderId: id, amount, currency },
  };
}

/** Currencies whose keys spread over every instance (each instance needs input for its watermark to move). */
export const CURRENCIES = ["EUR", "USD", "GBP", "JPY", "CHF", "SEK", "NOK", "DKK"];

export async function topicEvents(topic: string, partitions = 2): Promise<StoredEvent[]> {
  return (await Promise.all(Array.from({ length: partitions }, (_, p) => readAll(topic, p)))).flat();
}

export type PartitionView = ProcessorPartitionView;

export interface View {
  name: string;
  kind: string;
  input: { topic: string; filter?: unknown };
  key: string;
  output: { topic: string; table: boolean };
  internalTopic: string;
  lowWatermark: string | null;
  lag: number;
  openWindows: number;
  lateEvents: number;
  results: number;
  pendingOutputs: number;
  partitions: PartitionView[];
  [more: string]: unknown;
}

export async function json<T>(res: Response, status: number): Promise<T> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  return JSON.parse(text) as T;
}

export const view = async (name: string) => json<View>(await request(`/v1/processors/${name}`), 200);
