import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { runProcess } from "../run-process";

/**
 * Reading the docs as a newcomer would: their fenced blocks, headings and links, and running their
 * curl examples. Plain Node, no Markdown library: the docs use a small, regular subset.
 */

export interface Block {
  /** The fence's info string: `sh`, `bash`, `ts`… (empty for a bare fence). */
  lang: string;
  /** 1-based line of the block's first line of code. */
  line: number;
  code: string;
}

/** The fenced code blocks (``` fences, also indented ones inside list items). */
export function codeBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  const lines = markdown.split("\n");
  let open: { lang: string; line: number; indent: number; code: string[] } | null = null;
  lines.forEach((text, index) => {
    const fence = /^(\s*)```\s*([\w-]*)/.exec(text);
    if (open === null) {
      if (fence) open = { lang: fence[2] ?? "", line: index + 2, indent: fence[1]?.length ?? 0, code: [] };
    } else if (/^\s*```\s*$/.test(text)) {
      blocks.push({ lang: open.lang, line: open.line, code: open.code.join("\n") });
      open = null;
    } else {
      open.code.push(text.slice(Math.min(open.indent, text.length - text.trimStart().length)));
    }
  });
  return blocks;
}

/** The Markdown with fenced blocks and inline code blanked out (same line numbers), for link scanning. */
export function prose(markdown: string): string {
  let inFence = false;
  return markdown
    .split("\n")
    .map((text) => {
      if (/^\s*```/.test(text)) {
        inFence = !inFence;
        return "";
      }
      return inFence ? "" : text.replace(/`[^`]*`/g, "``");
    })
    .join("\n");
}

/** GitHub's anchor for a heading text: lower case, punctuation dropped, spaces → hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

/** Every anchor the page's headings define, numbered as GitHub numbers repeats (`x`, `x-1`…). */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const text of prose(markdown).split("\n")) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text);
    if (!heading) continue;
    // Inline code was blanked by prose(): take the heading from the original text instead.
    const base = slug((heading[1] ?? "").replace(/``/g, ""));
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    result.add(n === 0 ? base : `${base}-${n}`);
  }
  return result;
}

export interface Link {
  target: string;
  line: number;
}

/** Links and images `[text](target)` in the prose (not in code). */
export function links(markdown: string): Link[] {
  const found: Link[] = [];
  prose(markdown)
    .split("\n")
    .forEach((text, index) => {
      for (const match of text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
        if (match[1]) found.push({ target: match[1], line: index + 1 });
      }
    });
  return found;
}

/** One curl call of an example and what its block says it answers. */
export interface CurlCall {
  /** 1-based line in the block. */
  line: number;
  /** The status the block shows (`# → 409 …`), or "2xx" when it shows none. */
  expect: number | "2xx";
  /** The problem `code` the block shows for it (`"code":"version_conflict"`), if any. */
  code?: string;
}

/** Lines that start a curl call: at the start of a command, or in a `$(…)` substitution. */
const CURL = /(^|\$\(|[;&|]\s*)curl\s/;

/**
 * The curl calls of a shell block, in order, with the answers the block promises. A call's promise
 * is the first `# → …` comment after it and before the next call: `# → 422 {…}` says the call must
 * answer 422 (the way an example that is meant to fail says so); a `# →` without a status, or no
 * `# →` at all, means any 2xx. Comment lines never count as calls.
 */
export function curlCalls(code: string): CurlCall[] {
  const calls: CurlCall[] = [];
  let promised = true;
  code.split("\n").forEach((text, index) => {
    const trimmed = text.trim();
    const arrow = /^#\s*→\s*(.*)$/.exec(trimmed);
    if (arrow) {
      const last = calls.at(-1);
      if (last === undefined || promised) return;
      promised = true;
      const status = /^(\d{3})\b/.exec(arrow[1] ?? "");
      if (status?.[1]) last.expect = Number(status[1]);
      const problem = /"code":"([a-z_]+)"/.exec(arrow[1] ?? "");
      if (problem?.[1]) last.code = problem[1];
      return;
    }
    if (trimmed.startsWith("#")) return;
    if (CURL.test(trimmed)) {
      calls.push({ line: index + 1, expect: "2xx" });
      promised = false;
    }
  });
  return calls;
}

/** The shell blocks that make curl calls: the examples the docs promise work as written. */
export function curlBlocks(markdown: string): Block[] {
  return codeBlocks(markdown).filter((b) => (b.lang === "sh" || b.lang === "bash") && curlCalls(b.code).length > 0);
}

/** The local stack's default address: examples use $EVENTLINE_URL instead (examples.test.ts checks). */
export const DOCS_URL = "http://localhost:8787";

export interface Answer {
  status: number;
  body: string;
}

export interface BlockRun {
  answers: Answer[];
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs one example block with bash against `url`, as a reader would paste it after the README's
 * `export EVENTLINE_URL=… EVENTLINE_TOKEN=…`: both are set in its environment (and a hard-coded
 * `DOCS_URL`, which the docs no longer use, would be pointed at `url` too). `curl` is wrapped by a shell function
 * that records every call's status and body in order (calls inside `$(…)` too) and still prints
 * the body, so pipes and substitutions work as written. The script stops at the first command
 * that fails (`set -eo pipefail`: curl cannot connect, a pipe breaks).
 */
export async function runBlock(code: string, url: string, token: string): Promise<BlockRun> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "eventline-docs-"));
  try {
    const wrapper = [
      "set -eo pipefail",
      'curl() { local n; n=$(find "$EXAMPLES_DIR" -name "body-*" | wc -l); local body="$EXAMPLES_DIR/body-$n"; local status',
      '  status=$(command curl --max-time 30 "$@" -o "$body" -w "%{http_code}")',
      '  echo "$status" > "$EXAMPLES_DIR/status-$n"; cat "$body"; }',
    ].join("\n");
    const script = `${wrapper}\n${code.split(DOCS_URL).join(url)}\n`;
    const {
      code: exitCode,
      stdout,
      stderr,
    } = await runProcess("bash", ["-c", script], {
      env: { ...process.env, EVENTLINE_TOKEN: token, EVENTLINE_URL: url, EXAMPLES_DIR: dir },
    });
    const answers: Answer[] = [];
    for (let n = 0; ; n++) {
      let status: string;
      try {
        status = await readFile(path.join(dir, `status-${n}`), "utf8");
      } catch {
        break;
      }
      answers.push({ status: Number(status.trim()), body: await readFile(path.join(dir, `body-${n}`), "utf8") });
    }
    return { answers, exitCode, stdout, stderr };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** What is wrong with a block's run: one line per broken promise (empty: every call kept it). */
export function problems(calls: CurlCall[], run: BlockRun): string[] {
  const found: string[] = [];
  calls.forEach((call, i) => {
    const answer = run.answers[i];
    const where = `curl call at line ${call.line} of the block`;
    if (answer === undefined) {
      found.push(`${where}: not answered (bash exited ${run.exitCode}): ${run.stderr.trim().slice(-500)}`);
      return;
    }
    const ok = call.expect === "2xx" ? answer.status >= 200 && answer.status < 300 : answer.status === call.expect;
    if (!ok) found.push(`${where}: expected ${call.expect}, got ${answer.status}: ${answer.body.slice(0, 500)}`);
    else if (call.code !== undefined && !answer.body.includes(`"code":"${call.code}"`))
      found.push(`${where}: expected the problem code ${call.code}: ${answer.body.slice(0, 500)}`);
  });
  if (run.answers.length > calls.length) found.push(`${run.answers.length} curl calls answered, ${calls.length} found in the block`);
  if (found.length === 0 && run.exitCode !== 0) found.push(`bash exited ${run.exitCode}: ${run.stderr.trim().slice(-500)}`);
  return found;
}
