/** Number, time and text formatting; every formatter accepts anything and shows "–" for a non-number. */

const nf = new Intl.NumberFormat("en-US");

export const isNum = (n: unknown): n is number => typeof n === "number" && Number.isFinite(n);
export const fmtInt = (n: unknown): string => (isNum(n) ? nf.format(Math.round(n)) : "–");
export const fmtNum = (n: unknown): string =>
  !isNum(n) ? "–" : Math.abs(n) >= 10 ? nf.format(Math.round(n)) : String(Math.round(n * 10) / 10);
export const fmtRate = (r: unknown): string => (isNum(r) ? `${fmtNum(r)}/s` : "–");
export const fmtPct = (x: unknown): string => (isNum(x) ? `${fmtNum(x * 100)}%` : "–");
export const fmtMs = (ms: unknown): string => (!isNum(ms) ? "–" : ms >= 1000 ? `${fmtNum(ms / 1000)} s` : `${fmtNum(ms)} ms`);
export const fmtClock = (d: Date): string => d.toLocaleTimeString("en-GB", { hour12: false });
export const plural = (n: unknown, one: string, many: string): string => `${fmtInt(n)} ${n === 1 ? one : many}`;
/** `v` if it is a number, else `fallback` if that is one, else 0. */
export const num = (v: unknown, fallback?: unknown): number => (isNum(v) ? v : isNum(fallback) ? fallback : 0);
export const sum = (xs: readonly unknown[]): number => xs.reduce<number>((a, b) => a + (isNum(b) ? b : 0), 0);
export const truncate = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** A value for a table cell: objects as (truncated) JSON. */
export function compact(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return truncate(JSON.stringify(v), 120);
  return String(v);
}

export function hostOf(url: string | undefined): string {
  try {
    return new URL(String(url)).host;
  } catch {
    return url || "";
  }
}

/** An error's message, or the thrown value as text. */
export function messageOf(err: unknown): string {
  const message = typeof err === "object" && err !== null && "message" in err ? err.message : undefined;
  return message ? String(message) : String(err);
}
