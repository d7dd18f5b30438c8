import type { Delivery } from "../../sdk/messages";
import { formatSequence } from "../../shared/cloudevents";
import type { OrderEvent } from "../../workers/examples/orders/domain";

/** One event of an orders partition log: its order, the event, and its version in that order's stream. */
export interface Stored {
  orderId: string;
  event: OrderEvent;
  streamVersion: number;
}

/**
 * The orders' events interleaved into one partition log, each order's events staying in stream
 * order; `choose(open, step)` picks which of the `open` orders still holding events goes next.
 */
export function interleave(streams: Map<string, OrderEvent[]>, choose: (open: number, step: number) => number): Stored[] {
  const cursors = [...streams.entries()].map(([orderId, events]) => ({ orderId, events, next: 0 }));
  const out: Stored[] = [];
  for (let step = 0; ; step++) {
    const open = cursors.filter((c) => c.next < c.events.length);
    if (open.length === 0) return out;
    const c = open[choose(open.length, step)] as (typeof open)[number];
    out.push({ orderId: c.orderId, event: c.events[c.next] as OrderEvent, streamVersion: ++c.next });
  }
}

/**
 * The deliveries of `log` on partition 0 of `topic` for `subscription`, event ids `${idPrefix}-${sequence}`;
 * with `rename`, order ids and customers are renamed by it (so one log can feed separate read-model rows).
 */
export function orderDeliveries(
  subscription: string,
  topic: string,
  log: Stored[],
  idPrefix: string,
  rename?: (id: string) => string,
): Delivery[] {
  return log.map((s, i) => {
    const orderId = rename ? rename(s.orderId) : s.orderId;
    let data: Record<string, unknown> = s.event.data;
    if (rename) {
      data = { ...s.event.data, orderId };
      if (s.event.type === "orders.placed") data.customerId = rename(s.event.data.customerId);
    }
    return {
      v: 1,
      subscription,
      topic,
      partition: 0,
      sequence: i + 1,
      prev: i,
      committedAt: 1_700_000_000_000 + i,
      event: {
        specversion: "1.0",
        id: `${idPrefix}-${i + 1}`,
        source: `/orders/${orderId}`,
        type: s.event.type,
        subject: orderId,
        datacontenttype: "application/json",
        data,
        partition: 0,
        sequence: formatSequence(i + 1),
        streamversion: s.streamVersion,
        receivedtime: new Date(1_700_000_000_000 + i * 1000).toISOString(),
      },
    };
  });
}
