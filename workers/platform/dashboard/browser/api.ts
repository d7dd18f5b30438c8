import { messageOf, truncate } from "./format";
import { PROBE_MS, state } from "./state";

/**
 * Every API path the dashboard calls (all need a bearer credential). test/integration/dashboard.test.ts
 * reads them from the served bundle (double-quoted "/v1/…" strings) and checks each refuses a
 * request without credentials, so no other double-quoted string may start with "/v1/".
 */
export const API = {
  metrics: "/v1/metrics",
  history: "/v1/metrics/history",
  health: "/v1/health",
  topics: "/v1/topics",
  subscriptions: "/v1/subscriptions",
  subscription: "/v1/subscriptions/{name}",
  dlq: "/v1/subscriptions/{name}/dlq",
  redrive: "/v1/subscriptions/{name}/dlq/redrive",
  replays: "/v1/replays",
  events: "/v1/topics/{topic}/partitions/{partition}/events",
  trace: "/v1/topics/{topic}/partitions/{partition}/events/{sequence}/trace",
  stream: "/v1/topics/{topic}/partitions/{partition}/stream",
} as const;

/** A failed call: the HTTP status (0 when the API could not be reached) and the problem's title and detail. */
export class ApiError extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly body: unknown;

  constructor(status: number, title: string, detail: string, body?: unknown) {
    super(status ? `${status} ${title}${detail ? `: ${detail}` : ""}` : title + (detail ? `: ${detail}` : ""));
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.body = body;
  }
}

type Params = Record<string, string | number>;
type Query = Record<string, string | number | null | undefined>;

function apiPath(template: string, params: Params, query?: Query): string {
  let path = template.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(String(params[name])));
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) q.set(k, String(v));
    const text = q.toString();
    if (text) path += `?${text}`;
  }
  return path;
}

export interface ApiOptions {
  method?: string;
  body?: unknown;
  query?: Query;
}

/**
 * Calls the API with the signed-in credential; resolves to the parsed body, rejects with ApiError.
 * `T` is the shape the caller reads (wire.ts), not a check: callers read it defensively.
 */
export async function api<T = unknown>(template: string, params: Params = {}, opts: ApiOptions = {}): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  // biome-ignore lint/style/useTemplate: test/integration/dashboard.test.ts looks for the literal "Bearer " in the bundle.
  if (state.token) headers.authorization = "Bearer " + state.token;
  const init: RequestInit = {
    method: opts.method || "GET",
    headers,
    cache: "no-store",
    credentials: "omit",
    signal: AbortSignal.timeout(10000),
  };
  if (opts.body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(opts.body);
  }
  let res: Response;
  try {
    res = await fetch(apiPath(template, params, opts.query), init);
  } catch (err) {
    throw new ApiError(0, "Cannot reach the API", messageOf(err));
  }
  const text = await res.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  if (!res.ok) {
    const problem: { title?: string; detail?: string } = body && typeof body === "object" ? body : {};
    const title = problem.title || res.statusText || "HTTP error";
    const detail = problem.detail || (typeof body === "string" ? truncate(body, 200) : "");
    throw new ApiError(res.status, title, detail, body);
  }
  return body as T;
}

/** The outcome of an optional endpoint: its body, or that it is missing, or another error (the caller falls back). */
export interface OptionalResult {
  body?: unknown;
  missing?: boolean;
  error?: ApiError;
}

/** An endpoint that may not exist on this server yet: {body}, or {missing}/{error} to fall back. 401 still throws. */
export async function optional(key: string, template: string): Promise<OptionalResult> {
  const since = state.missing[key];
  if (since !== undefined && Date.now() - since < PROBE_MS) return { missing: true };
  try {
    const body = await api(template);
    delete state.missing[key];
    return { body };
  } catch (err) {
    if (!(err instanceof ApiError) || err.status === 401) throw err;
    if (err.status === 404 || err.status === 405 || err.status === 501) {
      state.missing[key] = Date.now();
      return { missing: true };
    }
    return { error: err };
  }
}
