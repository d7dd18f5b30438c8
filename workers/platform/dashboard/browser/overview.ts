import { byId, type Column, clear, h, rememberFocus, restoreFocus, table } from "./dom";
import { fmtInt, fmtNum, fmtPct, fmtRate, truncate } from "./format";
import type { Model } from "./types";

/** The always-visible parts besides graph and charts: subscriptions table, replay jobs, health badge. */

/** The table's columns, each saying what it counts (the header's tooltip). */
function subscriptionColumns(model: Model): Column[] {
  const over = model.windowSeconds
    ? `over the last ${fmtNum(model.windowSeconds / 60)} min (what health judges)`
    : "since the previous poll";
  return [
    { text: "Subscription" },
    { text: "Topic" },
    { text: "Kind" },
    {
      text: "Lag",
      num: true,
      help: "Events routed to the subscription (its filter matched) and not yet handled; events it skips never count",
    },
    { text: "DLQ", num: true, help: "Dead letters waiting for inspection or redrive" },
    { text: "Circuit", help: "The circuit breaker: closed (delivering), open (paused after failures), half-open (trying again)" },
    { text: "Handled", num: true, help: `Events handled per second, ${over}` },
    { text: "Errors", num: true, help: `Retries and dead letters ÷ deliveries, ${over}` },
  ];
}

export function renderSubscriptions(model: Model): void {
  const container = byId("subscriptions");
  const focused = rememberFocus(container);
  const rows = model.subscriptions.map((x) =>
    h("tr", { "data-subscription": x.name }, [
      h(
        "th",
        { scope: "row" },
        h("a", { href: `#/subscription/${encodeURIComponent(x.name)}`, "data-key": `sub:${x.name}`, text: x.name }),
      ),
      h("td", { text: x.topic }),
      h("td", { text: x.kind }),
      h("td", { class: `num${x.lag > 0 ? " warn" : ""}`, text: fmtInt(x.lag) }),
      h("td", { class: `num${x.dlqDepth > 0 ? " alert" : ""}`, "data-dlq": x.dlqDepth, text: fmtInt(x.dlqDepth) }),
      h("td", { class: x.circuit === "closed" ? null : "alert", text: x.circuit }),
      h("td", { class: "num", "data-rate": x.rate ?? "", text: fmtRate(x.rate) }),
      h("td", { class: `num${(x.errorRate ?? 0) > 0 ? " warn" : ""}`, "data-error-rate": x.errorRate ?? "", text: fmtPct(x.errorRate) }),
    ]),
  );
  clear(container);
  if (!rows.length) container.appendChild(h("p", { class: "note", text: "No subscriptions visible to this key." }));
  else container.appendChild(table(subscriptionColumns(model), rows, "Subscriptions with lag, dead-letter depth, circuit state and rates"));
  restoreFocus(container, focused);
}

export function renderReplays(model: Model): void {
  const container = clear(byId("replays"));
  if (!model.replays) {
    container.appendChild(h("p", { class: "note", text: model.replaysNote || "Replay jobs unavailable." }));
    return;
  }
  if (!model.replays.length) {
    container.appendChild(h("p", { class: "note", text: "No replay jobs. Start one with POST /v1/replays or npx eventline replay." }));
    return;
  }
  const list = h("ul", { class: "replays" });
  for (const r of model.replays) {
    const pct = r.progress === null ? null : Math.round(r.progress * 100);
    const label = `Replay ${r.id} of ${r.topic} to ${r.subscription}`;
    list.appendChild(
      h("li", { "data-replay": r.id }, [
        h("div", { class: "head" }, [
          h("span", null, [h("code", { title: r.id, text: truncate(r.id, 16) }), ` ${r.topic} → ${r.subscription}`]),
          h("span", { class: `state ${r.state}`, text: r.state }),
        ]),
        h("progress", { max: 100, value: pct === null ? null : pct, "aria-label": `${label} progress` }),
        h("div", {
          class: "note",
          text:
            `${pct === null ? "progress unknown" : `${pct}%`} · sent ${fmtInt(r.sent)} · scanned ${fmtInt(r.scanned)}` +
            (r.total !== null ? ` of ${fmtInt(r.total)}` : "") +
            (r.eventsPerSecond !== null ? ` · ${fmtNum(r.eventsPerSecond)} events/s` : ""),
        }),
      ]),
    );
  }
  container.appendChild(list);
}

export function renderHealth(model: Model): void {
  const hh = model.health;
  if (!hh) return;
  const el = byId("health");
  el.hidden = false;
  el.className = `badge ${hh.status}`;
  el.setAttribute("data-status", hh.status);
  el.textContent = `Health: ${hh.status}${hh.derived ? " (derived)" : ""}`;
  el.title = hh.derived ? "Derived from DLQ depth and circuits (no /v1/health on this server)" : "From /v1/health";
  const reasons = byId("health-reasons");
  reasons.hidden = hh.reasons.length === 0;
  reasons.textContent = hh.reasons.length
    ? truncate(hh.reasons.slice(0, 2).join("; "), 140) + (hh.reasons.length > 2 ? ` (+${hh.reasons.length - 2} more)` : "")
    : "";
  reasons.title = hh.reasons.join("\n");
}
