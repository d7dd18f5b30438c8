/**
 * Structured logs: one JSON object per line, the same field names everywhere, so Workers Logs
 * and `wrangler tail` index them. Fields: `level`, `msg`, `time`, and then context such as
 * `requestId`, `traceparent`, `topic`, `partition`, `firstSequence`, `lastSequence`, `durationMs`.
 */

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

export interface Logger {
  with(fields: LogFields): Logger;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

function errorFields(value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  return value;
}

/**
 * Fields every record starts with, `error` (rewritten) and `toJSON` (which `JSON.stringify`
 * would call on the fields object itself): such keys take the general path.
 */
const RESERVED = new Set(["level", "msg", "time", "error", "toJSON"]);

/** `new Date().toISOString()`, recomputed only when the millisecond changes (Workers advance time on I/O only). */
let isoMs = Number.NaN;
let isoText = "";
function isoNow(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    isoText = new Date(now).toISOString();
  }
  return isoText;
}

/**
 * True when `fields` can be written after the base fields as they are: no key shared with the
 * base or the leading fields, no `error`, no integer-like key (an object would move it first).
 */
function appendable(fields: LogFields, baseKeys: ReadonlySet<string>): boolean {
  for (const key in fields) {
    if (RESERVED.has(key) || baseKeys.has(key)) return false;
    const c = key.charCodeAt(0);
    if (c >= 48 && c <= 57) return false;
  }
  return true;
}

/**
 * Each line is `JSON.stringify({ level, msg, time, ...base, ...fields })` with `error` expanded.
 * In the common case the base fields are serialized once per logger and the line is put
 * together from pieces; the output is the same text as the general path.
 */
export function createLogger(base: LogFields = {}, sink: (line: string) => void = (l) => console.log(l)): Logger {
  const baseKeys = new Set(Object.keys(base));
  let baseText: string | undefined;
  if (appendable(base, new Set())) {
    const text = JSON.stringify(base);
    baseText = text === "{}" ? "" : `,${text.slice(1, -1)}`;
  }
  const write = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (baseText !== undefined && (fields === undefined || appendable(fields, baseKeys))) {
      const own = fields === undefined ? "{}" : JSON.stringify(fields);
      const rest = own === "{}" ? "" : `,${own.slice(1, -1)}`;
      sink(`{"level":"${level}","msg":${JSON.stringify(msg)},"time":"${isoNow()}"${baseText}${rest}}`);
      return;
    }
    const record: LogFields = { level, msg, time: isoNow(), ...base, ...fields };
    if ("error" in record) record.error = errorFields(record.error);
    sink(JSON.stringify(record));
  };
  return {
    with: (fields) => createLogger({ ...base, ...fields }, sink),
    debug: (msg, fields) => write("debug", msg, fields),
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
  };
}
