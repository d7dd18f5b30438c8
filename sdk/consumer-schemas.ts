import { type SchemaVersionPins, UnsupportedSchemaVersionError } from "./consumer-types";
import { parseSchemaUri } from "./schema-uri";

/**
 * Schema version pinning (sdk/README.md "Pinning schema versions", ADR 0051): which version of its
 * type's data schema a delivered event names, and whether the consumer reads it.
 */

/** Checks the pins once, when the consumer is defined: a mistake there is a bug, not a dead letter. */
export function checkPins(pins: SchemaVersionPins | undefined): void {
  if (pins === undefined) return;
  for (const [type, versions] of Object.entries(pins)) {
    if (versions.length === 0 || !versions.every((v) => Number.isInteger(v) && v >= 1)) {
      throw new TypeError(`schemaVersions["${type}"] must list positive integer versions, got ${JSON.stringify(versions)}`);
    }
  }
}

/**
 * The version the event was validated against: that of its `dataschema` when it is an Eventline
 * schema URI of the delivery's topic and the event's type (any origin), else undefined.
 */
export function schemaVersionFor(event: { type: string; dataschema?: unknown }, topic: string): number | undefined {
  if (typeof event.dataschema !== "string") return undefined;
  const ref = parseSchemaUri(event.dataschema);
  return ref !== undefined && ref.topic === topic && ref.type === event.type ? ref.version : undefined;
}

/** Throws UnsupportedSchemaVersionError for a pinned type's event that names a version not pinned. */
export function requireReadable(pins: SchemaVersionPins | undefined, type: string, version: number | undefined): void {
  if (pins === undefined || version === undefined || !Object.hasOwn(pins, type)) return;
  const supported = pins[type] as readonly number[];
  if (!supported.includes(version)) throw new UnsupportedSchemaVersionError(type, version, supported);
}
