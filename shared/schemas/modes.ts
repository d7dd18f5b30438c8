/**
 * Schema compatibility modes, with Confluent Schema Registry's names and meanings (ADR 0048):
 * BACKWARD — consumers on the new schema read data written with the latest earlier one;
 * FORWARD — consumers on the latest earlier schema read data written with the new one;
 * FULL — both; *_TRANSITIVE — the same against every earlier version; NONE — no check.
 */
export const COMPATIBILITY_MODES = [
  "BACKWARD",
  "BACKWARD_TRANSITIVE",
  "FORWARD",
  "FORWARD_TRANSITIVE",
  "FULL",
  "FULL_TRANSITIVE",
  "NONE",
] as const;

export type CompatibilityMode = (typeof COMPATIBILITY_MODES)[number];

/** As in Confluent's registry. */
export const DEFAULT_COMPATIBILITY: CompatibilityMode = "BACKWARD";
