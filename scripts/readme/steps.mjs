// @ts-check
/**
 * The README as a tested contract (ADR 0042): its fenced shell blocks, split into steps (one
 * command each, with the answer the README shows for it), and the check of an answer against what
 * is shown. Plain Node, no Markdown library: the README uses a small, regular subset.
 *
 * What a block promises, written as comments after a command:
 *   `# → 422 {…}`     the (last) curl call of the command answers 422; without a status, every
 *                     curl call of a step must answer 2xx.
 *   `# → {json}`      valid JSON: the output is exactly that JSON (compared as values).
 *   `# → {…"k":v…}`   JSON with `…`: each `"key":scalar` shown is somewhere in the output's JSON
 *                     (a string ending in `…` is a prefix).
 *   `# → text`        anything else: each shown line matches an output line, in order; `…` stands
 *                     for anything, and runs of spaces for any spacing (tables).
 *   `#   more`        (three spaces) continues the answer above on another line.
 * Every command must exit 0. A block right after `<!-- readme-examples: skip (why) -->` is not run.
 */

/** @typedef {{ line: number, code: string }} Block */
/** @typedef {{ block: number, line: number, command: string, expect: string[] }} Step */

const SKIP = /^<!--\s*readme-examples:\s*skip\b/;

/**
 * The README's shell blocks that are run, in order; `line` is the 1-based line of its first code line.
 * @param {string} markdown @returns {Block[]}
 */
export function shellBlocks(markdown) {
  /** @type {Block[]} */
  const blocks = [];
  const lines = markdown.split("\n");
  /** @type {{ line: number, code: string[], run: boolean } | null} */
  let open = null;
  let previous = "";
  lines.forEach((text, index) => {
    if (open === null) {
      const fence = /^```\s*(sh|bash)\s*$/.exec(text);
      if (fence) open = { line: index + 2, code: [], run: !SKIP.test(previous) };
      else if (/^```/.test(text)) open = { line: index + 2, code: [], run: false };
      if (text.trim() !== "") previous = text.trim();
    } else if (/^```\s*$/.test(text)) {
      if (open.run) blocks.push({ line: open.line, code: open.code.join("\n") });
      open = null;
      previous = "";
    } else {
      open.code.push(text);
    }
  });
  return blocks;
}

/** True when `text` ends outside any quote and not with a line continuation. @param {string} text */
function complete(text) {
  /** @type {"none" | "single" | "double"} */
  let state = "none";
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (state === "single") {
      if (ch === "'") state = "none";
    } else if (ch === "\\") {
      i++;
    } else if (state === "double") {
      if (ch === '"') state = "none";
    } else if (ch === "'") state = "single";
    else if (ch === '"') state = "double";
    else if (ch === "#" && (i === 0 || /\s/.test(text[i - 1] ?? ""))) {
      // A comment runs to the end of its line.
      const end = text.indexOf("\n", i);
      if (end === -1) break;
      i = end;
    }
  }
  return state === "none" && !/\\\s*$/.test(text);
}

/**
 * The steps of a block: each command (its continuation lines and quoted newlines included) with
 * the answer lines shown after it.
 * @param {Block} block @param {number} index the block's position @returns {Step[]}
 */
export function stepsOf(block, index) {
  /** @type {Step[]} */
  const steps = [];
  /** @type {{ line: number, lines: string[] } | null} */
  let pending = null;
  let inAnswer = false;
  block.code.split("\n").forEach((text, i) => {
    const line = block.line + i;
    if (pending !== null) {
      pending.lines.push(text);
      const command = pending.lines.join("\n");
      if (complete(command)) {
        steps.push({ block: index, line: pending.line, command, expect: [] });
        pending = null;
      }
      return;
    }
    const trimmed = text.trim();
    const arrow = /^#\s*→\s?(.*)$/.exec(trimmed);
    const last = steps.at(-1);
    if (arrow && last !== undefined) {
      last.expect.push(arrow[1] ?? "");
      inAnswer = true;
      return;
    }
    if (inAnswer && /^# {3}/.test(trimmed) && last !== undefined) {
      last.expect.push(trimmed.slice(4));
      return;
    }
    inAnswer = false;
    if (trimmed === "" || trimmed.startsWith("#")) return;
    if (complete(text)) steps.push({ block: index, line, command: text, expect: [] });
    else pending = { line, lines: [text] };
  });
  if (pending !== null) throw new Error(`README line ${pending.line}: the command never ends (an open quote or a trailing \\)`);
  return steps;
}

/** Every step of the README, in order. @param {string} markdown @returns {Step[]} */
export const readmeSteps = (markdown) => shellBlocks(markdown).flatMap((block, index) => stepsOf(block, index));

/** @param {string} text */
const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * `"key":scalar` pairs shown in an abbreviated JSON answer; a string ending in `…` is a prefix.
 * @param {string} shown @returns {{ key: string, value: unknown, prefix: boolean }[]}
 */
export function shownPairs(shown) {
  const pairs = [];
  for (const m of shown.matchAll(/"([^"\\]+)":\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false|null)/g)) {
    const raw = m[2] ?? "";
    const prefix = raw.endsWith('…"');
    const value = prefix ? JSON.parse(`${raw.slice(0, -2)}"`) : JSON.parse(raw);
    pairs.push({ key: m[1] ?? "", value, prefix });
  }
  return pairs;
}

/** Whether `json` holds `key` with `value` (or a string starting with it) at any depth. @param {unknown} json */
function holds(json, key, value, prefix) {
  if (Array.isArray(json)) return json.some((item) => holds(item, key, value, prefix));
  if (typeof json !== "object" || json === null) return false;
  for (const [k, v] of Object.entries(json)) {
    if (k === key && (prefix ? typeof v === "string" && v.startsWith(String(value)) : v === value)) return true;
    if (holds(v, key, value, prefix)) return true;
  }
  return false;
}

/** @param {unknown} a @param {unknown} b @returns {boolean} */
function sameJson(a, b) {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  }
  if (typeof a === "object" && a !== null && typeof b === "object" && b !== null) {
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    return sameJson(ka, kb) && ka.every((k) => sameJson(/** @type {any} */ (a)[k], /** @type {any} */ (b)[k]));
  }
  return a === b;
}

/** The first JSON value in `text` (its whole text, trimmed), or undefined. @param {string} text */
function parseJson(text) {
  try {
    return { value: JSON.parse(text.trim()) };
  } catch {
    return undefined;
  }
}

/**
 * What is wrong with a step's run (empty: it answered what the README shows).
 * @param {Step} step
 * @param {{ code: number | null, stdout: string, stderr: string, statuses: number[] }} run
 * @returns {string[]}
 */
export function problems(step, run) {
  const found = [];
  if (run.code !== 0) found.push(`exited ${run.code}: ${run.stderr.trim().slice(-400)}`);
  let shown = step.expect.join("\n").trim();
  const status = /^(\d{3})\b\s*/.exec(shown);
  if (status) shown = shown.slice(status[0].length);
  run.statuses.forEach((got, i) => {
    const wanted = status && i === run.statuses.length - 1 ? Number(status[1]) : undefined;
    const ok = wanted === undefined ? got >= 200 && got < 300 : got === wanted;
    if (!ok) found.push(`curl call ${i + 1} answered ${got}, expected ${wanted ?? "2xx"}: ${run.stdout.slice(0, 300)}`);
  });
  if (status && run.statuses.length === 0) found.push(`the README shows status ${status[1]} but the step made no curl call`);
  if (shown === "") return found;
  const expected = parseJson(shown);
  const actual = parseJson(run.stdout);
  if (expected !== undefined) {
    if (actual === undefined) found.push(`expected JSON ${shown}, got: ${run.stdout.slice(0, 300)}`);
    else if (!sameJson(actual.value, expected.value)) found.push(`expected ${shown}\n  got ${run.stdout.trim().slice(0, 600)}`);
  } else if (/^[{[]/.test(shown)) {
    if (actual === undefined) found.push(`expected JSON like ${shown}, got: ${run.stdout.slice(0, 300)}`);
    else {
      for (const { key, value, prefix } of shownPairs(shown)) {
        if (!holds(actual.value, key, value, prefix))
          found.push(`expected "${key}": ${JSON.stringify(value)}${prefix ? "…" : ""} in ${run.stdout.trim().slice(0, 600)}`);
      }
    }
  } else {
    const lines = run.stdout.split("\n");
    let at = 0;
    for (const want of shown.split("\n")) {
      const pattern = new RegExp(
        `^\\s*${want
          .trim()
          .split("…")
          .map((part) => escapeRegExp(part).replace(/\s+/g, "\\s+"))
          .join(".*?")}\\s*$`,
      );
      const hit = lines.findIndex((line, i) => i >= at && pattern.test(line));
      if (hit === -1) {
        found.push(`expected a line like ${JSON.stringify(want)} in:\n${run.stdout.trimEnd().slice(0, 800)}`);
        break;
      }
      at = hit + 1;
    }
  }
  return found;
}
