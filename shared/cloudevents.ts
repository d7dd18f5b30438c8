import { z } from "zod";
import { isValidTraceparent, isValidTracestate } from "../sdk/trace";
import type { ProblemIssue } from "./errors";
import { assertJsonDepth, exceedsJsonMembers, JsonDepthError, jsonPointer, MAX_JSON_MEMBERS, strictUtf8 } from "./json";

/**
 * CloudEvents 1.0 codec: envelope validation (JSON format) and the HTTP binary-mode mapping.
 * Validation returns issues with JSON Pointer paths into the request, so a producer sees every
 * problem of a batch at once.
 */

export const SPEC_VERSION = "1.0";
export const STRUCTURED_CONTENT_TYPE = "application/cloudevents+json";
export const BATCH_CONTENT_TYPE = "application/cloudevents-batch+json";

/** Attributes only the server sets; a producer that sends them gets a 400. */
export const SERVER_ATTRIBUTES = ["partition", "sequence", "receivedtime", "streamversion"] as const;

/** Per the spec: lower-case ASCII letters and digits (the 20-character limit is only advice). */
export const ATTRIBUTE_NAME = /^[a-z0-9]+$/;

/** Sequence attributes are zero-padded decimal strings so string order equals numeric order. */
export const SEQUENCE_DIGITS = 20;
export function formatSequence(sequence: number): string {
  return String(sequence).padStart(SEQUENCE_DIGITS, "0");
}

const URI_CHARS = /^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/;
const BAD_PERCENT = /%(?![0-9A-Fa-f]{2})/;
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*$/;

/** RFC 3986 URI-reference (absolute URI or relative reference), non-empty. */
export function isUriReference(value: string): boolean {
  if (!URI_CHARS.test(value) || BAD_PERCENT.test(value)) return false;
  const colon = value.indexOf(":");
  const firstDelimiter = value.search(/[/?#]/);
  // A colon before any '/', '?' or '#' means the text before it is a scheme and must look like one.
  if (colon !== -1 && (firstDelimiter === -1 || colon < firstDelimiter)) return SCHEME.test(value.slice(0, colon));
  return true;
}

/** RFC 3986 absolute URI: a URI-reference with a scheme. */
export function isAbsoluteUri(value: string): boolean {
  const colon = value.indexOf(":");
  return colon > 0 && SCHEME.test(value.slice(0, colon)) && isUriReference(value);
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))$/;

export function isRfc3339(value: string): boolean {
  const m = RFC3339.exec(value);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth) return false;
  if (hour > 23 || minute > 59 || second > 60) return false;
  if (m[9] !== undefined && (Number(m[9]) > 23 || Number(m[10]) > 59)) return false;
  return true;
}

const TOKEN = "[A-Za-z0-9!#$&^_.+-]+";
const MEDIA_TYPE = new RegExp(`^${TOKEN}/${TOKEN}(\\s*;.*)?$`);
export function isMediaType(value: string): boolean {
  return MEDIA_TYPE.test(value);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** True for JSON media types (`application/json`, `…+json`, `text/json`) and for "no type". */
export function isJsonMediaType(contentType: string | undefined): boolean {
  if (contentType === undefined) return true;
  const essence = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
  return essence === "application/json" || essence === "text/json" || essence.endsWith("+json");
}

const INT32_MIN = -2_147_483_648;
const INT32_MAX = 2_147_483_647;

const extensionValue = z.union([z.string(), z.boolean(), z.number().int().min(INT32_MIN).max(INT32_MAX)], {
  error: "extension attribute values must be a string, a boolean or a 32-bit integer",
});

export const envelopeSchema = z
  .object({
    specversion: z.literal(SPEC_VERSION, { error: `specversion must be "${SPEC_VERSION}"` }),
    id: z.string({ error: "id is required and must be a string" }).min(1, "id must not be empty"),
    source: z
      .string({ error: "source is required and must be a string" })
      .min(1, "source must not be empty")
      .refine(isUriReference, "source must be a URI-reference (RFC 3986)"),
    type: z.string({ error: "type is required and must be a string" }).min(1, "type must not be empty"),
    datacontenttype: z.string().refine(isMediaType, "datacontenttype must be a media type (RFC 2046)").optional(),
    dataschema: z.string().refine(isAbsoluteUri, "dataschema must be an absolute URI").optional(),
    subject: z.string().min(1, "subject must not be empty when present").optional(),
    time: z.string().refine(isRfc3339, "time must be an RFC 3339 timestamp").optional(),
    data: z.unknown().optional(),
    data_base64: z
      .string()
      .refine((v) => BASE64.test(v), "data_base64 must be base64")
      .optional(),
    partitionkey: z.string().min(1, "partitionkey must not be empty when present").optional(),
    traceparent: z.string().refine(isValidTraceparent, "traceparent must be a W3C traceparent").optional(),
    tracestate: z.string().refine(isValidTracestate, "tracestate must be printable ASCII, at most 512 chars").optional(),
  })
  .catchall(extensionValue);

const ENVELOPE_STRINGS: ReadonlyMap<string, (value: string) => boolean> = new Map([
  ["id", (v: string) => v.length > 0],
  ["source", (v: string) => v.length > 0 && isUriReference(v)],
  ["type", (v: string) => v.length > 0],
  ["datacontenttype", isMediaType],
  ["dataschema", isAbsoluteUri],
  ["subject", (v: string) => v.length > 0],
  ["time", isRfc3339],
  ["data_base64", (v: string) => BASE64.test(v)],
  ["partitionkey", (v: string) => v.length > 0],
  ["traceparent", isValidTraceparent],
  ["tracestate", isValidTracestate],
]);

/**
 * envelopeSchema's rules written out as plain tests, for the hot path: true exactly when the
 * schema accepts `raw` and returns it unchanged, so `raw` itself can be the event. When it is
 * false, validateEnvelope runs the schema, whose issues are the ones a producer sees
 * (test/unit/envelope-check.test.ts holds the two together).
 */
export function isPlainEnvelope(raw: Readonly<Record<string, unknown>>): boolean {
  if (raw.specversion !== SPEC_VERSION || typeof raw.id !== "string" || typeof raw.source !== "string" || typeof raw.type !== "string") {
    return false;
  }
  for (const key of Object.keys(raw)) {
    const value = raw[key];
    if (key === "specversion" || key === "data") continue;
    const check = ENVELOPE_STRINGS.get(key);
    if (check !== undefined) {
      if (value !== undefined && (typeof value !== "string" || !check(value))) return false;
    } else if (typeof value === "number") {
      if (!Number.isInteger(value) || value < INT32_MIN || value > INT32_MAX) return false;
    } else if (typeof value !== "string" && typeof value !== "boolean") {
      return false;
    }
  }
  return true;
}

/**
 * Checks that zod's object schema cannot express, or would skip once a field failed (zod runs
 * refinements only on otherwise valid objects, and a producer should see every problem at once).
 */
function attributeIssues(raw: Record<string, unknown>): { path: string[]; message: string }[] {
  const issues: { path: string[]; message: string }[] = [];
  for (const [name, value] of Object.entries(raw)) {
    if (name !== "data_base64" && !ATTRIBUTE_NAME.test(name)) {
      issues.push({ path: [name], message: `attribute name "${name}" must be lower-case a-z and 0-9 only` });
    } else if (name !== "data" && typeof value === "string" && !value.isWellFormed()) {
      // Attributes become keys (dedupe by source+id, streams and data keys by subject, partitions):
      // a lone surrogate has no UTF-8 form, so storage would keep something other than the string.
      issues.push({ path: [name], message: `"${name}" must be well-formed Unicode: it holds a lone UTF-16 surrogate (\\uD800-\\uDFFF)` });
    }
    if ((SERVER_ATTRIBUTES as readonly string[]).includes(name)) {
      issues.push({ path: [name], message: `"${name}" is set by Eventline and cannot be sent by a producer` });
    }
  }
  if (raw.data !== undefined && raw.data_base64 !== undefined) {
    issues.push({ path: ["data_base64"], message: "data and data_base64 are mutually exclusive" });
  }
  return issues;
}

/** A validated event in JSON format: the context attributes, `data`/`data_base64`, extensions. */
export interface CloudEvent {
  specversion: "1.0";
  id: string;
  source: string;
  type: string;
  datacontenttype?: string;
  dataschema?: string;
  subject?: string;
  time?: string;
  data?: unknown;
  data_base64?: string;
  partitionkey?: string;
  traceparent?: string;
  tracestate?: string;
  [extension: string]: unknown;
}

export type ValidationResult = { ok: true; event: CloudEvent } | { ok: false; issues: ProblemIssue[] };

/**
 * Validates one event in JSON format. `base` is the JSON Pointer of the event inside the
 * request (`""` for structured mode, `/3` for the fourth event of a batch).
 */
export function validateEnvelope(raw: unknown, base = ""): ValidationResult {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    return { ok: false, issues: [{ path: base || "/", message: "a CloudEvent must be a JSON object" }] };
  }
  try {
    assertJsonDepth(raw);
  } catch (err) {
    if (err instanceof JsonDepthError) return { ok: false, issues: [{ path: base + err.path, message: err.message }] };
    throw err;
  }
  if (exceedsJsonMembers(raw)) {
    return { ok: false, issues: [{ path: base || "/", message: `more than ${MAX_JSON_MEMBERS} JSON members and elements in one event` }] };
  }
  // The JSON format treats a null attribute as absent.
  // (A plain object without nulls, as JSON.parse makes them, is used as it is rather than copied.)
  const withoutNulls: Record<string, unknown> =
    Object.getPrototypeOf(raw) === Object.prototype && !Object.values(raw).includes(null)
      ? (raw as Record<string, unknown>)
      : Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== null));
  const own = attributeIssues(withoutNulls);
  // The common case, a valid event, is checked without zod (isPlainEnvelope) and used as it is.
  if (own.length === 0 && isPlainEnvelope(withoutNulls)) return { ok: true, event: withoutNulls as CloudEvent };
  const parsed = envelopeSchema.safeParse(withoutNulls);
  if (parsed.success && own.length === 0) return { ok: true, event: parsed.data };
  // A bad attribute name also fails the catch-all value check; report it once.
  const named = new Set(own.map((i) => i.path[0]));
  const zodIssues = parsed.success ? [] : parsed.error.issues.filter((i) => !named.has(String(i.path[0])));
  return {
    ok: false,
    issues: [...own, ...zodIssues].map((issue) => ({ path: jsonPointer(base, issue.path), message: issue.message })),
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP binary content mode

export const BINARY_HEADER_PREFIX = "ce-";

export function hasBinaryHeaders(headers: Headers): boolean {
  return headers.has("ce-specversion");
}

/**
 * Decodes a binary-mode request (`ce-*` headers, percent-decoded; `Content-Type` is
 * `datacontenttype`; the body is `data`) into a JSON-format event, then validates it.
 * Issue paths name the header (`/headers/ce-id`) or the body (`/body`).
 */
export function decodeBinary(headers: Headers, body: Uint8Array): ValidationResult {
  const issues: ProblemIssue[] = [];
  const attrs: Record<string, unknown> = {};
  headers.forEach((value, key) => {
    const name = key.toLowerCase();
    if (!name.startsWith(BINARY_HEADER_PREFIX)) return;
    const attr = name.slice(BINARY_HEADER_PREFIX.length);
    if (attr === "datacontenttype") {
      issues.push({ path: `/headers/${name}`, message: "binary mode carries datacontenttype in Content-Type, not ce-datacontenttype" });
      return;
    }
    if (attr === "data" || attr === "data_base64") {
      issues.push({ path: `/headers/${name}`, message: "binary mode carries data in the body" });
      return;
    }
    try {
      attrs[attr] = decodeURIComponent(value);
    } catch {
      issues.push({ path: `/headers/${name}`, message: "header value has invalid percent-encoding" });
    }
  });
  const contentType = headers.get("content-type") ?? undefined;
  if (contentType !== undefined) attrs.datacontenttype = contentType;
  if (body.byteLength > 0) {
    if (isJsonMediaType(contentType) && contentType !== undefined) {
      try {
        attrs.data = JSON.parse(strictUtf8(body));
      } catch {
        issues.push({ path: "/body", message: `body is not valid JSON but Content-Type is ${contentType}` });
      }
    } else if (contentType?.toLowerCase().startsWith("text/")) {
      try {
        attrs.data = strictUtf8(body);
      } catch {
        attrs.data_base64 = bytesToBase64(body);
      }
    } else {
      attrs.data_base64 = bytesToBase64(body);
    }
  }
  const result = validateEnvelope(attrs, "");
  if (!result.ok) {
    issues.push(
      ...result.issues.map((i) => {
        const attr = i.path.split("/")[1] ?? "";
        if (attr === "data" || attr === "data_base64") return { ...i, path: `/body${i.path.slice(attr.length + 1)}` };
        if (attr === "datacontenttype") return { ...i, path: "/headers/content-type" };
        return { ...i, path: `/headers/ce-${attr}${i.path.slice(attr.length + 1)}` };
      }),
    );
  }
  if (issues.length > 0 || !result.ok) return { ok: false, issues };
  return result;
}

/** Characters the HTTP binding says to percent-encode in header values. */
function percentEncodeHeader(value: string): string {
  let out = "";
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0;
    if (code < 0x21 || code > 0x7e || ch === '"' || ch === "%")
      out += encodeURIComponent(ch).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
    else out += ch;
  }
  return out;
}

/** Encodes a JSON-format event for binary mode (used by tests, webhooks and SDK clients). */
export function encodeBinary(event: Record<string, unknown>): { headers: Record<string, string>; body: Uint8Array } {
  const headers: Record<string, string> = {};
  let body: Uint8Array = new Uint8Array();
  for (const [name, value] of Object.entries(event)) {
    if (value === undefined || value === null) continue;
    if (name === "data") {
      const ct = typeof event.datacontenttype === "string" ? event.datacontenttype : undefined;
      const text = isJsonMediaType(ct) && !(typeof value === "string" && ct?.startsWith("text/")) ? JSON.stringify(value) : String(value);
      body = new TextEncoder().encode(text);
    } else if (name === "data_base64") {
      body = base64ToBytes(String(value));
    } else if (name === "datacontenttype") {
      headers["content-type"] = String(value);
    } else {
      headers[`${BINARY_HEADER_PREFIX}${name}`] = percentEncodeHeader(String(value));
    }
  }
  if (event.data !== undefined && headers["content-type"] === undefined) headers["content-type"] = "application/json";
  return { headers, body };
}

export function bytesToBase64(bytes: Uint8Array): string {
  let binary = "";
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) binary += String.fromCharCode(...bytes.subarray(i, i + chunk));
  return btoa(binary);
}

export function base64ToBytes(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
