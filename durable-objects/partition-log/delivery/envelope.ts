/**
 * Attributes the log has as columns when it commits an event. A filter that reads only these is
 * evaluated without parsing the stored event (most filters look at type, source or subject).
 */
export const ENVELOPE_KEYS: ReadonlySet<string> = new Set(["id", "source", "type", "subject", "streamversion"]);
const envelopeOnly = new WeakMap<ReadonlySet<string>, boolean>();
/** True when a filter that reads `keys` needs nothing but envelope columns (memoized per key set). */
export function isEnvelopeOnly(keys: ReadonlySet<string>): boolean {
  let known = envelopeOnly.get(keys);
  if (known === undefined) {
    known = [...keys].every((k) => ENVELOPE_KEYS.has(k));
    envelopeOnly.set(keys, known);
  }
  return known;
}

/** An event's ENVELOPE_KEYS attributes from the log's columns (`subject` and stream version left out when absent). */
export function envelopeView(
  id: string,
  source: string,
  type: string,
  subject: string | null | undefined,
  streamVersion: number | null,
): Record<string, unknown> {
  return {
    id,
    source,
    type,
    ...(subject !== null && subject !== undefined && { subject }),
    ...(streamVersion !== null && { streamversion: streamVersion }),
  };
}
