import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli } from "./helpers";

/**
 * The command table's help for groups, the duration options and the keys table, against a stub
 * of the API on loopback (what the CLI sends and prints; the API itself is covered by
 * cli.test.ts and security.test.ts against the stack).
 */

interface Received {
  method: string;
  url: string;
  body: unknown;
}

const received: Received[] = [];
let url = "";
let close = async () => {};

const keys = [
  {
    id: "k1aaaaaaaaaa",
    prefix: "evl_k1aaaaaaaaaa",
    name: "minted",
    grants: ["consume:events"],
    tenant: null,
    createdBy: "key:k0aaaaaaaaaa",
    createdAt: "2026-12-01T10:00:00.000Z",
    expiresAt: "2099-12-31T10:00:00.000Z",
    revokedAt: null,
    revokedBy: null,
  },
  {
    id: "k2aaaaaaaaaa",
    prefix: "evl_k2aaaaaaaaaa",
    name: "forever",
    grants: ["produce:events"],
    tenant: null,
    createdBy: "admin",
    createdAt: "2026-12-01T11:00:00.000Z",
    expiresAt: null,
    revokedAt: null,
    revokedBy: null,
  },
];

/** The answers of the stub, by method and path. */
function answer(method: string, path: string): unknown {
  if (method === "GET" && path === "/v1/keys") return { keys };
  if (method === "POST" && path === "/v1/subscriptions/hook/secret:rotate") {
    return { name: "hook", topic: "events", webhook: { secret: "whsec_new", previousSecretExpiresAt: null } };
  }
  if (method === "POST" && path === "/v1/keys/k2aaaaaaaaaa/rotate") return { ...keys[1], key: "evl_new", previousSecretExpiresAt: null };
  return undefined;
}

beforeAll(async () => {
  const server = createServer((req, res) => {
    let text = "";
    req.on("data", (c: Buffer) => {
      text += c.toString("utf8");
    });
    req.on("end", () => {
      const method = req.method ?? "GET";
      const path = req.url ?? "/";
      received.push({ method, url: path, body: text === "" ? undefined : (JSON.parse(text) as unknown) });
      const body = answer(method, path);
      if (body === undefined) res.writeHead(404, { "content-type": "application/problem+json" }).end('{"title":"Not Found"}');
      else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  close = () => new Promise<void>((resolve) => server.close(() => resolve()));
});
afterAll(() => close());

describe("help of command groups", () => {
  it("`<group> --help` and `help <group>` list every command of the group, as the top-level help does", async () => {
    const main = await cli(["help"], { url: null });
    expect(main.code).toBe(0);
    const commandLines = main.stdout.split("\n").filter((l) => /^ {2}[a-z]/.test(l));
    for (const group of ["replay", "subscriptions", "dlq", "keys", "encryption"]) {
      // The group's commands, with their arguments, as the top-level help names them.
      const members = commandLines
        .map((l) => l.trim().split(/\s{2,}/)[0] ?? "")
        .filter((name) => name === group || name.startsWith(`${group} `));
      expect(members.length, group).toBeGreaterThan(1);
      for (const args of [
        [group, "--help"],
        ["help", group],
      ]) {
        const res = await cli(args, { url: null });
        expect(res.code, `${args.join(" ")}: ${res.stderr}`).toBe(0);
        const listed = res.stdout
          .split("\n")
          .filter((l) => /^ {2}[a-z]/.test(l))
          .map((l) => l.trim().split(/\s{2,}/)[0]);
        expect(listed, args.join(" ")).toEqual(members);
      }
    }
    const rotate = (await cli(["subscriptions", "--help"], { url: null })).stdout;
    expect(rotate).toContain("Usage: eventline subscriptions [options]");
    expect(rotate).toMatch(/\n {2}subscriptions rotate-secret <name> {2}Rotate a webhook subscription's signing secret/);

    const bare = await cli(["keys"], { url: null });
    expect(bare.code).toBe(2);
    expect(bare.stderr).toBe("error: keys needs a subcommand: create, list, show, revoke, rotate\nrun `eventline keys --help` for usage\n");
  });
});

describe("duration options", () => {
  it("--overlap and --grace take the same durations (plain seconds too) and send them as seconds", async () => {
    const cases: [string, number][] = [
      ["0", 0],
      ["90", 90],
      ["90s", 90],
      ["30m", 1800],
      ["1h", 3600],
      ["24h", 86_400],
      ["7d", 604_800],
    ];
    for (const [value, seconds] of cases) {
      received.length = 0;
      const overlap = await cli(["subscriptions", "rotate-secret", "hook", "--overlap", value, "--json"], { url });
      expect(overlap.code, overlap.stderr).toBe(0);
      const grace = await cli(["keys", "rotate", "k2aaaaaaaaaa", "--grace", value, "--json"], { url });
      expect(grace.code, grace.stderr).toBe(0);
      expect(received).toEqual([
        { method: "POST", url: "/v1/subscriptions/hook/secret:rotate", body: { overlapSeconds: seconds } },
        { method: "POST", url: "/v1/keys/k2aaaaaaaaaa/rotate", body: { graceSeconds: seconds } },
      ]);
    }
  });

  it("refuses the same values for both, before any request: past 7d, negative, other units, no number", async () => {
    received.length = 0;
    for (const value of ["8d", "604801", "-1", "1w", "h", "1.5h", ""]) {
      // `--name=value`, so that `-1` reaches the parser as a value.
      const overlap = await cli(["subscriptions", "rotate-secret", "hook", `--overlap=${value}`], { url });
      const grace = await cli(["keys", "rotate", "k2aaaaaaaaaa", `--grace=${value}`], { url });
      for (const [res, name] of [
        [overlap, "--overlap"],
        [grace, "--grace"],
      ] as const) {
        expect(res.code, `${name} ${value}`).toBe(2);
        expect(res.stderr).toContain(
          `error: ${name} must be a duration from 0 to 7d: seconds, or a number with s, m, h or d (0, 90, 90s, 30m, 24h, 7d), not ${JSON.stringify(value)}\n`,
        );
      }
    }
    expect(received).toEqual([]);
  });
});

describe("keys list", () => {
  it("shows each key's expiry, `never` for a key without one", async () => {
    const res = await cli(["keys", "list"], { url });
    expect(res.code, res.stderr).toBe(0);
    const [header, ...rows] = res.stdout.trimEnd().split("\n");
    expect(header).toMatch(/^ID\s+NAME\s+GRANTS\s+TENANT\s+STATE\s+EXPIRES\s+CREATED\s+BY$/);
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatch(
      /^k1aaaaaaaaaa\s+minted\s+consume:events\s+-\s+active\s+2099-12-31T10:00:00\.000Z\s+2026-12-01T10:00:00\.000Z\s+key:k0aaaaaaaaaa$/,
    );
    expect(rows[1]).toMatch(/^k2aaaaaaaaaa\s+forever\s+produce:events\s+-\s+active\s+never\s+2026-12-01T11:00:00\.000Z\s+admin$/);
  });
});
