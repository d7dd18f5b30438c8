// @ts-check
/**
 * The one HTTP helper: JSON in and out, `Authorization: Bearer`, RFC 9457 problem documents
 * turned into ApiError, network failures into NetworkError, and optional retries of 429/503
 * honouring Retry-After. Also the error classes that decide the exit code.
 */

/** Exit codes (documented in `eventline help` and bin/README.md). */
export const EXIT = Object.freeze({ ok: 0, api: 1, usage: 2, unreachable: 3, interrupted: 130 });

/**
 * @typedef {{ path: string, message: string }} ProblemIssue
 * @typedef {{ type?: string, title?: string, status?: number, detail?: string, code?: string,
 *   requestId?: string, issues?: ProblemIssue[], events?: { status?: string }[] }} Problem
 */

export class CliError extends Error {
  /** @param {string} message @param {number} exitCode */
  constructor(message, exitCode) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** Bad command line or input file: exit 2. */
export class UsageError extends CliError {
  /** @param {string} message @param {string} [command] the command whose `--help` to point at */
  constructor(message, command) {
    super(message, EXIT.usage);
    this.command = command;
  }
}

/** The server could not be reached: exit 3. */
export class NetworkError extends CliError {
  /** @param {string} message */
  constructor(message) {
    super(message, EXIT.unreachable);
  }
}

/** The API answered 4xx/5xx: exit 1. `problem` is its problem+json body (or one made up). */
export class ApiError extends CliError {
  /** @param {number} status @param {Problem} problem @param {number | undefined} retryAfter seconds */
  constructor(status, problem, retryAfter) {
    super(`${problem.title ?? `HTTP ${status}`}: ${problem.detail ?? ""}`, EXIT.api);
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

/** `Retry-After` as seconds (delta or HTTP date); undefined when absent or unreadable. @param {string | null} header */
function retryAfterSeconds(header) {
  if (header === null) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - Date.now()) / 1000);
}

/**
 * @typedef {{
 *   body?: unknown,
 *   raw?: string,
 *   contentType?: string,
 *   retries?: number,
 *   onRetry?: (error: ApiError, attempt: number, waitSeconds: number) => void,
 *   withHeaders?: boolean,
 * }} RequestOptions
 * `body` is sent as JSON; `raw` is sent as is with `contentType`. `retries`: how many times a
 * 429/503 is retried after waiting its Retry-After (default 0). `withHeaders`: answer
 * `{ status, headers, body }` instead of the body alone.
 */

/**
 * @param {{ url: string, token?: string | undefined, userAgent: string }} options
 */
export function createClient({ url, token, userAgent }) {
  const base = url.replace(/\/+$/, "");

  /**
   * @param {string} method
   * @param {string} path starting with `/` (an API `href` works as is)
   * @param {RequestOptions} [options]
   * @returns {Promise<any>} the parsed JSON body (null when empty)
   */
  async function api(method, path, { body, raw, contentType, retries = 0, onRetry, withHeaders = false } = {}) {
    /** @type {Record<string, string>} */
    const headers = { accept: "application/json, application/problem+json", "user-agent": userAgent };
    if (token) headers.authorization = `Bearer ${token}`;
    let payload;
    if (raw !== undefined) {
      payload = raw;
      headers["content-type"] = contentType ?? "application/json";
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers["content-type"] = "application/json";
    }
    for (let attempt = 1; ; attempt++) {
      let res;
      try {
        res = await fetch(`${base}${path}`, { method, headers, body: payload });
      } catch (err) {
        const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err);
        throw new NetworkError(`cannot reach ${base}: ${cause}`);
      }
      const text = await res.text().catch(() => "");
      /** @type {unknown} */
      let parsed = text;
      if (text !== "" && /json/i.test(res.headers.get("content-type") ?? "")) {
        try {
          parsed = JSON.parse(text);
        } catch {}
      }
      if (res.ok) {
        const result = text === "" ? null : parsed;
        return withHeaders ? { status: res.status, headers: res.headers, body: result } : result;
      }

      const problem =
        typeof parsed === "object" && parsed !== null && "title" in parsed
          ? /** @type {Problem} */ (parsed)
          : { title: `HTTP ${res.status} ${res.statusText}`.trim(), detail: text.slice(0, 300) || `${method} ${path}` };
      const error = new ApiError(res.status, problem, retryAfterSeconds(res.headers.get("retry-after")));
      if ((res.status === 503 || res.status === 429) && attempt <= retries) {
        const wait = error.retryAfter ?? 1;
        onRetry?.(error, attempt, wait);
        await new Promise((resolve) => setTimeout(resolve, wait * 1000));
        continue;
      }
      throw error;
    }
  }
  return api;
}

/** @typedef {ReturnType<typeof createClient>} Api */

/** Percent-encodes one path segment. @param {string} segment */
export const seg = (segment) => encodeURIComponent(segment);
