import { randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { describe, expect, inject, it } from "vitest";
import pkg from "../../package.json" with { type: "json" };
import { cli, ndjson, start, tempDir, until } from "./helpers";
import { freePort } from "./stack";

/** The operator CLI against the local stack (test/cli/stack.ts). */

const run = randomUUID().slice(0, 8);
const event = (id: string, extra: Record<string, unknown> = {}) => ({
  specversion: "1.0",
  id,
  source: "/cli-test",
  type: `cli.test.${run}`,
  ...extra,
});

/** The head of a partition of "events", through the API. */
async function head(partition: number): Promise<number> {
  const res = await fetch(`${inject("eventlineUrl")}/v1/topics/events`, {
    headers: { authorization: `Bearer ${inject("eventlineToken")}` },
  });
  const body = (await res.json()) as { partitionStats: { partition: number; head: number }[] };
  return body.partitionStats.find((p) => p.partition === partition)?.head ?? 0;
}

describe("help and version", () => {
  it("--help lists every command and the exit codes; each command has --help; --version prints the package version", async () => {
    const help = await cli(["--help"]);
    expect(help.code).toBe(0);
    for (const command of [
      "topics",
      "topic <name>",
      "tail <topic>",
      "publish <topic>",
      "replay",
      "replay status <id>",
      "replay list",
      "replay cancel <id>",
      "subscriptions",
      "subscriptions rotate-secret <name>",
      "dlq list <subscription>",
      "dlq redrive <subscription>",
      "archive <topic>",
    ]) {
      expect(help.stdout).toContain(`  ${command} `);
    }
    expect(help.stdout).toMatch(/130\s+interrupted/);
    expect((await cli(["help"])).stdout).toBe(help.stdout);

    const tail = await cli(["tail", "--help"]);
    expect(tail.code).toBe(0);
    expect(tail.stdout).toContain("Usage: eventline tail <topic> [options]");
    expect(tail.stdout).toContain("--follow");
    expect((await cli(["help", "replay", "status"])).stdout).toContain("Usage: eventline replay status <id>");

    const version = await cli(["--version"]);
    expect(version).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
  });
});

describe("topics", () => {
  it("prints a table of topics, and the API's JSON with --json", async () => {
    const table = await cli(["topics"]);
    expect(table.code).toBe(0);
    expect(table.stderr).toBe("");
    const [header, ...rows] = table.stdout.trimEnd().split("\n");
    expect(header).toMatch(/^TOPIC\s+PARTITIONS\s+EVENTS\s+HEADS\s+ARCHIVED$/);
    expect(rows.map((r) => r.split(/\s+/)[0])).toEqual([
      "events",
      "orders",
      "customers",
      "orders-revenue",
      "orders-alerts",
      "audit",
      "processor.revenue-per-minute",
      "processor.unpaid-orders",
    ]);
    expect(rows[1]).toMatch(/^orders\s+4\s+\d+\s+\d+,\d+,\d+,\d+\s/);

    const json = await cli(["topics", "--json"]);
    expect(json.code).toBe(0);
    const body = JSON.parse(json.stdout) as { topics: { name: string; partitions: number; partitionStats: unknown[] }[] };
    expect(body.topics.map((t) => t.name)).toEqual([
      "events",
      "orders",
      "customers",
      "orders-revenue",
      "orders-alerts",
      "audit",
      "processor.revenue-per-minute",
      "processor.unpaid-orders",
    ]);
    expect(body.topics[0]?.partitionStats).toHaveLength(4);
  });

  it("topic <name> prints each partition's head, count, first, archived range and outbox", async () => {
    const res = await cli(["topic", "orders"]);
    expect(res.code).toBe(0);
    const lines = res.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^orders: /);
    expect(lines[1]).toMatch(/^partitions 4, retention 720 h, strict types, schemas: orders\.placed/);
    expect(lines[3]).toMatch(/^PARTITION\s+HEAD\s+COUNT\s+FIRST\s+ARCHIVED\s+OUTBOX$/);
    expect(lines.slice(4).map((l) => l.trim().split(/\s+/)[0])).toEqual(["0", "1", "2", "3"]);
  });
});

describe("publish", () => {
  it("publishes one event, then reports the same event again as a duplicate at the same position", async () => {
    const id = `one-${run}`;
    const args = ["publish", "events", "--type", `cli.test.${run}`, "--subject", "alice", "--id", id, "--data", '{"hello":"world"}'];
    const first = await cli(args);
    expect(first.code).toBe(0);
    const match = /^stored (\S+) at 3:(\d+)\n$/.exec(first.stdout);
    expect(match?.[1]).toBe(id);
    const again = await cli(args);
    expect(again).toMatchObject({ code: 0, stdout: `duplicate ${id} at 3:${match?.[2]}\n` });

    const json = await cli([...args, "--json"]);
    expect(JSON.parse(json.stdout)).toEqual({
      events: [{ id, partition: 3, sequence: Number(match?.[2]), duplicate: true, streamVersion: expect.any(Number) }],
    });

    // Default id (a UUID) and source (/cli).
    const generated = await cli(["publish", "events", "--type", `cli.test.${run}`]);
    expect(generated.stdout).toMatch(/^stored [0-9a-f-]{36} at \d:\d+\n$/);
  });

  it("publishes ~300 NDJSON events in batches: plain progress lines on a non-TTY stderr, then stored/duplicate/failed counts", async () => {
    const dir = await tempDir();
    const events = Array.from({ length: 300 }, (_, i) => event(`bulk-${run}-${i}`, { subject: `k${i % 7}`, data: { i } }));
    const file = path.join(dir, "events.ndjson");
    // 20 of them first, so that the full file has 20 duplicates.
    await writeFile(
      path.join(dir, "first.ndjson"),
      `${events
        .slice(0, 20)
        .map((e) => JSON.stringify(e))
        .join("\n")}\n`,
    );
    expect((await cli(["publish", "events", "--file", path.join(dir, "first.ndjson")])).code).toBe(0);
    await writeFile(file, `${events.map((e) => JSON.stringify(e)).join("\n")}\n\n`);

    const res = await cli(["publish", "events", "--file", file, "--batch", "50"]);
    expect(res.code).toBe(0);
    expect(res.stderr).not.toContain("\r");
    const progress = res.stderr.trimEnd().split("\n");
    expect(progress.length).toBeGreaterThanOrEqual(3);
    for (const line of progress) expect(line).toMatch(/^sent \d+\/300 events \d+% [\d,]+ ev\/s ETA (\d+:\d\d|-)$/);
    expect(progress.at(-1)).toMatch(/^sent 300\/300 events 100% /);
    expect(res.stdout).toMatch(/^published 300 of 300 events to events: stored 280, duplicates 20, failed 0 \(/);

    // Every event is there, in file order per partition.
    const tail = await cli(["tail", "events", "--json"]);
    const stored = ndjson(tail.stdout).filter((e) => e.type === `cli.test.${run}` && String(e.id).startsWith(`bulk-${run}-`));
    expect(stored).toHaveLength(300);
    for (let p = 0; p < 4; p++) {
      const indexes = stored.filter((e) => e.partition === p).map((e) => (e.data as { i: number }).i);
      expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
    }
  });

  it("--file with --type sends each line as the data of a new event; --json prints one result per event", async () => {
    const dir = await tempDir();
    const file = path.join(dir, "data.ndjson");
    await writeFile(file, '{"n":1}\n{"n":2}\n{"n":3}\n');
    const res = await cli(["publish", "events", "--file", file, "--type", `cli.test.data.${run}`, "--subject", "alice", "--json"]);
    expect(res.code).toBe(0);
    const results = ndjson(res.stdout);
    expect(results).toHaveLength(3);
    for (const r of results) expect(r).toMatchObject({ partition: 3, duplicate: false });
    expect(res.stderr).toMatch(/published 3 of 3 events to events: stored 3, duplicates 0, failed 0/);
  });

  it("a failed batch stops the run: summary of what was sent, the problem on stderr, exit 1", async () => {
    const dir = await tempDir();
    const file = path.join(dir, "bad.ndjson");
    const lines = [
      event(`fail-${run}-1`),
      event(`fail-${run}-2`),
      event(`fail-${run}-3`),
      { ...event(`fail-${run}-4`), source: 42 },
      event(`fail-${run}-5`),
    ];
    await writeFile(file, lines.map((e) => JSON.stringify(e)).join("\n"));
    const res = await cli(["publish", "events", "--file", file, "--batch", "2"]);
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/^published 2 of 5 events to events: stored 2, duplicates 0, failed 2, not sent 1 /);
    expect(res.stderr).toMatch(/^error: Invalid CloudEvent: .+\n {2}\/1\/source: .+/m);
  });
});

describe("tail", () => {
  it("--partition prints one line per event, and NDJSON of the stored events with --json", async () => {
    const from = (await head(3)) + 1;
    const ids = [1, 2, 3].map((n) => `tail-${run}-${n}`);
    for (const [n, id] of ids.entries()) {
      const res = await cli([
        "publish",
        "events",
        "--type",
        `cli.test.tail.${run}`,
        "--subject",
        "alice",
        "--id",
        id,
        "--data",
        JSON.stringify({ n }),
      ]);
      expect(res.code).toBe(0);
    }

    const json = await cli(["tail", "events", "--partition", "3", "--from", String(from), "--json"]);
    expect(json.code).toBe(0);
    const events = ndjson(json.stdout);
    expect(events.map((e) => e.id)).toEqual(ids);
    expect(events.map((e) => Number(e.sequence))).toEqual([from, from + 1, from + 2]);
    expect(events[0]).toMatchObject({ specversion: "1.0", type: `cli.test.tail.${run}`, subject: "alice", partition: 3, data: { n: 0 } });

    const human = await cli(["tail", "events", "--partition", "3", "--from", String(from)]);
    expect(human.stdout.trimEnd().split("\n")).toEqual(
      ids.map((id, n) =>
        expect.stringMatching(
          new RegExp(`^3:${from + n} \\d{4}-\\d\\d-\\d\\dT\\S+ cli\\.test\\.tail\\.${run} alice ${id} \\{"n":${n}\\}$`),
        ),
      ),
    );

    const limited = await cli(["tail", "events", "--partition", "3", "--from", String(from), "--limit", "2"]);
    expect(limited.stdout.trimEnd().split("\n")).toHaveLength(2);
  });

  it("--follow prints an event published after it started, and exits 0 on Ctrl-C", async () => {
    const from = (await head(3)) + 1;
    // --interval only pauses after an empty wait: the event comes from the live stream, not a poll.
    const follow = start(["tail", "events", "--partition", "3", "--from", String(from), "--follow", "--interval", "60000"]);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(follow.stdout()).toBe("");
    const id = `follow-${run}`;
    expect((await cli(["publish", "events", "--type", "cli.test.follow", "--subject", "alice", "--id", id])).code).toBe(0);
    await until(() => follow.stdout().includes(id), "the followed event");
    expect(follow.stdout()).toMatch(new RegExp(`^3:${from} \\S+ cli\\.test\\.follow alice ${id} -\\n$`));
    follow.child.kill("SIGINT");
    expect(await follow.done).toMatchObject({ code: 0, stderr: "" });
  });
});

describe("subscriptions and dead letters", () => {
  it("subscriptions prints name, topic, kind, ordering, lag, DLQ depth, circuit and counts", async () => {
    const res = await cli(["subscriptions"]);
    expect(res.code).toBe(0);
    const [header, ...rows] = res.stdout.trimEnd().split("\n");
    expect(header).toMatch(/^NAME\s+TOPIC\s+KIND\s+ORDERING\s+LAG\s+DLQ\s+CIRCUIT\s+HANDLED\s+RETRIED\s+DEAD-LETTERED$/);
    expect(rows.find((r) => r.startsWith("activity "))).toMatch(
      /^activity\s+events\s+worker\s+none\s+[\d,]+\s+0\s+closed\s+[\d,]+\s+\d+\s+\d+$/,
    );
    const json = JSON.parse((await cli(["subscriptions", "--json"])).stdout) as { subscriptions: { name: string }[] };
    expect(json.subscriptions.map((s) => s.name)).toEqual(
      expect.arrayContaining(["activity", "greetings", "orders-view", "customer-summary"]),
    );
  });

  it("subscriptions rotate-secret prints the new secret once and the overlap's end; --overlap 0 --json drops the old one", async () => {
    const name = `cli-hook-${run}`;
    const created = await fetch(`${inject("eventlineUrl")}/v1/subscriptions`, {
      method: "POST",
      headers: { authorization: `Bearer ${inject("eventlineToken")}`, "content-type": "application/json" },
      body: JSON.stringify({ name, topic: "events", filter: { type: [`never.${run}`] }, webhook: { url: "http://127.0.0.1:9/hook" } }),
    });
    expect(created.status, await created.text()).toBe(201);

    const res = await cli(["subscriptions", "rotate-secret", name]);
    expect(res).toMatchObject({ code: 0, stderr: "" });
    const secret = /^ {2}(whsec_\S+)$/m.exec(res.stdout)?.[1] ?? "";
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(res.stdout).toMatch(/signed with the old and the new secret until \d{4}-\d{2}-\d{2}T[\d:.]+Z/);

    const json = await cli(["subscriptions", "rotate-secret", name, "--overlap", "0", "--json"]);
    expect(json.code).toBe(0);
    const body = JSON.parse(json.stdout) as { name: string; webhook: { secret: string; previousSecretExpiresAt: string | null } };
    expect(body).toMatchObject({ name, topic: "events", webhook: { previousSecretExpiresAt: null } });
    expect(body.webhook.secret).not.toBe(secret);

    const bad = await cli(["subscriptions", "rotate-secret", name, "--overlap", "604801"]);
    expect(bad.code).toBe(2);
    const missing = await cli(["subscriptions", "rotate-secret", `no-such-${run}`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("does not exist");
  });

  it("dlq list on an empty DLQ says so (and --json is the API's page); redrive of nothing redrives nothing", async () => {
    const list = await cli(["dlq", "list", "customer-summary"]);
    expect(list).toMatchObject({ code: 0, stdout: "no dead letters for customer-summary (total 0)\n" });
    const json = await cli(["dlq", "list", "customer-summary", "--json", "--all", "--limit", "10"]);
    expect(JSON.parse(json.stdout)).toEqual({ deadLetters: [], total: 0, next: null });

    const redrive = await cli(["dlq", "redrive", "customer-summary", "--ids", "dl-1,dl-2"]);
    expect(redrive).toMatchObject({ code: 0, stdout: "redriven 0, remaining 0\nnot found: dl-1, dl-2\n" });
  });
});

describe("errors and exit codes", () => {
  it("an API error exits 1 with `error: <title>: <detail>` and the problem's issues on stderr", async () => {
    const unknown = await cli(["topic", "no-such-topic"]);
    expect(unknown).toMatchObject({ code: 1, stdout: "", stderr: 'error: Unknown topic: topic "no-such-topic" does not exist\n' });
    expect((await cli(["tail", "no-such-topic"])).code).toBe(1);
    expect((await cli(["dlq", "list", "no-such-subscription"])).stderr).toBe(
      'error: Not found: subscription "no-such-subscription" does not exist\n',
    );

    const invalid = await cli([
      "publish",
      "orders",
      "--type",
      "orders.paid",
      "--data",
      '{"orderId":"o-1","amount":"ten","currency":"EUR"}',
    ]);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toBe(
      "error: Event data does not match its schema: data does not match the schema registered for its type\n" +
        "  /data/amount: Invalid input: expected number, received string\n",
    );
  });

  it("bad usage exits 2 with the reason and where to find help, before any request", async () => {
    const cases: [string[], RegExp][] = [
      [[], /no command given/],
      [["frobnicate"], /unknown command "frobnicate"/],
      [["dlq"], /dlq needs a subcommand: list, redrive/],
      [["processors", "bogus"], /unknown processors subcommand "bogus": use one of list, show, reset, late/],
      [["topics", "--bogus"], /Unknown option '--bogus'/],
      [["tail"], /missing <topic>/],
      [["topic", "a", "b"], /unexpected argument "b"/],
      [["tail", "events", "--limit", "zero"], /--limit must be an integer from 1/],
      [["publish", "events"], /--type is required/],
      [["publish", "events", "--type", "t", "--data", "{nope"], /--data is not valid JSON/],
      [["publish", "events", "--file", "/no/such/file.ndjson"], /cannot read \/no\/such\/file\.ndjson/],
      [["replay", "--topic", "events", "--from", "1"], /--subscription is required/],
      [["replay", "--topic", "events", "--subscription", "activity", "--from", "yesterday"], /--from must be a sequence/],
      [["topics", "--url", "ftp://example.com"], /--url must be an http\(s\) URL/],
    ];
    for (const [args, message] of cases) {
      const res = await cli(args);
      expect(res.code, args.join(" ")).toBe(2);
      expect(res.stdout).toBe("");
      expect(res.stderr).toMatch(message);
      expect(res.stderr).toMatch(/run `eventline .*help` for usage\n$/);
    }
    const dir = await tempDir();
    await writeFile(path.join(dir, "bad.ndjson"), '{"ok":true}\nnot json\n');
    const bad = await cli(["publish", "events", "--file", path.join(dir, "bad.ndjson")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/bad\.ndjson:2: not valid JSON/);
  });

  it("a server that cannot be reached exits 3", async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const res = await cli(["topics"], { url });
    expect(res).toMatchObject({ code: 3, stdout: "" });
    expect(res.stderr).toMatch(new RegExp(`^error: cannot reach ${url.replaceAll(".", "\\.")}: .*ECONNREFUSED`));
  });
});

/**
 * What the local stack cannot be made to do on demand (503s, a proxy's HTML error, checking the
 * Authorization header) is checked against a stub server on loopback.
 */
describe("retries, non-JSON errors and the token (stub server)", () => {
  async function stub(handler: (req: IncomingMessage, body: string, res: ServerResponse) => void) {
    const requests: { method: string; url: string; headers: IncomingMessage["headers"]; body: string }[] = [];
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => {
        body += c.toString("utf8");
      });
      req.on("end", () => {
        requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
        handler(req, body, res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return { url, requests, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
  }
  const overloaded = JSON.stringify({
    title: "Partition overloaded",
    status: 503,
    detail: "too many appends in flight",
    code: "overloaded",
  });

  it("publish --file retries a 503 after its Retry-After (up to 5 times), then goes on", async () => {
    let calls = 0;
    const server = await stub((_req, body, res) => {
      calls++;
      if (calls <= 2) {
        res.writeHead(503, { "content-type": "application/problem+json", "retry-after": "0" }).end(overloaded);
        return;
      }
      const events = (JSON.parse(body) as { id: string }[]).map((e, i) => ({ id: e.id, partition: 0, sequence: i + 1, duplicate: false }));
      res.writeHead(202, { "content-type": "application/json" }).end(JSON.stringify({ events }));
    });
    try {
      const res = await cli(["publish", "events", "--file", "-", "--type", "t"], { url: server.url, input: '{"a":1}\n{"a":2}\n' });
      expect(res.code).toBe(0);
      expect(res.stderr).toContain(
        "503 Partition overloaded: retrying in 0s (retry 1/5)\n503 Partition overloaded: retrying in 0s (retry 2/5)\n",
      );
      expect(res.stdout).toMatch(/^published 2 of 2 events to events: stored 2, duplicates 0, failed 0 /);
      expect(server.requests.map((r) => r.headers["content-type"])).toEqual(Array(3).fill("application/cloudevents-batch+json"));
      // The same batch each time: re-sending is safe.
      expect(new Set(server.requests.map((r) => r.body)).size).toBe(1);
    } finally {
      await server.close();
    }
  });

  it("gives up after 5 retries: summary, the problem, exit 1", async () => {
    const server = await stub((_req, _body, res) => {
      res.writeHead(503, { "content-type": "application/problem+json", "retry-after": "0" }).end(overloaded);
    });
    try {
      const res = await cli(["publish", "events", "--file", "-", "--type", "t"], { url: server.url, input: '{"a":1}\n' });
      expect(res.code).toBe(1);
      expect(server.requests).toHaveLength(6);
      expect(res.stdout).toMatch(/^published 0 of 1 events to events: stored 0, duplicates 0, failed 1 /);
      expect(res.stderr).toMatch(/\nerror: Partition overloaded: too many appends in flight\n$/);
    } finally {
      await server.close();
    }
  });

  it("an error without a problem document shows the HTTP status and the body; EVENTLINE_URL and EVENTLINE_TOKEN are used", async () => {
    const server = await stub((_req, _body, res) => {
      res.writeHead(502, { "content-type": "text/html" }).end("<h1>bad gateway</h1>");
    });
    try {
      const res = await cli(["subscriptions"], { url: null, env: { EVENTLINE_URL: server.url, EVENTLINE_TOKEN: "s3cret" } });
      expect(res).toMatchObject({ code: 1, stdout: "", stderr: "error: HTTP 502 Bad Gateway: <h1>bad gateway</h1>\n" });
      expect(server.requests[0]).toMatchObject({ method: "GET", url: "/v1/subscriptions" });
      expect(server.requests[0]?.headers.authorization).toBe("Bearer s3cret");

      // --token wins over the environment.
      await cli(["topics", "--token", "other"], { url: server.url, env: { EVENTLINE_TOKEN: "s3cret" } });
      expect(server.requests[1]?.headers.authorization).toBe("Bearer other");
    } finally {
      await server.close();
    }
  });
});
