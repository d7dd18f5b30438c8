/**
 * The `dataschema` URIs Eventline serves and stamps on stored events (docs/schemas.md):
 * `<origin>/v1/topics/<topic>/types/<type>/schemas/<version>`, topic and type percent-encoded.
 * Here, in the SDK (zod-free, dependency-free), so consumers read the version an event was
 * validated against with the same code the platform writes it with.
 */

/** Versions are positive integers below 10^9. */
const SCHEMA_PATH = /^\/v1\/topics\/([^/]+)\/types\/([^/]+)\/schemas\/([1-9][0-9]{0,8})$/;

export interface SchemaRef {
  topic: string;
  type: string;
  version: number;
}

/** The path (no origin) of one schema version. */
export function schemaPath(topic: string, type: string, version: number): string {
  return `/v1/topics/${encodeURIComponent(topic)}/types/${encodeURIComponent(type)}/schemas/${version}`;
}

/** The absolute `dataschema` URI of one schema version as served from `origin` (e.g. `https://eventline.example`). */
export function schemaUri(origin: string, topic: string, type: string, version: number): string {
  return `${origin.replace(/\/+$/, "")}${schemaPath(topic, type, version)}`;
}

function decode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/**
 * The schema a `dataschema` URI names, or undefined when it is not one of Eventline's schema
 * URIs (any origin: the same deployment may be reached under several hostnames). No query or
 * fragment is allowed.
 */
export function parseSchemaUri(uri: string): SchemaRef | undefined {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return undefined;
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.search !== "" || url.hash !== "") return undefined;
  const match = SCHEMA_PATH.exec(url.pathname);
  if (match === null) return undefined;
  const topic = decode(match[1] as string);
  const type = decode(match[2] as string);
  if (topic === undefined || type === undefined) return undefined;
  return { topic, type, version: Number(match[3]) };
}

/** The version a stored event's `dataschema` names, when it is an Eventline schema URI. */
export function schemaVersionOf(event: { dataschema?: unknown }): number | undefined {
  return typeof event.dataschema === "string" ? parseSchemaUri(event.dataschema)?.version : undefined;
}
