// @ts-check
/** Where the local stack keeps its state, shared by scripts/start.mjs and scripts/reset.mjs. */

/** Where `wrangler dev` keeps local state when not told otherwise (`--persist-to`); `npm run reset` wipes it. */
export const DEFAULT_STATE = ".wrangler/state";
/** While `npm start` runs, its pid is in this file inside the state directory, so reset can refuse. */
export const PID_FILE = ".eventline-dev.pid";
