import { z } from "zod";
import { PermanentError, type StoredEvent, storedEventSchema } from "./consumer-types";
import type { Delivery } from "./messages";
import { partitionName } from "./partition-name";

const logPageSchema = z.object({ events: z.array(z.string()), last: z.number().int().nullable() });

/**
 * A `resolveRef` that loads an event sent by reference from its partition log, through a
 * Durable Object binding to PartitionLog (declared with `script_name` in a consumer Worker, so
 * its type is not known there: the RPC answer is parsed, not trusted).
 */
export function resolveFromLog<Env>(
  binding: (env: Env) => { getByName(name: string): unknown },
): (delivery: Delivery, env: Env) => Promise<StoredEvent> {
  return async (delivery, env) => {
    const stub = binding(env).getByName(partitionName(delivery.topic, delivery.partition)) as unknown as {
      read(from: number, limit: number): Promise<unknown>;
    };
    const page = logPageSchema.parse(await stub.read(delivery.sequence, 1));
    const raw = page.events[0];
    if (raw === undefined || page.last !== delivery.sequence) {
      throw new PermanentError(`event ${delivery.topic}/${delivery.partition}/${delivery.sequence} is no longer in the partition log`);
    }
    return storedEventSchema.parse(JSON.parse(raw));
  };
}
