import { SEQUENCE_DIGITS, SPEC_VERSION } from "../../../shared/cloudevents";
import type { JsonSchema } from "./catalog";

/**
 * The JSON Schema (draft 2020-12) of one message: a whole CloudEvent in structured mode, as
 * producers POST it with `application/cloudevents+json` and as readers, live tails and
 * subscriptions get it back (with the server-owned attributes). Kept beside the envelope's rules
 * in shared/cloudevents.ts and the stored event's shape in shared/api-schemas.ts (StoredCloudEvent).
 */

export const DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema";

/** AsyncAPI 3.0 names no media type for draft 2020-12; custom schemaFormat values are allowed (ADR 0050). */
export const SCHEMA_FORMAT = "application/schema+json;version=draft-2020-12";

const TRACEPARENT = "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$";
/** Extension attribute names (shared/cloudevents.ts ATTRIBUTE_NAME), plus the JSON format's data_base64. */
const MEMBER_NAME = "^([a-z0-9]+|data_base64)$";
const INT32 = { minimum: -2_147_483_648, maximum: 2_147_483_647 };

const nonEmpty = (description: string) => ({ type: "string", minLength: 1, description });

function attributes(type: string | undefined, dataschema: string | undefined): Record<string, Record<string, unknown>> {
  return {
    specversion: { const: SPEC_VERSION, description: "CloudEvents version" },
    id: nonEmpty("Unique per source: (source, id) identifies the event; a retry with the same pair is a duplicate, not a new event"),
    source: { ...nonEmpty("Context in which the event happened"), format: "uri-reference" },
    type: type === undefined ? nonEmpty("Event type") : { const: type, description: "Event type" },
    subject: nonEmpty("The stream (e.g. an order id) the event is about; partitions the event when partitionkey is absent"),
    time: { type: "string", format: "date-time", description: "When the event happened, RFC 3339" },
    datacontenttype: { type: "string", description: "Media type of data (default application/json)" },
    dataschema: {
      type: "string",
      format: "uri",
      description:
        dataschema === undefined
          ? "URI of the schema data conforms to"
          : `The data schema version data is validated against; the latest when absent (${dataschema}). Stored events carry the version they were validated against`,
      ...(dataschema === undefined ? {} : { examples: [dataschema] }),
    },
    partitionkey: nonEmpty("Partitions the event (before subject and id): events with the same key keep their order"),
    traceparent: {
      type: "string",
      pattern: TRACEPARENT,
      description: "W3C traceparent; stored events always carry one (the producer's, the request's, or one Eventline generated)",
    },
    tracestate: { type: "string", maxLength: 512, description: "W3C tracestate" },
    partition: { type: "integer", minimum: 0, readOnly: true, description: "Partition the event is stored in (server-owned)" },
    sequence: {
      type: "string",
      pattern: `^[0-9]{${SEQUENCE_DIGITS}}$`,
      readOnly: true,
      description: `Position in the partition, from 1, zero-padded to ${SEQUENCE_DIGITS} digits (server-owned)`,
    },
    receivedtime: { type: "string", format: "date-time", readOnly: true, description: "When Eventline committed the event (server-owned)" },
    streamversion: {
      type: "integer",
      minimum: 1,
      readOnly: true,
      description: "Version in the subject's stream, for an event appended to a stream (server-owned)",
    },
  };
}

/**
 * `schema` made fit to sit at `pointer` inside the AsyncAPI document: `$schema` and `$id` dropped
 * (only a resource root may carry them, and the parser resolves `$ref`s against the document, not
 * against an `$id`), and every local `$ref` / `$dynamicRef` ("#/…") rewritten to the same place
 * below `pointer`, so "#/$defs/line" still names the schema's own definition.
 */
export function embedSchema(schema: JsonSchema, pointer: string): JsonSchema {
  // A boolean schema (true: anything, false: nothing) has no members to adjust.
  if (typeof schema === "boolean") return schema;
  const rewrite = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(rewrite);
    if (value === null || typeof value !== "object") return value;
    const out: Record<string, unknown> = {};
    for (const [key, member] of Object.entries(value)) {
      const local = (key === "$ref" || key === "$dynamicRef") && typeof member === "string" && (member === "#" || member.startsWith("#/"));
      out[key] = local ? `${pointer}${member.slice(1)}` : rewrite(member);
    }
    return out;
  };
  const { $schema: _schema, $id: _id, ...rest } = schema;
  return rewrite(rest) as Record<string, unknown>;
}

export interface EnvelopeOptions {
  /** The event type, or undefined for the generic message (any type). */
  type?: string;
  /** The type's latest data schema and its URI; undefined: data is any JSON (or data_base64). */
  data?: { schema: JsonSchema; dataschema: string };
  /** JSON Pointer (as "#/…") of this payload schema in the document, for rewriting the data schema's local refs. */
  pointer: string;
}

/** The payload schema of a message: the whole CloudEvent, `data` typed by the latest data schema when there is one. */
export function envelopeSchema({ type, data, pointer }: EnvelopeOptions): Record<string, unknown> {
  const properties = attributes(type, data?.dataschema);
  return {
    $schema: DRAFT_2020_12,
    title: type === undefined ? "CloudEvent" : `CloudEvent ${type}`,
    type: "object",
    required: ["specversion", "id", "source", "type", ...(data === undefined ? [] : ["data"])],
    properties: {
      ...properties,
      data:
        data === undefined
          ? { description: "The event's payload: any JSON value (a string for non-JSON datacontenttype)" }
          : embedSchema(data.schema, `${pointer}/properties/data`),
      ...(data === undefined ? { data_base64: { type: "string", contentEncoding: "base64", description: "Binary data, base64" } } : {}),
    },
    propertyNames: { pattern: MEMBER_NAME },
    // Extension attributes: a string, a boolean or a 32-bit integer (CloudEvents' JSON format).
    additionalProperties: { anyOf: [{ type: "string" }, { type: "boolean" }, { type: "integer", ...INT32 }] },
    ...(data === undefined ? { not: { required: ["data", "data_base64"] } } : {}),
  };
}
