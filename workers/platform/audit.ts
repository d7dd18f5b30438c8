import type { Logger } from "../../sdk/logger";
import type { CloudEvent } from "../../shared/cloudevents";
import { type EventlineConfig, findTopic } from "../../shared/config";
import type { Principal } from "./auth/identity";
import { appendToPartitions } from "./ingest/append";
import { configSource } from "./ingest/data-schema";
import { prepareEvents } from "./ingest/parse";

/**
 * The audit log is an ordinary topic (`audit` in eventline.config.ts, internal: nobody can
 * produce to it through the API), so it is ordered, durable and archived to R2 like any other.
 * Each record is a CloudEvent `eventline.audit.<action>` whose data says who did what to which
 * resource, when, with which outcome and request id. Credentials never appear in it: an API key
 * is named by its public id, a JWT by issuer and subject.
 */

export const AUDIT_TOPIC = "audit";
export const AUDIT_SOURCE = "/eventline/platform";

export type AuditOutcome = "success" | "failure" | "denied";

export interface AuditRecord {
  action: string;
  outcome: AuditOutcome;
  /** The thing acted on, e.g. `topic:orders`, `key:abc123`, `subject:customer-42`, or the path. */
  resource: string;
  actor: { id: string; kind: string; tenant?: string } | { id: "unauthenticated"; kind: "none"; keyId?: string };
  requestId: string;
  status?: number;
  reason?: string;
  method?: string;
  path?: string;
  ip?: string;
  details?: Record<string, unknown>;
}

export function actorOf(principal: Principal): AuditRecord["actor"] {
  return { id: principal.id, kind: principal.kind, ...(principal.tenant === undefined ? {} : { tenant: principal.tenant }) };
}

/**
 * Appends one audit record. It is awaited, so the record is durable before the response is sent;
 * a failure to write it is logged (error level) but does not change the response of the request
 * it describes.
 */
/** Longest attacker-influenced string kept in a record (paths, reasons, ids), so a record always fits an event. */
const MAX_FIELD = 512;

function cap(text: string): string {
  // Well-formed: the cut may split a surrogate pair, and the resource becomes the record's subject (a key).
  return text.length <= MAX_FIELD ? text : `${text.slice(0, MAX_FIELD).toWellFormed()}…(truncated, ${text.length} chars)`;
}

/** The record with every free-text member capped: a crafted path cannot make it too large to store. */
function capped(record: AuditRecord): AuditRecord {
  return {
    ...record,
    resource: cap(record.resource),
    actor: { ...record.actor, id: cap(record.actor.id) } as AuditRecord["actor"],
    ...(record.reason === undefined ? {} : { reason: cap(record.reason) }),
    ...(record.path === undefined ? {} : { path: cap(record.path) }),
    ...(record.ip === undefined ? {} : { ip: cap(record.ip) }),
  };
}

export async function writeAudit(env: Env, config: EventlineConfig, log: Logger, full: AuditRecord, traceparent: string): Promise<void> {
  const topic = findTopic(config, AUDIT_TOPIC);
  if (topic === undefined) return;
  const record = capped(full);
  const event: CloudEvent = {
    specversion: "1.0",
    id: crypto.randomUUID(),
    source: AUDIT_SOURCE,
    type: `eventline.audit.${record.action}`,
    time: new Date().toISOString(),
    subject: record.resource,
    datacontenttype: "application/json",
    data: JSON.parse(JSON.stringify(record)) as Record<string, unknown>,
  } as CloudEvent;
  try {
    const prepared = await prepareEvents([event], topic, config, {
      traceparent,
      batch: false,
      // Written by the platform with no request of its own: checked against the config, nothing stamped.
      schemas: configSource(topic, undefined),
    });
    await appendToPartitions(env, topic, prepared, log, config.partitionLog.retryAfterSeconds);
  } catch (err) {
    log.error("audit record not written", { error: err, action: record.action, outcome: record.outcome });
  }
}
