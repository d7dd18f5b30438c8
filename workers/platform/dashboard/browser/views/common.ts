import { ApiError } from "../api";
import { byId, clear, h } from "../dom";
import { messageOf } from "../format";

/**
 * Drill-down views are hash routes: #/topic/{topic}/{partition}/{from}, #/event/{topic}/{partition}/{sequence},
 * #/subscription/{name}. This module parses them and holds what the views share.
 */

export type Route =
  | { view: "topic"; topic: string; partition: number; from: number | null }
  | { view: "subscription"; name: string }
  | { view: "event"; topic: string; partition: number; sequence: number };

export function parseRoute(): Route | null {
  const parts = location.hash
    .replace(/^#\/?/, "")
    .split("/")
    .filter((p) => p !== "")
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    });
  const int = (v: string | undefined) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : null);
  const [view, name, second, third] = parts;
  if (view === "topic" && name) return { view: "topic", topic: name, partition: int(second) ?? 0, from: int(third) };
  if (view === "subscription" && name) return { view: "subscription", name };
  const partition = int(second);
  const sequence = int(third);
  if (view === "event" && name && partition !== null && sequence !== null) return { view: "event", topic: name, partition, sequence };
  return null;
}

export const topicHash = (topic: string, partition: number, from: number | null | undefined): string =>
  `#/topic/${encodeURIComponent(topic)}/${partition}${from !== null && from !== undefined ? `/${from}` : ""}`;
export const eventHash = (topic: string, partition: number, sequence: number): string =>
  `#/event/${encodeURIComponent(topic)}/${partition}/${sequence}`;

/** Shows the detail card with `title` and returns its emptied body; `focus` moves focus and scrolls there. */
export function openDetail(title: string, focus: boolean): HTMLElement {
  const section = byId("detail");
  section.hidden = false;
  byId("detail-title").textContent = title;
  if (focus) {
    byId("detail-title").focus({ preventScroll: true });
    section.scrollIntoView({ block: "start" });
  }
  return clear(byId("detail-body"));
}

/** A status line; "bad" ones are alerts. */
export const message = (text: string, cls?: string): HTMLParagraphElement =>
  h("p", { class: `msg${cls ? ` ${cls}` : ""}`, role: cls === "bad" ? "alert" : "status", text });

export function describeFailure(err: unknown, what: string): string {
  if (err instanceof ApiError && err.status === 403) return `${what}: admin only (403). ${err.detail || ""}`;
  if (err instanceof ApiError && err.status === 404) return `${what}: not found. ${err.detail || ""}`;
  return `${what} failed: ${messageOf(err)}`;
}

/** A definition list; empty values are left out, nodes are kept as they are. */
export function keyValues(pairs: [string, unknown][]): HTMLDListElement {
  const dl = h("dl", { class: "kv" });
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === "") continue;
    dl.appendChild(h("dt", { text: k }));
    dl.appendChild(h("dd", null, v instanceof Node ? v : String(v)));
  }
  return dl;
}
