import { API, ApiError, api } from "../api";
import { byId, type Column, clear, h, legend, table } from "../dom";
import { fmtInt, num, plural, truncate } from "../format";
import { state } from "../state";
import type { DlqPage, RedriveResult, SubscriptionWire } from "../wire";
import { describeFailure, eventHash, keyValues, message, openDetail, parseRoute, type Route } from "./common";

type SubscriptionRoute = Extract<Route, { view: "subscription" }>;

/** The per-partition columns and what each means (header tooltips and a visible legend). */
const PARTITION_COLUMNS: Column[] = [
  { text: "Partition", num: true },
  { text: "Head", num: true, help: "Last sequence committed in the partition, whatever its type (every event counts)." },
  {
    text: "Routed",
    num: true,
    help: "Last sequence routed to this subscription: its filter matched. 0: none of the partition's events matched yet.",
  },
  { text: "Checkpoint", num: true, help: "Last routed sequence the subscription settled in order. 0: none yet." },
  {
    text: "Lag",
    num: true,
    help: "Events routed to the subscription after its checkpoint and not yet handled. Events its filter skips never count, so a checkpoint far below the head can mean no lag.",
  },
  { text: "Outbox", num: true, help: "Routed events the partition has not handed to the queue yet." },
];

function summaryOf(x: SubscriptionWire): Node[] {
  const circuit = typeof x.circuit === "object" ? x.circuit : null;
  const nodes: Node[] = [
    keyValues([
      ["topic", x.topic],
      ["kind", x.kind],
      ["description", x.description],
      ["target", x.target ? x.target.url || x.target.queue : ""],
      ["filter", x.filter ? JSON.stringify(x.filter) : "none (every event)"],
      ["ordering", x.ordering],
      ["max retries", x.maxRetries],
      ["circuit", circuit ? `${circuit.state} (${plural(circuit.consecutiveFailures, "failure", "failures")} in a row)` : ""],
      [
        "counts",
        x.counts
          ? `handled ${fmtInt(x.counts.handled)} · retried ${fmtInt(x.counts.retried)} · dead-lettered ${fmtInt(x.counts.deadLettered)}`
          : "",
      ],
      ["lag", fmtInt(x.lag)],
    ]),
  ];
  if (Array.isArray(x.partitions) && x.partitions.length) {
    nodes.push(
      table(
        PARTITION_COLUMNS,
        x.partitions.map((p) =>
          h("tr", { "data-partition": p.partition }, [
            h("td", { class: "num", text: p.partition }),
            h("td", { class: "num", text: fmtInt(p.head) }),
            h("td", { class: "num", text: fmtInt(p.routed) }),
            h("td", { class: "num", text: fmtInt(p.checkpoint) }),
            h("td", { class: `num${(p.lag ?? 0) > 0 ? " warn" : ""}`, text: fmtInt(p.lag) }),
            h("td", { class: "num", text: fmtInt(p.outbox) }),
          ]),
        ),
        "Per-partition checkpoint and lag",
      ),
      legend(PARTITION_COLUMNS),
    );
  }
  return nodes;
}

function deadLetters(list: HTMLElement, page: DlqPage, total: number): void {
  const letters = page.deadLetters ?? [];
  list.appendChild(
    table(
      [{ text: "Event" }, { text: "Reason" }, { text: "Error" }, { text: "Attempts", num: true }, { text: "Dead-lettered" }],
      letters.map((d) =>
        h("tr", { "data-dead-letter": d.id }, [
          h("td", null, h("a", { href: eventHash(d.topic, d.partition, d.sequence), text: `${d.topic}/${d.partition}/${d.sequence}` })),
          h("td", { text: d.reason }),
          h("td", { text: truncate(String(d.error || ""), 160) }),
          h("td", { class: "num", text: fmtInt(d.attempts) }),
          h("td", { text: d.deadLetteredAt }),
        ]),
      ),
      "Dead letters, oldest first",
    ),
  );
  if (page.next) list.appendChild(h("p", { class: "note", text: `Showing the oldest ${letters.length} of ${fmtInt(total)}.` }));
}

/** The subscription view; refresh = re-read on a poll without rebuilding the controls or moving focus. */
export async function showSubscription(route: SubscriptionRoute, refresh: boolean, focus = false): Promise<void> {
  let view = document.getElementById("subscription-view");
  if (!refresh || !view?.isConnected || view.getAttribute("data-name") !== route.name) {
    state.detailSeq++;
    const body = openDetail(`Subscription ${route.name}`, focus);
    const button = h("button", { id: "redrive", type: "button", class: "danger", hidden: true, text: "Redrive all" });
    button.addEventListener("click", () => void redrive(route.name));
    view = h("div", { id: "subscription-view", "data-name": route.name }, [
      h("div", { id: "sub-summary" }, h("p", { class: "note", text: "Loading…" })),
      h("h3", null, ["Dead letters: ", h("span", { id: "dlq-count", class: "count", "data-depth": "", text: "…" })]),
      h("div", { class: "toolbar" }, [button, h("span", { id: "redrive-result", role: "status" })]),
      h("div", { id: "dlq-list", class: "scroll" }),
    ]);
    body.appendChild(view);
  }
  const seq = state.detailSeq;
  const [sub, dlq] = await Promise.allSettled([
    api<SubscriptionWire>(API.subscription, { name: route.name }),
    api<DlqPage>(API.dlq, { name: route.name }, { query: { limit: 50 } }),
  ]);
  if (seq !== state.detailSeq || !view.isConnected) return;
  const summary = clear(byId("sub-summary"));
  if (sub.status === "rejected") summary.appendChild(message(describeFailure(sub.reason, "Reading the subscription"), "bad"));
  else for (const node of summaryOf(sub.value)) summary.appendChild(node);
  const count = byId("dlq-count");
  const list = clear(byId("dlq-list"));
  const button = byId<HTMLButtonElement>("redrive");
  if (dlq.status === "rejected") {
    const err: unknown = dlq.reason;
    const adminOnly = err instanceof ApiError && err.status === 403;
    count.textContent = adminOnly ? "admin only" : "unavailable";
    count.setAttribute("data-depth", "");
    count.className = "count";
    button.hidden = true;
    if (!adminOnly) list.appendChild(message(describeFailure(err, "Reading the DLQ"), "bad"));
    return;
  }
  const page = dlq.value;
  const total = num(page.total, (page.deadLetters || []).length);
  count.textContent = fmtInt(total);
  count.setAttribute("data-depth", String(total));
  count.className = `count${total > 0 ? " alert" : ""}`;
  // Listing needs admin on the topic, as redrive does: the button shows only when the list was allowed.
  button.hidden = total === 0;
  if (!total) {
    list.appendChild(h("p", { class: "note", text: "The DLQ is empty." }));
    return;
  }
  deadLetters(list, page, total);
}

async function redrive(name: string): Promise<void> {
  const button = byId<HTMLButtonElement>("redrive");
  const result = byId("redrive-result");
  state.redriving = true;
  button.disabled = true;
  result.className = "msg";
  result.textContent = "Redriving…";
  try {
    const r = await api<RedriveResult>(API.redrive, { name }, { method: "POST", body: {} });
    result.className = "msg good";
    result.textContent =
      `Redriven ${fmtInt(r.redriven)}; ${fmtInt(r.remaining)} remaining` +
      `${r.skipped?.length ? `; ${r.skipped.length} skipped (not deliveries)` : ""}.`;
  } catch (err) {
    result.className = "msg bad";
    result.textContent = err instanceof ApiError && err.status === 403 ? "Redrive is admin only (403)." : describeFailure(err, "Redrive");
  } finally {
    state.redriving = false;
    button.disabled = false;
  }
  const route = parseRoute();
  if (route && route.view === "subscription" && route.name === name) await showSubscription(route, true);
}
