import type { TopicConfig } from "../../../shared/config";
import { EventlineError } from "../../../shared/errors";
import { type CompatibilityResult, checkCompatibility } from "../../../shared/schemas/compatibility";
import { compatibilityOf, invalidateSchemaCache, typeSnapshot } from "./registry";
import { fingerprintOf, type SubmittedSchema } from "./submitted";

/**
 * Registering a data schema version (docs/schemas.md, ADR 0049). The candidate is checked against
 * the earlier versions under the type's compatibility mode, then inserted as `latest + 1` on the
 * condition that no other version was stored since the versions it was checked against were read
 * (optimistic concurrency in one D1 statement). A registration that loses that race reads again,
 * checks again against the new latest, and retries; so every stored version was checked against
 * all its predecessors as the mode requires, and versions stay contiguous.
 */

/** Most versions one type may have (config + runtime). */
export const MAX_VERSIONS = 1000;
/**
 * Most bytes (canonical JSON, UTF-8) one type's runtime versions may hold together: an isolate
 * caches a type's versions whole, so this bounds each cached entry (registry.ts).
 */
export const MAX_TYPE_SCHEMA_BYTES = 1024 * 1024;
const encoder = new TextEncoder();
/** Attempts before a registration that keeps losing to concurrent ones gives up (503). */
const MAX_ATTEMPTS = 12;

export interface RegistrationOutcome {
  /** The version the schema got (or, for a dry run, would get); an existing one when `registered`. */
  version: number;
  /** True when an identical schema already was this version (nothing new stored). */
  registered: boolean;
  /** Stored by this call. */
  created: boolean;
  result: CompatibilityResult;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What registering `submitted` would do against `type`'s versions as D1 holds them now. */
async function plan(db: D1Database, topic: TopicConfig, type: string, submitted: SubmittedSchema) {
  const snapshot = await typeSnapshot(db, topic, type);
  const versions = snapshot.schemas?.versions ?? [];
  const mode = compatibilityOf(topic, type);
  // Identical to a version that exists (any, not only the latest): that version, as Confluent answers.
  for (const existing of [...versions].reverse()) {
    const fingerprint = existing.source === "registry" ? snapshot.fingerprints.get(existing.version) : await fingerprintOf(existing.schema);
    if (fingerprint === submitted.fingerprint) {
      const result: CompatibilityResult = { compatible: true, mode, checkedAgainst: [], incompatibilities: [] };
      return { snapshot, outcome: { version: existing.version, registered: true, created: false, result } };
    }
  }
  for (const [version, fingerprint] of snapshot.fingerprints) {
    if (fingerprint === submitted.fingerprint && version <= snapshot.declared) {
      throw new EventlineError(
        "conflict",
        `this schema was registered as version ${version} of ${topic.name}/${type}, which eventline.config.ts now declares differently; register it with a change, or declare it in the config`,
      );
    }
  }
  const version = Math.max(snapshot.declared, snapshot.latestStored) + 1;
  const result = checkCompatibility(
    mode,
    submitted.schema,
    versions.map((v) => ({ version: v.version, schema: v.schema })),
  );
  return { snapshot, outcome: { version, registered: false, created: false, result } };
}

/** The 409 of a candidate that breaks its type's compatibility mode, naming every incompatibility. */
export function incompatible(topic: string, type: string, outcome: RegistrationOutcome): EventlineError {
  const { result } = outcome;
  const listed = result.incompatibilities.slice(0, 5).map((i) => `${i.message} (against version ${i.version})`);
  const more = result.incompatibilities.length - listed.length;
  const detail = `the schema is not ${result.mode} compatible with ${topic}/${type} version${result.checkedAgainst.length === 1 ? "" : "s"} ${result.checkedAgainst.join(", ")}: ${listed.join("; ")}${more > 0 ? `; and ${more} more` : ""}`;
  return new EventlineError("schema_incompatible", detail, {
    issues: result.incompatibilities.map((i) => ({
      path: i.path,
      message: `${i.message} (${i.direction}, against version ${i.version})`,
    })),
    extensions: dryRunView(outcome),
  });
}

/** The answer of a dry run (and the extension members of the 409). */
export function dryRunView(outcome: RegistrationOutcome) {
  const { result } = outcome;
  return {
    compatible: result.compatible,
    version: outcome.version,
    registered: outcome.registered,
    compatibility: result.mode,
    checkedAgainst: result.checkedAgainst,
    incompatibilities: result.incompatibilities,
  };
}

/** Checks `submitted` as the next version of `type`; stores it unless `dryRun`. Throws 409 when incompatible (not for a dry run). */
export async function registerSchema(
  db: D1Database,
  topic: TopicConfig,
  type: string,
  submitted: SubmittedSchema,
  options: { dryRun: boolean; createdBy: string },
): Promise<RegistrationOutcome> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const { snapshot, outcome } = await plan(db, topic, type, submitted);
    if (outcome.registered || options.dryRun) return outcome;
    if (!outcome.result.compatible) throw incompatible(topic.name, type, outcome);
    if (outcome.version > MAX_VERSIONS) {
      throw new EventlineError("unprocessable_request", `${topic.name}/${type} has ${MAX_VERSIONS} versions, the most a type may have`);
    }
    const bytes = snapshot.storedBytes + encoder.encode(submitted.canonical).length;
    if (bytes > MAX_TYPE_SCHEMA_BYTES) {
      throw new EventlineError(
        "unprocessable_request",
        `${topic.name}/${type}'s registered versions would hold ${bytes} bytes of canonical JSON with this one; a type's versions may hold at most ${MAX_TYPE_SCHEMA_BYTES} (1 MiB) together`,
      );
    }
    // Stored only if no runtime version was added since the snapshot: the check above saw the latest.
    const inserted = await db
      .prepare(
        `INSERT INTO schema_versions (topic, type, version, schema, fingerprint, compatibility, created_by, created_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
         WHERE (SELECT COALESCE(MAX(version), 0) FROM schema_versions WHERE topic = ?1 AND type = ?2) = ?9
         ON CONFLICT DO NOTHING`,
      )
      .bind(
        topic.name,
        type,
        outcome.version,
        submitted.text,
        submitted.fingerprint,
        outcome.result.mode,
        options.createdBy,
        Date.now(),
        snapshot.latestStored,
      )
      .run();
    if (inserted.meta.changes === 1) {
      invalidateSchemaCache();
      return { ...outcome, created: true };
    }
    // Another registration got there first (a new version, or this very schema): read and check again.
    await sleep(Math.random() * Math.min(5 * 2 ** attempt, 100));
  }
  throw new EventlineError("unavailable", `concurrent registrations for ${topic.name}/${type} kept winning; retry`, { retryAfter: 1 });
}
