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

export function createLogger(base: LogFields = {}, sink: (line: string) => void = (l) => console.log(l)): Logger {
  const write = (level: LogLevel, msg: string, fields?: LogFields) => {
    const record: LogFields = { level, msg, time: new Date().toISOString(), ...base, ...fields };
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
