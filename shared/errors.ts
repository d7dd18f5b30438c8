/**
 * One error type for the whole platform, with a closed set of codes and an exhaustive
 * code → HTTP status map. Rendered once, in the app's onError, as RFC 9457 problem+json.
 */

export const ERROR_STATUS = {
  malformed_request: 400,
  invalid_envelope: 400,
  invalid_parameter: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  topic_not_found: 404,
  method_not_allowed: 405,
  gone: 410,
  duplicate_conflict: 409,
  conflict: 409,
  version_conflict: 409,
  key_inactive: 409,
  schema_incompatible: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  schema_violation: 422,
  unprocessable_request: 422,
  command_rejected: 422,
  rate_limited: 429,
  internal: 500,
  overloaded: 503,
  unavailable: 503,
  read_model_behind: 503,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_STATUS;

const TITLES: Record<ErrorCode, string> = {
  malformed_request: "Malformed request",
  invalid_envelope: "Invalid CloudEvent",
  invalid_parameter: "Invalid parameter",
  unauthorized: "Unauthorized",
  forbidden: "Forbidden",
  not_found: "Not found",
  topic_not_found: "Unknown topic",
  method_not_allowed: "Method not allowed",
  gone: "Gone",
  duplicate_conflict: "Event id already used with different content",
  conflict: "Conflicts with the current state",
  version_conflict: "Stream version conflict",
  key_inactive: "API key revoked or expired",
  schema_incompatible: "Schema breaks its compatibility mode",
  payload_too_large: "Payload too large",
  unsupported_media_type: "Unsupported media type",
  schema_violation: "Event data does not match its schema",
  unprocessable_request: "Request is well-formed but cannot be carried out",
  command_rejected: "Command not allowed in the current state",
  rate_limited: "Too many requests",
  internal: "Internal error",
  overloaded: "Partition overloaded",
  unavailable: "Temporarily unavailable",
  read_model_behind: "Read model has not caught up",
};

/** One failing location in the request, e.g. `{ path: "/events/3/source", message: "…" }`. */
export interface ProblemIssue {
  path: string;
  message: string;
}

export interface ErrorOptions {
  issues?: ProblemIssue[];
  /** Seconds for a `Retry-After` header (429/503). */
  retryAfter?: number;
  /** Extra problem members (RFC 9457 extension members), e.g. per-event results. */
  extensions?: Record<string, unknown>;
  headers?: Record<string, string>;
  cause?: unknown;
}

export class EventlineError extends Error {
  override readonly name = "EventlineError";
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
    readonly options: ErrorOptions = {},
  ) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = ERROR_STATUS[code];
  }

  get title(): string {
    return TITLES[this.code];
  }
}

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

export function problemType(code: ErrorCode): string {
  return `https://eventline.dev/problems/${code.replaceAll("_", "-")}`;
}

export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  code: ErrorCode;
  requestId: string;
  issues?: ProblemIssue[];
  [extension: string]: unknown;
}

export function toProblem(err: EventlineError, requestId: string, instance?: string): ProblemDocument {
  return {
    ...err.options.extensions,
    type: problemType(err.code),
    title: err.title,
    status: err.status,
    detail: err.detail,
    ...(instance === undefined ? {} : { instance }),
    code: err.code,
    requestId,
    ...(err.options.issues === undefined ? {} : { issues: err.options.issues }),
  };
}

export function problemResponse(err: EventlineError, requestId: string, instance?: string): Response {
  const headers = new Headers(err.options.headers);
  headers.set("content-type", PROBLEM_CONTENT_TYPE);
  headers.set("x-request-id", requestId);
  if (err.options.retryAfter !== undefined) headers.set("retry-after", String(err.options.retryAfter));
  return new Response(JSON.stringify(toProblem(err, requestId, instance)), { status: err.status, headers });
}
