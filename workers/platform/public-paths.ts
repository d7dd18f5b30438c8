import { DASHBOARD_PATH } from "./dashboard/assets";
import { REFERENCE_SCRIPT_PATH } from "./reference/page";

/**
 * The one list of paths anyone may call without a credential: liveness, the API document, its
 * reference page and the page's renderer script, and the dashboard's page shell and static assets (no
 * data in them; the pages call the API with the user's key). Authentication (auth/access.ts) lets them
 * through and the OpenAPI document (routes/docs.ts) leaves them without a security requirement;
 * test/integration/route-table checks the list against the registered routes, both ways.
 */
const PUBLIC = /^\/(health|openapi\.json|docs\/?)$/;

export const isPublicPath = (path: string): boolean => PUBLIC.test(path) || path === REFERENCE_SCRIPT_PATH || DASHBOARD_PATH.test(path);
