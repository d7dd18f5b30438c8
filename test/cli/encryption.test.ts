import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { cli } from "./helpers";

/**
 * `eventline encryption status` during an automatic KEK rotation (docs/security.md "Rotating the
 * KEK"): the states the local stack cannot be put in on demand (mid-way, stalled) are served by a
 * stub of GET /v1/encryption on loopback; test/cli/security.test.ts runs it against the stack.
 */

async function serving(body: unknown) {
  const server = createServer((req, res) => {
    if (req.url !== "/v1/encryption") {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const rotation = (overrides: Record<string, unknown>) => ({
  state: "rewrapping",
  remaining: 17_120,
  rewrapped: 31_000,
  progress: 31_000 / 48_120,
  removable: [],
  shards: { rewrapping: 9, complete: 7, stalled: 0 },
  startedAt: "2026-12-06T10:00:00.000Z",
  completedAt: null,
  errors: [],
  ...overrides,
});

const midway = {
  kek: { current: "v2", versions: ["v2", "v1"] },
  dataKeys: { keys: 48_120, shredded: 35, byKekVersion: { v2: 31_000, v1: 17_120 } },
  rotationComplete: false,
  rotation: rotation({}),
};

async function statusOf(body: unknown, args: string[] = []) {
  const server = await serving(body);
  try {
    return await cli(["encryption", "status", ...args], { url: server.url });
  } finally {
    await server.close();
  }
}

describe("eventline encryption status (stub server)", () => {
  it("mid-way: the progress, and that v1 must stay", async () => {
    const res = await statusOf(midway);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe(
      [
        "KEK versions: v2, v1 (current v2)",
        "data keys: 48,120 active, 35 shredded",
        "  wrapped by v2: 31,000",
        "  wrapped by v1: 17,120",
        "rotation to v2 in progress (automatic): 31,000 of 48,120 data keys rewrapped (64%), 17,120 remaining, started 2026-12-06T10:00:00.000Z",
        "keep v1 in EVENTLINE_KEKS until the rotation is complete (rerun to follow it; `eventline encryption rewrap` finishes it at once)",
        "",
      ].join("\n"),
    );
  });

  it("in progress before any shard's first run (no startedAt yet): says it has not started, instead of a time", async () => {
    const res = await statusOf({ ...midway, rotation: rotation({ rewrapped: 0, remaining: 48_120, progress: 0, startedAt: null }) });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain(
      "\nrotation to v2 in progress (automatic): 0 of 48,120 data keys rewrapped (0%), 48,120 remaining, not started yet (the first run follows within seconds)\n",
    );
  });

  it("complete: says which old version can now be removed", async () => {
    const res = await statusOf({
      ...midway,
      dataKeys: { keys: 48_120, shredded: 35, byKekVersion: { v2: 48_120 } },
      rotationComplete: true,
      rotation: rotation({
        state: "complete",
        remaining: 0,
        rewrapped: 48_120,
        progress: 1,
        removable: ["v1"],
        completedAt: "2026-12-06T10:00:16.000Z",
      }),
    });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain("rotation complete: every data key is wrapped by the current KEK (v2), since 2026-12-06T10:00:16.000Z\n");
    expect(res.stdout).toMatch(/\nv1 can now be removed from EVENTLINE_KEKS: no data key is wrapped by it\n$/);
    expect(res.stdout).not.toContain("keep v1");
  });

  it("stalled: the reason per shard; --json prints the document as served", async () => {
    const stalled = {
      ...midway,
      rotation: rotation({
        state: "stalled",
        shards: { rewrapping: 0, complete: 15, stalled: 1 },
        errors: [{ shard: "shard-3", error: "2 data key(s) are wrapped under KEK version v0, which EVENTLINE_KEKS no longer holds" }],
      }),
    };
    const res = await statusOf(stalled);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain("rotation to v2 stalled: 31,000 of 48,120 data keys rewrapped (64%), 17,120 remaining\n");
    expect(res.stdout).toContain("\n  shard-3: 2 data key(s) are wrapped under KEK version v0, which EVENTLINE_KEKS no longer holds\n");
    const json = await statusOf(stalled, ["--json"]);
    expect(JSON.parse(json.stdout)).toEqual(stalled);
  });
});
