import { byId } from "./dom";
import { showSignIn, signIn, signOut, storage } from "./session";
import { TOKEN_KEY } from "./state";
import { showRoute } from "./views";

/**
 * The dashboard's browser entry, bundled by scripts/build-dashboard.mjs into the classic script
 * served as /dashboard/app.js (ADR 0038). Flow: sign-in (key in sessionStorage) → poll every 2 s
 * (session.ts) → normalise into one model (model.ts) → rates (rates.ts) → render the flow graph,
 * charts, subscriptions table, replay progress and health; drill-downs are hash routes (views/).
 * Every value from the API is put in the DOM as text, never as markup.
 */

function start(): void {
  const form = byId<HTMLFormElement>("signin-form");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const input = byId<HTMLInputElement>("token");
    const token = input.value.trim();
    if (!token) return;
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    byId("signin-error").hidden = true;
    byId("updated").textContent = "Signing in…";
    void signIn(token).finally(() => {
      if (button) button.disabled = false;
      input.value = "";
    });
  });
  byId("signout").addEventListener("click", () => signOut("Signed out."));
  byId("detail-close").addEventListener("click", () => {
    location.hash = "#/";
    byId("flow-title").focus();
  });
  window.addEventListener("hashchange", () => showRoute(true));
  const st = storage();
  const saved = st ? st.getItem(TOKEN_KEY) : null;
  if (saved) {
    byId("updated").textContent = "Signing in…";
    void signIn(saved);
  } else showSignIn("");
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
