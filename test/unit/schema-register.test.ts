import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { findTopic, type TopicConfig } from "../../shared/config";
import { EventlineError } from "../../shared/errors";
import { MAX_TYPE_SCHEMA_BYTES, registerSchema } from "../../workers/platform/schemas/register";
import { acceptSubmittedSchema } from "../../workers/platform/schemas/submitted";
import { closed, schemaConfig, storedVersions } from "../integration/schema-fixtures";

/**
 * registerSchema (workers/platform/schemas/register.ts) against a D1 that always loses the race:
 * it re-reads and re-checks each time, and gives up with a 503 + Retry-After rather than storing
 * a version unchecked.
 */

const events = findTopic(schemaConfig, "events") as TopicConfig;

/** env.DB, except that every INSERT changes nothing (another registration always got there first); counts reads. */
function alwaysLosing() {
  let reads = 0;
  const db = {
    prepare(sql: string) {
      if (sql.trimStart().startsWith("INSERT")) {
        return { bind: () => ({ run: async () => ({ meta: { changes: 0 } }) }) };
      }
      reads += 1;
      return env.DB.prepare(sql);
    },
  } as unknown as D1Database;
  return { db, reads: () => reads };
}

describe("registerSchema under contention", () => {
  it("re-reads and re-checks on every lost race, then answers 503 with Retry-After, storing nothing", async () => {
    const losing = alwaysLosing();
    const submitted = await acceptSubmittedSchema(closed(["id"]));
    const error = await registerSchema(losing.db, events, "contended.type", submitted, { dryRun: false, createdBy: "test" }).catch(
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(EventlineError);
    expect((error as EventlineError).status).toBe(503);
    expect((error as EventlineError).options.retryAfter).toBe(1);
    expect(losing.reads()).toBe(12);
    expect(await storedVersions(env.DB, "events", "contended.type")).toEqual([]);
  });

  it("a dry run reads once and never inserts", async () => {
    const losing = alwaysLosing();
    const submitted = await acceptSubmittedSchema(closed(["id"]));
    const outcome = await registerSchema(losing.db, events, "dry.contended", submitted, { dryRun: true, createdBy: "test" });
    expect(outcome).toMatchObject({ version: 1, registered: false, created: false, result: { compatible: true, checkedAgainst: [] } });
    expect(losing.reads()).toBe(1);
  });
});

describe("the per-type size cap", () => {
  it(`refuses a version that would take the type's stored schemas past ${MAX_TYPE_SCHEMA_BYTES} bytes (422 naming the cap), and takes one that fits`, async () => {
    // 16 stored versions of about 65 KB each: 1,040,000-odd bytes, under the cap.
    for (let v = 1; v <= 16; v++) {
      const schema = JSON.stringify({ description: `${v}${"a".repeat(65_000)}` });
      await env.DB.prepare(
        "INSERT INTO schema_versions (topic, type, version, schema, fingerprint, compatibility, created_by, created_at) VALUES ('events', 'big.type', ?, ?, ?, 'BACKWARD', 'test', 0)",
      )
        .bind(v, schema, `fp-big-${v}`)
        .run();
    }
    const big = await acceptSubmittedSchema({ description: `b${"a".repeat(60_000)}` });
    const error = await registerSchema(env.DB, events, "big.type", big, { dryRun: false, createdBy: "test" }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(EventlineError);
    expect((error as EventlineError).status).toBe(422);
    expect((error as EventlineError).message).toContain(`at most ${MAX_TYPE_SCHEMA_BYTES} (1 MiB)`);
    expect(await storedVersions(env.DB, "events", "big.type")).toHaveLength(16);
    const small = await acceptSubmittedSchema({ description: "small" });
    expect(await registerSchema(env.DB, events, "big.type", small, { dryRun: false, createdBy: "test" })).toMatchObject({
      version: 17,
      created: true,
    });
  });
});
