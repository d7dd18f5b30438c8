// Credentials of the benchmark stack (loopback only, never used elsewhere): the platform runs
// with authentication on, as deployed, so its cost is part of every figure.
import { randomBytes } from "node:crypto";

// Made once per bench run and passed down through the environment, so server.mjs (a child
// process) and the clients agree.
process.env.EVENTLINE_BENCH_KEY ??= `evl_benchadmin00_${randomBytes(32).toString("base64url")}`;
process.env.EVENTLINE_BENCH_KEKS ??= `v1:${randomBytes(32).toString("base64")}`;
export const BENCH_ADMIN_KEY = process.env.EVENTLINE_BENCH_KEY;
export const BENCH_KEKS = process.env.EVENTLINE_BENCH_KEKS;

export const AUTH_HEADERS = { authorization: `Bearer ${BENCH_ADMIN_KEY}` };

/** `fetch` with the bench admin key. @param {string | URL} url @param {RequestInit} [init] */
export function authFetch(url, init = {}) {
  return fetch(url, { ...init, headers: { ...AUTH_HEADERS, .../** @type {Record<string, string>} */ (init.headers ?? {}) } });
}
