import { ApiError } from "./api";
import { renderCharts } from "./charts";
import { byId } from "./dom";
import { fmtClock, messageOf } from "./format";
import { renderGraph } from "./graph";
import { loadHistory } from "./history";
import { stopLive } from "./live";
import { load } from "./model";
import { renderHealth, renderReplays, renderSubscriptions } from "./overview";
import { computeRates } from "./rates";
import { POLL_MS, state, TOKEN_KEY } from "./state";
import type { Model } from "./types";
import { parseRoute, showRoute, showSubscription } from "./views";

/**
 * Sign-in and polling: the key lives in sessionStorage (this tab only) and goes to the API as a
 * bearer credential; a 401/403 signs out with the reason, any other failure shows inline and the
 * poll goes on every 2 s.
 */

function render(model: Model): void {
  renderGraph(model);
  renderCharts(model);
  renderSubscriptions(model);
  renderReplays(model);
  renderHealth(model);
}

function showError(text: string): void {
  const el = byId("error");
  el.hidden = !text;
  el.textContent = text || "";
  byId("graph").classList.toggle("stale", Boolean(text));
}

async function poll(): Promise<boolean> {
  const generation = state.generation;
  let model: Model;
  try {
    model = await load();
  } catch (err) {
    if (generation !== state.generation) return false;
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      signOut(
        (err.status === 401 ? "The API did not accept this key (401 Unauthorized)" : "This key may not read the topics (403 Forbidden)") +
          (err.detail ? `: ${err.detail}` : "") +
          ". Sign in with another key.",
      );
      return false;
    }
    showError(`Update failed at ${fmtClock(new Date())}: ${messageOf(err)} — retrying every 2 s.`);
    return state.model !== null;
  }
  if (generation !== state.generation) return false;
  const first = state.model === null;
  // On open, the charts' past from the server, before this poll's own sample.
  if (first && model.recent) {
    try {
      await loadHistory();
    } catch {
      // Optional: without it the charts fill up as the page polls (a refused key shows on the next poll).
    }
    if (generation !== state.generation) return false;
  }
  computeRates(model, state.prev);
  state.prev = model;
  state.model = model;
  showError("");
  try {
    render(model);
  } catch (err) {
    console.error(err);
    showError(`Could not draw the update: ${messageOf(err)}`);
  }
  const updated = byId("updated");
  updated.textContent = `Last updated ${fmtClock(new Date(model.at))} · source ${model.source}${model.note ? ` (${model.note})` : ""}`;
  updated.setAttribute("data-updated", String(model.at));
  const route = parseRoute();
  if (first) showRoute(false);
  else if (route && route.view === "subscription" && !state.redriving) void showSubscription(route, true);
  return true;
}

function schedule(): void {
  clearTimeout(state.timer);
  const generation = state.generation;
  state.timer = setTimeout(async () => {
    if (generation !== state.generation) return;
    await poll();
    if (generation === state.generation && state.token) schedule();
  }, POLL_MS);
}

/** sessionStorage, or null where the browser refuses it (e.g. storage disabled). */
export function storage(): Storage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

export function showSignIn(message: string): void {
  byId("app").hidden = true;
  byId("signin").hidden = false;
  byId("signout").hidden = true;
  byId("health").hidden = true;
  byId("health-reasons").hidden = true;
  byId("updated").textContent = "Not signed in";
  // The origin this page came from is the EVENTLINE_URL the CLI and the README's examples need.
  byId("signin-origin").textContent = location.origin;
  const err = byId("signin-error");
  err.hidden = !message;
  err.textContent = message || "";
  byId("token").focus();
}

export function signOut(message: string): void {
  state.generation++;
  clearTimeout(state.timer);
  stopLive();
  state.token = null;
  const st = storage();
  if (st) st.removeItem(TOKEN_KEY);
  showSignIn(message);
}

export async function signIn(token: string): Promise<void> {
  state.generation++;
  clearTimeout(state.timer);
  state.token = token;
  state.prev = null;
  state.model = null;
  state.samples = [];
  state.historyMs = 0;
  state.missing = {};
  state.metaAt = 0;
  state.graphSig = "";
  state.graphRefs = null;
  await poll();
  // A refused key has signed out already; any other failure shows inline and polling goes on.
  if (state.token !== token) return;
  const st = storage();
  if (st) st.setItem(TOKEN_KEY, token);
  byId("signin").hidden = true;
  byId("app").hidden = false;
  byId("signout").hidden = false;
  schedule();
}
