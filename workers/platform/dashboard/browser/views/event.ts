import { API, ApiError, api } from "../api";
import { clear, h, table } from "../dom";
import { compact, truncate } from "../format";
import { state } from "../state";
import type { EventsPage } from "../wire";
import { describeFailure, keyValues, message, openDetail, type Route, topicHash } from "./common";

/** One event and its trace (GET …/events/{sequence}/trace): where it went and every delivery attempt. */

interface TraceAttempt {
  attempt?: number;
  outcome?: string;
  at?: string;
  sentAt?: string;
  error?: unknown;
}
interface TraceSubscription {
  subscription?: string;
  kind?: string;
  matched?: boolean;
  routed?: boolean;
  state?: string;
  attempts?: unknown;
}

const STATE_CLASS: Record<string, string> = {
  dead_lettered: "failed",
  handled: "done",
  pending: "running",
  routed: "running",
  in_transit: "running",
  redelivered: "running",
  retrying: "running",
};

function traceSubscription(x: TraceSubscription): HTMLLIElement {
  const attempts: TraceAttempt[] = Array.isArray(x.attempts) ? x.attempts : [];
  const cls = STATE_CLASS[String(x.state)] || "";
  return h("li", { "data-trace-subscription": x.subscription }, [
    h("div", { class: "head" }, [
      h("span", null, [
        h("strong", { text: String(x.subscription) }),
        ` (${x.kind || "?"})${x.matched === false ? " · filter does not match" : ""}`,
      ]),
      h("span", { class: `state ${cls}`, text: String(x.state || "unknown").replace(/_/g, " ") }),
    ]),
    attempts.length
      ? h(
          "ol",
          null,
          attempts.map((a) =>
            h("li", {
              text:
                `attempt ${a.attempt} · ${a.outcome} · ${a.at}${a.sentAt ? ` (queued ${a.sentAt})` : ""}` +
                (a.error ? ` · ${truncate(String(a.error), 200)}` : ""),
            }),
          ),
        )
      : h("div", { class: "note", text: x.routed === false ? "not routed to it" : "no delivery attempt recorded" }),
  ]);
}

/**
 * Renders an event's trace: its scalar members (and the commit time), one block per subscription
 * with its state and delivery attempts, any other array of objects as a table, and the JSON.
 * Tolerant of shapes it does not know.
 */
function renderTrace(container: HTMLElement, value: unknown): void {
  if (!value || typeof value !== "object") {
    container.appendChild(h("pre", { class: "json", text: JSON.stringify(value, null, 2) }));
    return;
  }
  const trace = value as Record<string, unknown>;
  const scalars = Object.keys(trace).filter((k) => trace[k] === null || typeof trace[k] !== "object");
  const pairs: [string, unknown][] = scalars.map((k) => [k, compact(trace[k])]);
  const committed = trace.committed as { at?: unknown } | null | undefined;
  if (committed?.at) pairs.push(["committed", committed.at]);
  container.appendChild(keyValues(pairs));
  if (Array.isArray(trace.subscriptions)) {
    const list = h("ul", { class: "replays", "aria-label": "Subscriptions of the event" });
    for (const x of trace.subscriptions as unknown[]) {
      if (!x || typeof x !== "object") continue;
      list.appendChild(traceSubscription(x));
    }
    container.appendChild(list);
  }
  for (const [k, v] of Object.entries(trace)) {
    if (k === "subscriptions" || !Array.isArray(v) || !v.length || typeof v[0] !== "object" || v[0] === null) continue;
    const items = v as (Record<string, unknown> | null)[];
    const cols: string[] = [];
    for (const item of items.slice(0, 20)) for (const c of Object.keys(item || {})) if (!cols.includes(c) && cols.length < 8) cols.push(c);
    container.appendChild(h("h4", { text: `${k} (${v.length})` }));
    container.appendChild(
      h(
        "div",
        { class: "scroll" },
        table(
          cols.map((c) => ({ text: c })),
          items.slice(0, 200).map((item) =>
            h(
              "tr",
              null,
              cols.map((c) => h("td", { text: compact(item ? item[c] : "") })),
            ),
          ),
          k,
        ),
      ),
    );
  }
  container.appendChild(
    h("details", null, [h("summary", { text: "Trace JSON" }), h("pre", { class: "json", text: JSON.stringify(trace, null, 2) })]),
  );
}

export async function showEvent(route: Extract<Route, { view: "event" }>, focus: boolean): Promise<void> {
  const seq = ++state.detailSeq;
  const body = openDetail(`Event ${route.topic} / partition ${route.partition} / sequence ${route.sequence}`, focus);
  body.appendChild(
    h(
      "p",
      null,
      h("a", {
        href: topicHash(route.topic, route.partition, route.sequence),
        text: `← Events of ${route.topic} partition ${route.partition}`,
      }),
    ),
  );
  const eventBox = h("div", null, h("p", { class: "note", role: "status", text: "Loading the event…" }));
  const traceBox = h("div", { id: "trace" }, h("p", { class: "note", role: "status", text: "Loading the trace…" }));
  body.appendChild(eventBox);
  body.appendChild(h("h3", { text: "Trace" }));
  body.appendChild(traceBox);
  const params = { topic: route.topic, partition: route.partition, sequence: route.sequence };
  const [page, trace] = await Promise.allSettled([
    api<EventsPage>(API.events, params, { query: { from: route.sequence, limit: 1 } }),
    api(API.trace, params),
  ]);
  if (seq !== state.detailSeq) return;
  clear(eventBox);
  if (page.status === "rejected") eventBox.appendChild(message(describeFailure(page.reason, "Reading the event"), "bad"));
  else {
    const event = (page.value.events || []).find((e) => Number(e.sequence) === route.sequence);
    if (!event) eventBox.appendChild(message(`No event at sequence ${route.sequence} (it may be past the head or trimmed).`, "bad"));
    else {
      eventBox.appendChild(
        keyValues([
          ["id", event.id],
          ["type", event.type],
          ["source", event.source],
          ["subject", event.subject],
          ["time", event.time],
          ["received", event.receivedtime],
          ["traceparent", event.traceparent],
        ]),
      );
      eventBox.appendChild(
        h("details", { open: true }, [
          h("summary", { text: "Event JSON" }),
          h("pre", { class: "json", text: JSON.stringify(event, null, 2) }),
        ]),
      );
    }
  }
  clear(traceBox);
  if (trace.status === "fulfilled") renderTrace(traceBox, trace.value);
  else if (trace.reason instanceof ApiError && trace.reason.status === 404) {
    traceBox.appendChild(message("Trace not available for this event (this server has no trace for it, or no trace endpoint yet)."));
  } else traceBox.appendChild(message(describeFailure(trace.reason, "Trace"), "bad"));
}
