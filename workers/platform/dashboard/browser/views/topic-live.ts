import { h } from "../dom";
import { fmtInt } from "../format";
import { followPartition, type LiveStatus, stopLive } from "../live";
import { state } from "../state";
import type { EventWire } from "../wire";

/** The most rows a followed topic view keeps: older ones leave the top as new ones arrive. */
export const LIVE_MAX_ROWS = 200;

const LABELS: Record<LiveStatus, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting",
  stopped: "Not following",
};

export interface LiveView {
  topic: string;
  partition: number;
  /** The last sequence on the page: following starts after it. */
  after: number;
  /** Where the rows go (the events table's body). */
  tbody: HTMLElement;
  /** Builds one row, as the page's own rows. */
  row: (event: EventWire) => HTMLElement;
  /** The page's status line, rewritten while following. */
  note: HTMLElement;
  /** Whether to start at once (the view is at the partition's tail and the user has not paused). */
  auto: boolean;
}

/**
 * A "Follow live" toggle and a live status for a topic view: while on, events committed to the
 * partition are added to the table as they arrive, read from the partition's live stream
 * (live.ts), and the table keeps its last LIVE_MAX_ROWS rows. Turning it off is remembered
 * (state.livePaused) until it is turned on again. The view's change and sign-out stop it
 * (views/index.ts, session.ts).
 */
export function liveControls(view: LiveView): HTMLElement {
  const toggle = h("button", { type: "button", id: "follow-live", "aria-pressed": "false", text: "Follow live" });
  const badge = h("span", {
    id: "live-status",
    class: "live note",
    role: "status",
    "data-live": "stopped",
    "data-max-rows": LIVE_MAX_ROWS,
    text: LABELS.stopped,
  });
  let after = view.after;
  let on = false;
  /** Which start the callbacks belong to: a stopped follower's late "stopped" must not turn a newer one's toggle off. */
  let runs = 0;
  const show = (status: LiveStatus, detail?: string) => {
    badge.setAttribute("data-live", status);
    badge.textContent = detail ? `${LABELS[status]}: ${detail}` : LABELS[status];
  };
  const setOn = (value: boolean) => {
    on = value;
    toggle.setAttribute("aria-pressed", String(value));
    toggle.textContent = value ? "Stop following" : "Follow live";
  };
  const start = () => {
    setOn(true);
    const tbody = view.tbody;
    const generation = state.generation;
    const run = ++runs;
    const current = () => run === runs && view.note.isConnected && generation === state.generation;
    void followPartition({
      topic: view.topic,
      partition: view.partition,
      after,
      onStatus: (status, detail) => {
        if (!current()) return;
        show(status, detail);
        if (status === "stopped") setOn(false);
      },
      onEvents: (events) => {
        if (!current()) return;
        for (const e of events) tbody.appendChild(view.row(e));
        while (tbody.children.length > LIVE_MAX_ROWS) tbody.firstElementChild?.remove();
        const last = events[events.length - 1];
        if (last) after = Number(last.sequence);
        const firstRow = tbody.firstElementChild?.getAttribute("data-sequence");
        view.note.textContent =
          `Following partition ${view.partition} live: sequences ${fmtInt(Number(firstRow))}–${fmtInt(after)}` +
          ` (the last ${fmtInt(LIVE_MAX_ROWS)} at most).`;
      },
    });
  };
  toggle.addEventListener("click", () => {
    if (on) {
      state.livePaused = true;
      runs++;
      stopLive();
      setOn(false);
      show("stopped");
    } else {
      state.livePaused = false;
      start();
    }
  });
  if (view.auto && !state.livePaused) start();
  return h("span", { class: "live-controls" }, [toggle, badge]);
}
