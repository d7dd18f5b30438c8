import { DASHBOARD_SCRIPT } from "./bundle.generated";
import { DASHBOARD_ICON, DASHBOARD_PAGE } from "./page";
import { DASHBOARD_STYLES } from "./styles";

/**
 * The dashboard's files and the paths it answers, apart from the routes that serve them, so the
 * auth middleware (public paths) and the 405 table can name them without importing a route module.
 */

/** The assets by path, with their content types. */
export const DASHBOARD_ASSETS: Record<string, { body: string; type: string }> = {
  "/dashboard": { body: DASHBOARD_PAGE, type: "text/html; charset=utf-8" },
  "/dashboard/app.js": { body: DASHBOARD_SCRIPT, type: "text/javascript; charset=utf-8" },
  "/dashboard/app.css": { body: DASHBOARD_STYLES, type: "text/css; charset=utf-8" },
  "/dashboard/icon.svg": { body: DASHBOARD_ICON, type: "image/svg+xml; charset=utf-8" },
};

/** Every path the dashboard answers (its assets and the `/dashboard/` redirect): public, GET/HEAD only. */
export const DASHBOARD_PATH = new RegExp(
  `^(${[...Object.keys(DASHBOARD_ASSETS), "/dashboard/"].map((path) => path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})$`,
);
