import { byId } from "../dom";
import { stopLive } from "../live";
import { state } from "../state";
import { parseRoute } from "./common";
import { showEvent } from "./event";
import { showSubscription } from "./subscription";
import { showTopic } from "./topic";

/** Shows the view of the current hash route (or hides the detail card); `focus` moves focus to it. */
export function showRoute(focus: boolean): void {
  // A followed partition stops with the view it belongs to (a new topic view starts its own).
  stopLive();
  if (!state.token || !state.model) return;
  const route = parseRoute();
  if (!route) {
    byId("detail").hidden = true;
    state.detailSeq++;
    return;
  }
  if (route.view === "topic") void showTopic(route, focus);
  else if (route.view === "subscription") void showSubscription(route, false, focus);
  else void showEvent(route, focus);
}

export { parseRoute, showSubscription };
