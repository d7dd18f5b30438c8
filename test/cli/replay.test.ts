import { randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cli, start, tempDir, until } from "./helpers";

/**
 * `replay …` and `archive` against the local stack: POST/GET/DELETE /v1/replays and
 * POST /v1/topics/{topic}/archive.
 */

const run = randomUUID().slice(0, 8);
const ID = /rpl_[0-9a-f]{32}/;

interface View {
  id: string;
  state: string;
  from: unknown;
  to: unknown;
  filter: unknown;
  partitions: { partition: number }[];
  scanned: number;
  sent: number;
  total: number;
}

beforeAll(async () => {
  // 120 events on partition 3 of "events" (subject alice), so a slow replay has work for minutes.
  const dir = await tempDir();
  const file = path.join(dir, "data.ndjson");
  await writeFile(file, Array.from({ length: 120 }, (_, i) => JSON.stringify({ i })).join("\n"));
  const res = await cli(["publish", "events", "--file", file, "--type", `cli.replay.${run}`, "--subject", "alice"]);
  expect(res.code).toBe(0);
});

describe("replay", () => {
  it("runs a replay to the end with plain progress lines on a non-TTY stderr, then exits 0", async () => {
    const res = await cli([
      "replay",
      "--topic",
      "events",
      "--from",
      "1",
      "--subscription",
      "activity",
      "--partitions",
      "3",
      "--rate",
      "5000",
    ]);
    expect(res.code).toBe(0);
    const [first, ...progress] = res.stderr.trimEnd().split("\n");
    expect(first).toMatch(new RegExp(`^replay ${ID.source}: events → activity$`));
    expect(progress.length).toBeGreaterThan(0);
    for (const line of progress) expect(line).toMatch(/^(running|done): scanned [\d,]+\/[\d,]+ sent [\d,]+ [\d.]+ ev\/s ETA \S+$/);
    expect(res.stdout).toMatch(
      new RegExp(
        `^replay ${ID.source} done: scanned ([\\d,]+)/\\1, sent [\\d,]+, delivered [\\d,]+ \\(handled [\\d,]+, already handled [\\d,]+, dead-lettered 0, awaiting 0\\) in \\d+:\\d\\d\\n$`,
      ),
    );
  });

  it("sends from/to (sequence or ISO time), partitions, filter and rate; --json prints the final job", async () => {
    const res = await cli([
      "replay",
      "--topic",
      "events",
      "--subscription",
      "activity",
      "--from",
      "2020-01-01T00:00:00Z",
      "--to",
      "10",
      "--partitions",
      "0,3",
      "--filter",
      JSON.stringify({ type: [`cli.replay.${run}`] }),
      "--rate",
      "5000",
      "--json",
    ]);
    expect(res.code).toBe(0);
    const view = JSON.parse(res.stdout) as View;
    expect(view).toMatchObject({
      state: "done",
      from: { time: "2020-01-01T00:00:00.000Z" },
      to: { sequence: 10 },
      filter: { type: [`cli.replay.${run}`] },
    });
    expect(view.partitions.map((p) => p.partition)).toEqual([0, 3]);
  });

  it("Ctrl-C without a terminal detaches (exit 130, the job keeps running); status, list, cancel, status --watch", async () => {
    const replay = start(["replay", "--topic", "events", "--from", "1", "--subscription", "activity", "--partitions", "3", "--rate", "1"]);
    await until(() => ID.test(replay.stderr()) && replay.stderr().includes("running: scanned"), "the first progress line");
    replay.child.kill("SIGINT");
    const detached = await replay.done;
    expect(detached.code).toBe(130);
    const id = ID.exec(detached.stderr)?.[0] ?? "";
    expect(detached.stderr).toContain(`detached: replay ${id} keeps running (running: scanned`);
    expect(detached.stderr).toContain(`watch it with: eventline replay status ${id} --watch\n`);

    const status = await cli(["replay", "status", id]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(
      new RegExp(`^replay ${id} running: events → activity\\nrange {5}sequence 1 to the head at start \\(p3 [\\d,]+\\), rate 1 ev/s\\n`),
    );
    expect(status.stdout).toMatch(/PARTITION\s+FROM\s+TO\s+POSITION\s+SCANNED\s+SENT\s+DONE\n\s+3\s+1\s+\d+\s+\d+\s+\d+\s+\d+\s+no\n$/);
    expect((JSON.parse((await cli(["replay", "status", id, "--json"])).stdout) as View).state).toBe("running");

    const list = await cli(["replay", "list"]);
    expect(list.stdout).toMatch(/^ID\s+STATE\s+TOPIC\s+SUBSCRIPTION\s+SCANNED\s+SENT\s+CREATED\n/);
    expect(list.stdout).toMatch(new RegExp(`\\n${id}\\s+running\\s+events\\s+activity\\s`));
    const listed = JSON.parse((await cli(["replay", "list", "--json"])).stdout) as { replays: View[] };
    expect(listed.replays.map((r) => r.id)).toContain(id);

    const cancel = await cli(["replay", "cancel", id]);
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toMatch(new RegExp(`^replay ${id} cancelled: scanned [\\d,]+/[\\d,]+, sent [\\d,]+`));

    // Watching a cancelled job: its final line, exit 1.
    const watch = await cli(["replay", "status", id, "--watch"]);
    expect(watch.code).toBe(1);
    expect(watch.stderr).toMatch(new RegExp(`^replay ${id} cancelled: `));
  });

  it("API refusals exit 1 with the problem and its issues; an unknown job is not found", async () => {
    const other = await cli(["replay", "--topic", "events", "--from", "1", "--subscription", "orders-view"]);
    expect(other).toMatchObject({ code: 1, stdout: "" });
    expect(other.stderr).toMatch(
      /^error: .+: subscription orders-view is on topic orders, not events\n {2}\/subscription: subscribed to orders\n$/,
    );

    const partitions = await cli(["replay", "--topic", "events", "--from", "1", "--subscription", "activity", "--partitions", "0,9"]);
    expect(partitions.code).toBe(1);
    expect(partitions.stderr).toMatch(/\n {2}\/partitions: no partition 9\n$/);

    const missing = await cli(["replay", "status", `rpl_${"0".repeat(32)}`]);
    expect(missing).toMatchObject({ code: 1, stderr: `error: Not found: replay rpl_${"0".repeat(32)} does not exist\n` });
  });

  it("--detach starts the job and returns at once with how to watch it", async () => {
    const res = await cli(["replay", "--topic", "events", "--from", "1", "--to", "2", "--subscription", "activity", "--detach"]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(
      new RegExp(
        `^replay (${ID.source}) started: events → activity, [\\d,]+ events to scan\\nwatch it with: eventline replay status \\1 --watch\\n$`,
      ),
    );
  });
});

describe("archive", () => {
  it("seals every partition's unarchived events and prints the segments sealed per partition", async () => {
    // A fresh event on partition 3, so there is something to seal whatever the alarm did already.
    expect((await cli(["publish", "events", "--type", `cli.archive.${run}`, "--subject", "alice"])).code).toBe(0);
    const res = await cli(["archive", "events"]);
    expect(res.code).toBe(0);
    const lines = res.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^PARTITION\s+SEALED\s+EVENTS\s+RANGE\s+BYTES\s+ARCHIVED THROUGH\s+TRIMMED$/);
    const p3 = lines.find((l) => /^\s+3\s/.test(l));
    // The range starts where the partition's own alarm stopped: it seals events older than its age
    // limit by itself, so on a slow or busy machine part of partition 3 may be sealed already.
    const row = /^\s+3\s+[1-9]\d*\s+[\d,]+\s+(\d+)-(\d+)\s+[\d.]+ (B|KiB|MiB)\s+[\d,]+\s+\d+$/.exec(p3 ?? "");
    expect(row, p3).not.toBeNull();
    expect(Number(row?.[1])).toBeGreaterThanOrEqual(1);
    expect(Number(row?.[2])).toBeGreaterThanOrEqual(Number(row?.[1]));
    expect(lines.at(-1)).toMatch(/^events: [1-9]\d* segments? sealed$/);

    // Nothing new since: nothing sealed; topic and topics show the archived range.
    const again = await cli(["archive", "events", "--json"]);
    const body = JSON.parse(again.stdout) as {
      topic: string;
      partitions: { partition: number; sealed: unknown[]; archivedThrough: number }[];
    };
    expect(body.topic).toBe("events");
    expect(body.partitions.map((p) => p.sealed.length)).toEqual([0, 0, 0, 0]);

    const topic = await cli(["topic", "events"]);
    expect(topic.stdout).toMatch(/\n\s+3\s+\d+\s+\d+\s+\d+\s+1-\d+ \(\d+ seg, [\d.]+ (B|KiB|MiB)\)\s/);
    const topics = await cli(["topics"]);
    expect(topics.stdout).toMatch(/\nevents\s+4\s+[\d,]+\s+[\d,]+\s+[\d,]+ events, \d+ seg\n/);

    expect((await cli(["archive", "no-such-topic"])).code).toBe(1);
  });
});
