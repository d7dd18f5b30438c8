// @ts-check
/**
 * What `npm start` shows of `wrangler dev`'s output (scripts/start.mjs). Quiet by default: boot
 * chatter is kept back until the stack is ready (and shown only if it fails to start), requests
 * answered 2xx are not shown, nor the Workers' debug/info log lines; warnings, errors and every
 * other request are. Verbose (`npm start -- --verbose`, EVENTLINE_LOG=debug) shows every line.
 */

/** wrangler's line for one request: `[wrangler:info] GET /v1/topics 200 OK (12ms)`. */
const REQUEST_LINE = /^\[wrangler:info\] [A-Z]+ \S+ (\d{3})\b/;
/** wrangler's line once the server listens: `[wrangler:info] Ready on http://localhost:8787`. */
const READY_LINE = /^\[wrangler:info\] Ready on (https?:\/\/\S+)/;
/**
 * A false alarm: with two configs (`-c wrangler.toml -c workers/example-consumer/wrangler.toml`)
 * wrangler compares the example consumer's bindings with ./worker-configuration.d.ts, the
 * platform's file, and always finds them different. Both files are checked for real by
 * `npm run typecheck` (`wrangler types --check`).
 */
const TYPES_WARNING = /^❓ Your types might be out of date\. Re-run `wrangler types`/;
/** Lines that say something failed: shown even before the stack is ready. */
const FAILURE = /✘|\[ERROR\]|\[wrangler:error\]/;
/** A Worker's structured log line (sdk/logger.ts), as wrangler prints it: `[name] {"level":…}` or bare. */
const LOG_LINE = /^(?:\[[^\]]*\] )?(\{"level":"(debug|info|warn|error)".*\})$/;

/**
 * @typedef {{ show: boolean, ready?: string }} Decision
 *   `show`: print the line; `ready`: the line says the server listens at this URL (the first time).
 */

/** @param {{ verbose: boolean }} options */
export function createOutputFilter({ verbose }) {
  let ready = false;
  /** @param {string} raw @returns {Decision} */
  return (raw) => {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour codes are what is stripped here.
    const line = raw.replace(/\u001b\[[0-9;]*m/g, "");
    const listening = READY_LINE.exec(line);
    if (listening?.[1] !== undefined && !ready) {
      ready = true;
      return { show: verbose, ready: listening[1] };
    }
    if (TYPES_WARNING.test(line)) return { show: false };
    if (verbose) return { show: true };
    if (!ready) return { show: FAILURE.test(line) };
    const request = REQUEST_LINE.exec(line);
    if (request?.[1] !== undefined) {
      const status = Number(request[1]);
      return { show: status < 200 || status >= 300 };
    }
    const log = LOG_LINE.exec(line);
    if (log !== null) return { show: log[2] === "warn" || log[2] === "error" };
    return { show: true };
  };
}

/**
 * The banner printed once the stack is ready.
 * @param {{ url: string, state: string, defaultState: boolean, verbose: boolean }} options
 */
export function banner({ url, state, defaultState, verbose }) {
  const reset = defaultState ? "stop it (Ctrl-C), then npm run reset" : `stop it (Ctrl-C), then delete ${state}`;
  return [
    "",
    `Eventline is running at ${url}`,
    "",
    `  API         export EVENTLINE_URL=${url}`,
    `  Token       export EVENTLINE_TOKEN=$(sed -n 's/^EVENTLINE_ADMIN_KEY=//p' .dev.vars)`,
    `  Dashboard   ${url}/dashboard`,
    `  API docs    ${url}/docs   (OpenAPI: ${url}/openapi.json)`,
    `  State       ${state}; to start afresh, ${reset}`,
    verbose
      ? "  Logs        every line (verbose)"
      : "  Logs        warnings, errors and requests not answered 2xx; every line: npm start -- --verbose",
    "",
    'Next: the README\'s "Try it". Ctrl-C stops the stack.',
    "",
  ].join("\n");
}
