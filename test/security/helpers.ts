import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, type MockInstance, vi } from "vitest";
import shipped from "../../eventline.config";
import { defineConfig, type EventlineConfig, type EventlineConfigInput } from "../../shared/config";
import { type AppOptions, createApp } from "../../workers/platform/app";
import { ADMIN_KEY, allHeads, BASE, request } from "../helpers";

/*
 * Shared helpers of the security tests (test/security/*.test.ts): apps built with a test config,
 * audit log look-ups, state snapshots and log capture.
 */

export type SecurityInput = NonNullable<EventlineConfigInput["security"]>;

/** The shipped config (same topics, the `audit` topic included) with `security` replaced. */
export function configWithSecurity(security: SecurityInput): EventlineConfig {
  return defineConfig({ ...(shipped as EventlineConfigInput), security });
}

/** `cf` properties of a request as the edge would set them (e.g. `tlsClientAuth`). */
export type TestRequestInit = RequestInit & { cf?: Record<string, unknown> };

export interface TestApp {
  /** Sends `path` (relative to BASE) to the app, with the test env (optionally overridden). */
  call(path: string, init?: TestRequestInit, envOverrides?: Partial<Env>): Promise<Response>;
}

/** An app of its own config, called directly (`app.fetch(request, env, ctx)`) in this isolate. */
export function testApp(config: EventlineConfig, options: AppOptions = {}): TestApp {
  const app = createApp(config, options);
  return {
    async call(path, init = {}, envOverrides = {}) {
      const ctx = createExecutionContext();
      // A path is sent to the test host; a full URL (e.g. a loopback one) as it is.
      const req = new Request(/^https?:/.test(path) ? path : `${BASE}${path}`, init as RequestInit<CfProperties>);
      const res = await app.fetch(req, { ...env, ...envOverrides } as Env, ctx);
      await waitOnExecutionContext(ctx);
      return res;
    },
  };
}

/** A fake outbound fetch that records every URL it is asked for and answers from `routes` (else 404). */
export interface CountingFetch {
  fetch: typeof fetch;
  /** Every URL requested, in order. */
  urls: string[];
  /** How many requests went to `url`. */
  count(url: string): number;
}

export function countingFetch(routes: Record<string, () => Response>): CountingFetch {
  const urls: string[] = [];
  const fake = (async (input: RequestInfo | URL) => {
    const url = input instanceof Request ? input.url : String(input);
    urls.push(url);
    // Answer asynchronously, so concurrent requests overlap with the fetch.
    await new Promise((resolve) => setTimeout(resolve, 5));
    const route = routes[url];
    return route === undefined ? new Response("not found", { status: 404 }) : route();
  }) as typeof fetch;
  return { fetch: fake, urls, count: (url) => urls.filter((u) => u === url).length };
}

/** One record of GET /v1/audit. */
export interface AuditEntry {
  sequence: number;
  time: string;
  action: string;
  outcome: "success" | "failure" | "denied";
  resource: string;
  actor: { id: string; kind: string; tenant?: string; keyId?: string };
  requestId: string;
  status?: number;
  reason?: string;
  method?: string;
  path?: string;
  ip?: string;
  details?: Record<string, unknown>;
}

/** Every audit record matching `filter` (GET /v1/audit as the admin, following `next` to the end). */
export async function auditSearch(filter: Record<string, string> = {}): Promise<AuditEntry[]> {
  const records: AuditEntry[] = [];
  let href: string | null = `/v1/audit?${new URLSearchParams({ ...filter, limit: "1000" })}`;
  for (let page = 0; href !== null && page < 100; page++) {
    const res = await request(href);
    const text = await res.text();
    expect(res.status, text).toBe(200);
    const body = JSON.parse(text) as { records: AuditEntry[]; next: { href: string } | null };
    records.push(...body.records);
    href = body.next?.href ?? null;
  }
  return records;
}

/** The audit records of one request (optionally only those of `action`). */
export async function auditOf(requestId: string, action?: string): Promise<AuditEntry[]> {
  return (await auditSearch(action === undefined ? {} : { action })).filter((r) => r.requestId === requestId);
}

/**
 * Asserts that the request wrote exactly one `expected.action` record matching `expected`, and
 * that none of `secrets` appears anywhere in it; returns it.
 */
export async function expectAudit(
  requestId: string,
  expected: Omit<Partial<AuditEntry>, "actor"> & { action: string; actor?: Partial<AuditEntry["actor"]> },
  secrets: readonly string[] = [],
): Promise<AuditEntry> {
  const records = await auditOf(requestId, expected.action);
  expect(records, `one ${expected.action} audit record for request ${requestId}`).toHaveLength(1);
  const record = records[0] as AuditEntry;
  expect(record).toMatchObject(expected);
  expectNoSecrets(JSON.stringify(record), secrets);
  return record;
}

/** expectAudit with a refusal's action, outcome and status fixed: one such record matching `expected`. */
function refusalAudit(action: string, outcome: AuditEntry["outcome"], status: number) {
  return (requestId: string, expected: Omit<Parameters<typeof expectAudit>[1], "action">, secrets: readonly string[] = []) =>
    expectAudit(requestId, { action, outcome, status, ...expected }, secrets);
}

/** A 403 refusal's audit record: access.denied, outcome denied, status 403, matching `expected`. */
export const expectDeniedAudit = refusalAudit("access.denied", "denied", 403);
/** A 401 refusal's audit record: auth.failed, outcome failure, status 401, matching `expected`. */
export const expectAuthFailedAudit = refusalAudit("auth.failed", "failure", 401);

/** Asserts that the request wrote no audit record at all. */
export async function expectNoAudit(requestId: string): Promise<void> {
  expect(await auditOf(requestId)).toEqual([]);
}

/** Asserts that none of `secrets` (nor their long segments, e.g. a JWT's signature) occurs in `text`. */
export function expectNoSecrets(text: string, secrets: readonly string[]): void {
  for (const secret of [...secrets, ADMIN_KEY]) {
    expect(text.includes(secret), "a credential leaked").toBe(false);
    for (const part of secret.split(/[._]/)) if (part.length > 24) expect(text.includes(part), "part of a credential leaked").toBe(false);
  }
}

/** Head sequences of every topic but the audit log (which failed requests append to by design). */
export async function dataHeads(): Promise<Record<string, number[]>> {
  const { audit: _audit, ...rest } = await allHeads();
  return rest;
}

/** Captures console.log (still printed) for the rest of the test; `restore` ends it. */
export interface LogCapture {
  /** Every captured line, as written. */
  lines(): string[];
  /** Every captured line, parsed (throws on a line that is not JSON). */
  records(): Record<string, unknown>[];
  restore(): void;
}

export function captureLogs(): LogCapture {
  const spy: MockInstance<typeof console.log> = vi.spyOn(console, "log");
  const lines = () => spy.mock.calls.map((args) => args.map(String).join(" "));
  return {
    lines,
    records: () => lines().map((l) => JSON.parse(l) as Record<string, unknown>),
    restore: () => spy.mockRestore(),
  };
}

/** Waits `ms` of wall-clock time. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Authorization and field-encryption helpers (authorization-*.test.ts, encryption-*.test.ts)

import { runInDurableObject } from "cloudflare:test";
import { testBindings } from "../bindings";
import { expectProblem, type Problem, requestAs } from "../helpers";

/** An API key created through POST /v1/keys (as the admin): its public id, its secret and its principal id. */
export interface CreatedTestKey {
  id: string;
  key: string;
  /** The principal id audit records name it by: `key:<id>`. */
  principal: string;
}

export async function createTestKey(name: string, grants: string[], tenant?: string): Promise<CreatedTestKey> {
  const res = await request("/v1/keys", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, grants, ...(tenant === undefined ? {} : { tenant }) }),
  });
  const text = await res.text();
  expect(res.status, text).toBe(201);
  const body = JSON.parse(text) as { id: string; key: string };
  return { id: body.id, key: body.key, principal: `key:${body.id}` };
}

/** A JSON request init (method POST unless given). */
export function jsonInit(body: unknown, init: RequestInit = {}): RequestInit {
  return {
    method: "POST",
    ...init,
    headers: { "content-type": "application/json", ...Object.fromEntries(new Headers(init.headers)) },
    body: typeof body === "string" ? body : JSON.stringify(body),
  };
}

/**
 * Asserts a 403 `forbidden` problem+json and its one `access.denied` audit record (actor
 * `expected.actor`, outcome denied, status 403, a reason containing every `expected.reason`
 * fragment, e.g. the action and the topic); returns both.
 */
export async function expectAccessDenied(
  res: Response,
  expected: { actor: string; reason: readonly string[]; resource?: string; attempted?: string },
): Promise<{ problem: Problem; record: AuditEntry }> {
  const problem = await expectProblem(res, 403);
  expect(problem.code).toBe("forbidden");
  const records = (await auditSearch({ action: "access.denied", actor: expected.actor })).filter((r) => r.requestId === problem.requestId);
  expect(records, `one access.denied audit record for request ${problem.requestId}`).toHaveLength(1);
  const record = records[0] as AuditEntry;
  expect(record).toMatchObject({ action: "access.denied", outcome: "denied", status: 403, actor: { id: expected.actor } });
  for (const fragment of expected.reason) expect(record.reason ?? "").toContain(fragment);
  if (expected.resource !== undefined) expect(record.resource).toBe(expected.resource);
  if (expected.attempted !== undefined) expect(record.details).toMatchObject({ attempted: expected.attempted });
  return { problem, record };
}

/** `requestAs(key.key, …)` for a created key. */
export function asKey(key: CreatedTestKey, path: string, init: RequestInit = {}): Promise<Response> {
  return requestAs(key.key, path, init);
}

/** A request body streamed in `chunks` (so it can differ from a declared Content-Length). */
export function chunkedBody(chunks: readonly Uint8Array[]): ReadableStream<Uint8Array> {
  let next = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = chunks[next++];
      if (chunk === undefined) controller.close();
      else controller.enqueue(chunk);
    },
  });
}

/** `text` as UTF-8, split into a first chunk of `first` bytes and the rest. */
export function splitUtf8(text: string, first: number): Uint8Array[] {
  const bytes = new TextEncoder().encode(text);
  return [bytes.slice(0, first), bytes.slice(first)];
}

/** A JSON value nested `depth` levels deep: `{"a":{"a":…leaf…}}`. */
export function nestedJson(depth: number, leaf: unknown = 1): unknown {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

const lossyUtf8 = new TextDecoder();

function cellText(value: unknown): string {
  if (value instanceof ArrayBuffer) return lossyUtf8.decode(value);
  if (ArrayBuffer.isView(value)) return lossyUtf8.decode(value);
  return typeof value === "string" ? value : JSON.stringify(value);
}

/**
 * Everything a Durable Object has stored, as text: every row of every SQLite table (BLOBs
 * decoded as UTF-8) and every key-value entry. Internal `_cf_` tables SQL may not read are
 * covered by the key-value listing.
 */
export async function dumpDurableObjectStorage(stub: DurableObjectStub): Promise<{ tables: string[]; text: string }> {
  return runInDurableObject(stub, async (_instance: unknown, state: DurableObjectState) => {
    const sql = state.storage.sql;
    const tables = sql
      .exec<{ name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table'`)
      .toArray()
      .map((r) => r.name);
    const parts: string[] = [];
    const dumped: string[] = [];
    for (const table of tables) {
      let rows: Record<string, SqlStorageValue>[];
      try {
        rows = sql.exec(`SELECT * FROM "${table.replaceAll('"', '""')}"`).toArray();
      } catch {
        continue; // an internal table SQL may not read
      }
      dumped.push(table);
      for (const row of rows) parts.push(`${table}: ${Object.values(row).map(cellText).join(" | ")}`);
    }
    for (const [key, value] of await state.storage.list()) parts.push(`kv ${key}: ${cellText(value)}`);
    return { tables: dumped, text: parts.join("\n") };
  });
}

/** The decompressed text of every R2 archive object under `prefix` (`.gz` objects gunzipped). */
export async function archiveObjectsText(prefix: string): Promise<{ key: string; text: string }[]> {
  const out: { key: string; text: string }[] = [];
  let cursor: string | undefined;
  for (;;) {
    const listed = await env.ARCHIVE.list({ prefix, ...(cursor === undefined ? {} : { cursor }) });
    for (const object of listed.objects) {
      const body = await env.ARCHIVE.get(object.key);
      if (body === null) continue;
      const bytes = await body.arrayBuffer();
      const text = object.key.endsWith(".gz")
        ? await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).text()
        : lossyUtf8.decode(bytes);
      out.push({ key: object.key, text });
    }
    if (!listed.truncated) return out;
    cursor = listed.cursor;
  }
}

/** One request the loopback webhook receiver (test/global-setup.ts) got. */
export interface SinkDelivery {
  headers: Record<string, string>;
  body: string;
}

/** Everything the loopback receiver got at /hooks/<name>. */
export async function sinkDeliveries(name: string): Promise<SinkDelivery[]> {
  return (await (await fetch(`${testBindings.WEBHOOK_SINK}/control/${name}`)).json()) as SinkDelivery[];
}

/** Captures every console method (still printed) until `restore`; `text()` joins all captured lines. */
export function captureConsole(): { text(): string; count(): number; restore(): void } {
  const spies = (["log", "info", "warn", "error", "debug"] as const).map((m) => vi.spyOn(console, m));
  // Restoring a spy clears its calls: they are kept here first.
  let kept: string[] | undefined;
  const calls = () =>
    kept ?? spies.flatMap((s) => s.mock.calls.map((args) => args.map((a) => (typeof a === "string" ? a : cellText(a))).join(" ")));
  return {
    text: () => calls().join("\n"),
    count: () => calls().length,
    restore: () => {
      kept ??= calls();
      for (const s of spies) s.mockRestore();
    },
  };
}
