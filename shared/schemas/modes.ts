/** Confluent Schema Registry's compatibility modes, with its default (issue 20, ADR 0048). */
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

export const DEFAULT_COMPATIBILITY: CompatibilityMode = "BACKWARD";
