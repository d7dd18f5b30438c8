import { API, api } from "../api";
import { h, table } from "../dom";
import { fmtInt, num, truncate } from "../format";
import { PAGE_SIZE, state } from "../state";
import type { EventsPage, EventWire } from "../wire";
import { describeFailure, eventHash, message, openDetail, type Route, topicHash } from "./common";
import { liveControls } from "./topic-live";

/** One event's row: its sequence (a link to its detail), id, type, subject and time. */
function eventRow(topic: string, partition: number, e: EventWire): HTMLElement {
  const sq = Number(e.sequence);
  return h("tr", { "data-sequence": sq }, [
    h("td", { class: "num" }, h("a", { href: eventHash(topic, partition, sq), "aria-label": `Event at sequence ${sq}`, text: fmtInt(sq) })),
    h("td", { class: "mono", text: truncate(String(e.id ?? ""), 40) }),
    h("td", { text: String(e.type ?? "") }),
    h("td", { text: String(e.subject ?? "") }),
    h("td", { text: String(e.receivedtime ?? e.time ?? "") }),
  ]);
}

/**
 * A topic's events, one page of one partition at a time, with a partition picker and a jump to a
 * sequence. The latest page (no `from` in the route) follows the partition live (topic-live.ts)
 * unless the user paused it;
 * "Follow live" on any page adds what comes after it.
 */
export async function showTopic(route: Extract<Route, { view: "topic" }>, focus: boolean): Promise<void> {
  const seq = ++state.detailSeq;
  const topic = state.model?.topics.find((t) => t.name === route.topic);
  const body = openDetail(`Topic ${route.topic}`, focus);
  if (!topic) {
    body.appendChild(message(`Topic ${route.topic} is not visible to this key.`, "bad"));
    return;
  }
  const part = topic.partitions.find((p) => p.partition === route.partition) || topic.partitions[0];
  const partition = part ? part.partition : 0;
  const head = part ? part.head : 0;
  const from = route.from ?? Math.max(1, head - PAGE_SIZE + 1);
  const go = (hash: string) => {
    location.hash = hash;
  };

  const select = h(
    "select",
    { id: "partition-picker" },
    topic.partitions.map((p) =>
      h("option", { value: p.partition, selected: p.partition === partition, text: `Partition ${p.partition} (head ${fmtInt(p.head)})` }),
    ),
  );
  select.addEventListener("change", () => go(topicHash(topic.name, Number(select.value), null)));
  const jump = h("input", { id: "jump-sequence", type: "number", min: 1, step: 1, inputmode: "numeric", value: from });
  const prev = h("button", { type: "button", disabled: true, text: "← Previous" });
  const next = h("button", { type: "button", disabled: true, text: "Next →" });
  const latest = h("button", { type: "button", text: "Latest", onclick: () => go(topicHash(topic.name, partition, null)) });
  const onsubmit = (e: Event) => {
    e.preventDefault();
    const v = Number(jump.value);
    if (Number.isInteger(v) && v >= 1) go(topicHash(topic.name, partition, v));
  };
  body.appendChild(
    h("div", { class: "toolbar" }, [
      h("label", { for: "partition-picker", text: "Partition" }),
      select,
      h("form", { onsubmit }, [
        h("label", { for: "jump-sequence", text: "Jump to sequence" }),
        jump,
        h("button", { type: "submit", text: "Go" }),
      ]),
      prev,
      next,
      latest,
    ]),
  );
  const toolbar = body.lastElementChild as HTMLElement;
  const status = h("p", { class: "note", role: "status", text: "Loading events…" });
  const results = h("div", { class: "scroll" });
  body.appendChild(status);
  body.appendChild(results);
  let page: EventsPage;
  try {
    page = await api<EventsPage>(API.events, { topic: topic.name, partition }, { query: { from, limit: PAGE_SIZE } });
  } catch (err) {
    if (seq !== state.detailSeq) return;
    status.replaceWith(message(describeFailure(err, "Reading events"), "bad"));
    return;
  }
  if (seq !== state.detailSeq) return;
  const events = Array.isArray(page.events) ? page.events : [];
  const lowest = Math.max(1, num(page.first, 1));
  const first = events[0];
  const last = events[events.length - 1];
  if (!first || !last) status.textContent = `No events from sequence ${fmtInt(from)} (head ${fmtInt(page.head)}).`;
  else {
    status.textContent =
      `Sequences ${fmtInt(Number(first.sequence))}–${fmtInt(Number(last.sequence))} of partition ${partition}` +
      ` (head ${fmtInt(page.head)}).`;
  }
  if (from > lowest) {
    prev.disabled = false;
    prev.addEventListener("click", () => go(topicHash(topic.name, partition, Math.max(lowest, from - PAGE_SIZE))));
  }
  const after = page.next;
  if (page.hasMore && after) {
    next.disabled = false;
    next.addEventListener("click", () => go(topicHash(topic.name, partition, after.from)));
  }
  const rows = events.map((e) => eventRow(topic.name, partition, e));
  const tableEl = table(
    [{ text: "Sequence", num: true }, { text: "Id" }, { text: "Type" }, { text: "Subject" }, { text: "Received" }],
    rows,
    `Events of ${topic.name} partition ${partition}`,
  );
  const tbody = tableEl.tBodies[0];
  if (events.length) results.appendChild(tableEl);
  if (!tbody) return;
  const pageHead = num(page.head, 0);
  toolbar.appendChild(
    liveControls({
      topic: topic.name,
      partition,
      after: last ? Number(last.sequence) : Math.max(0, Math.min(from - 1, pageHead)),
      tbody,
      row: (e) => {
        // The first live row shows the table when the page had none.
        if (!tableEl.isConnected) results.appendChild(tableEl);
        return eventRow(topic.name, partition, e);
      },
      note: status,
      auto: route.from === null,
    }),
  );
}
