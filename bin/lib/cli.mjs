// @ts-check
/**
 * The command framework: every command declares its positional arguments and options; one
 * parser (util.parseArgs, strict) reads the command line, and the same declarations render
 * `--help`.
 */
import { parseArgs } from "node:util";
import { UsageError } from "./api.mjs";

/**
 * @typedef {{ type: "string" | "boolean", short?: string, arg?: string, desc: string, multiple?: boolean }} OptionSpec
 *   `arg` names the value in the help (`--limit N`); `multiple`: the option may repeat (an array of values).
 * @typedef {{
 *   api: import("./api.mjs").Api,
 *   values: Record<string, string | boolean | undefined>,
 *   args: string[],
 *   json: boolean,
 *   url: string,
 *   command: Command,
 * }} Context
 * @typedef {{
 *   name: string,
 *   summary: string,
 *   args?: string[],
 *   options?: Record<string, OptionSpec>,
 *   details?: string,
 *   run: (ctx: Context) => Promise<number | undefined>,
 * }} Command
 *   `args`: positional names, `<required>` or `[optional]`. `run` resolves with the exit code
 *   (undefined: 0).
 */

export const DEFAULT_URL = "http://localhost:8787";

/**
 * Where the URL the CLI could not reach came from, and how to give another.
 * @param {"--url" | "EVENTLINE_URL" | undefined} source undefined: neither was given (the default)
 */
export function unreachableHint(source) {
  const how = "export EVENTLINE_URL=http://host:port (or pass --url)";
  if (source === undefined)
    return `hint: EVENTLINE_URL is not set, so this was the local stack's default address. Start it with \`npm start\`, or point the CLI at yours: ${how}`;
  return `hint: that URL came from ${source}. Is the stack running there? For another one: ${how}`;
}

/** @type {Record<string, OptionSpec>} */
export const GLOBAL_OPTIONS = {
  url: { type: "string", arg: "URL", desc: `API base URL (env EVENTLINE_URL; default ${DEFAULT_URL})` },
  token: { type: "string", arg: "TOKEN", desc: "sent as Authorization: Bearer TOKEN (env EVENTLINE_TOKEN)" },
  json: { type: "boolean", desc: "print the API's JSON (NDJSON for streams) instead of tables" },
  help: { type: "boolean", short: "h", desc: "show help" },
};

export const EXIT_CODES_HELP = `Exit codes:
  0    ok
  1    the API answered an error (4xx/5xx): "error: <title>: <detail>" and its issues on stderr
  2    usage error: unknown command or option, bad value, unreadable input file
  3    cannot reach the server
  130  interrupted (Ctrl-C); \`tail --follow\` exits 0 on Ctrl-C`;

/** Defines a command (identity; gives editors the type). @param {Command} command */
export const command = (command) => command;

/** @param {Record<string, OptionSpec>} options */
function optionLines(options) {
  const rows = Object.entries(options).map(([name, o]) => [
    `${o.short ? `-${o.short}, ` : ""}--${name}${o.arg ? ` ${o.arg}` : ""}`,
    o.desc,
  ]);
  const width = Math.max(...rows.map(([left]) => (left ?? "").length));
  return rows.map(([left, desc]) => `  ${(left ?? "").padEnd(width)}  ${desc}`).join("\n");
}

/**
 * The commands of group `word` (`keys`, `replay`, …): every command whose first word it is, when
 * there are at least two; otherwise none (`topic` is a command, not a group).
 * @param {Command[]} commands @param {string} word
 */
export function groupOf(commands, word) {
  const members = commands.filter((c) => c.name.split(" ")[0] === word);
  return members.length > 1 ? members : [];
}

/** Help rows `name <args>  summary`, padded to `width`. @param {Command[]} commands @param {number} [width] */
function commandLines(commands, width = 0) {
  const rows = commands.map((c) => [`${c.name} ${(c.args ?? []).join(" ")}`.trim(), c.summary.split("\n")[0] ?? ""]);
  const pad = Math.max(width, ...rows.map(([left]) => (left ?? "").length));
  return { pad, lines: rows.map(([left, desc]) => `  ${(left ?? "").padEnd(pad)}  ${desc}`) };
}

/**
 * The `--help` text of one command; the command named like its group (`subscriptions`, `replay`)
 * also lists the group's commands, itself included.
 * @param {Command} cmd @param {Command[]} commands every command (the table in eventline.mjs)
 */
export function commandHelp(cmd, commands) {
  const args = (cmd.args ?? []).join(" ");
  const parts = [`Usage: eventline ${cmd.name}${args ? ` ${args}` : ""} [options]`, "", cmd.summary];
  if (cmd.details) parts.push("", cmd.details);
  if (cmd.options && Object.keys(cmd.options).length > 0) parts.push("", "Options:", optionLines(cmd.options));
  const group = cmd.name.includes(" ") ? [] : groupOf(commands, cmd.name);
  if (group.length > 0) parts.push("", `Commands of the ${cmd.name} group (each has --help):`, ...commandLines(group).lines);
  parts.push("", "Global options:", optionLines(GLOBAL_OPTIONS), "", EXIT_CODES_HELP);
  return parts.join("\n");
}

/** The help of a group with no command of its own (`keys`, `dlq`, `encryption`). @param {string} word @param {Command[]} members */
export function groupHelp(word, members) {
  return [
    `Usage: eventline ${word} <command> [arguments] [options]`,
    "",
    "Commands:",
    ...commandLines(members).lines,
    "",
    "Global options:",
    optionLines(GLOBAL_OPTIONS),
    "",
    EXIT_CODES_HELP,
    "",
    `Run \`eventline ${word} <command> --help\` for a command's options.`,
  ].join("\n");
}

/** The top-level help. @param {Command[]} commands @param {string} version */
export function mainHelp(commands, version) {
  const { pad: width, lines } = commandLines(commands, "help [command]".length);
  return [
    `eventline ${version}: operator CLI for the Eventline HTTP API`,
    "",
    "Usage: eventline <command> [arguments] [options]",
    "",
    "Commands:",
    ...lines,
    `  ${"help [command]".padEnd(width)}  this help, or a command's`,
    `  ${"--version".padEnd(width)}  print the version`,
    "",
    "Global options (any command):",
    optionLines(GLOBAL_OPTIONS),
    "",
    EXIT_CODES_HELP,
    "",
    "Run `eventline <command> --help` for a command's options.",
  ].join("\n");
}

/**
 * Finds the command words in argv: the first word that is not an option (skipping the values of
 * --url/--token given before it), and for a command group (`replay status`) the word right after.
 * @param {string[]} argv
 * @param {Map<string, Command>} commands
 * @returns {{ cmd: Command | undefined, rest: string[], words: string[] }}
 */
export function findCommand(argv, commands) {
  let i = 0;
  while (i < argv.length) {
    const token = argv[i] ?? "";
    if (token === "--") return { cmd: undefined, rest: argv, words: [] };
    if (!token.startsWith("-")) break;
    i += token === "--url" || token === "--token" ? 2 : 1;
  }
  const word = argv[i];
  if (word === undefined) return { cmd: undefined, rest: argv, words: [] };
  const next = argv[i + 1];
  const pair = next === undefined ? undefined : commands.get(`${word} ${next}`);
  if (pair) return { cmd: pair, rest: [...argv.slice(0, i), ...argv.slice(i + 2)], words: [word, next ?? ""] };
  return { cmd: commands.get(word), rest: [...argv.slice(0, i), ...argv.slice(i + 1)], words: [word] };
}

/**
 * Parses a command's arguments (strict: unknown options and missing or extra arguments are
 * usage errors).
 * @param {Command} cmd
 * @param {string[]} rest argv without the command words
 * @returns {{ values: Record<string, string | boolean | undefined>, args: string[] }}
 */
export function parseCommandLine(cmd, rest) {
  const specs = { ...GLOBAL_OPTIONS, ...cmd.options };
  /** @type {import("node:util").ParseArgsConfig["options"]} */
  const options = {};
  for (const [name, { type, short, multiple }] of Object.entries(specs)) {
    options[name] = { type, ...(short ? { short } : {}), ...(multiple ? { multiple } : {}) };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err), cmd.name);
  }
  const values = /** @type {Record<string, string | boolean | undefined>} */ (parsed.values);
  if (values.help) return { values, args: parsed.positionals };
  const names = cmd.args ?? [];
  const required = names.filter((a) => a.startsWith("<")).length;
  if (parsed.positionals.length < required) {
    throw new UsageError(`missing ${names.slice(parsed.positionals.length, required).join(" ")}`, cmd.name);
  }
  if (parsed.positionals.length > names.length) {
    throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[names.length])}`, cmd.name);
  }
  return { values, args: parsed.positionals };
}

/**
 * An integer option value, checked against a range (usage error otherwise).
 * @param {string | boolean | undefined} value
 * @param {string} name e.g. "--limit"
 * @param {{ min?: number, max?: number }} [range]
 * @returns {number | undefined}
 */
export function intOption(value, name, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}) {
  if (value === undefined) return undefined;
  const n = typeof value === "string" && /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(
      `${name} must be an integer from ${min}${max === Number.MAX_SAFE_INTEGER ? "" : ` to ${max}`}, not ${JSON.stringify(value)}`,
    );
  }
  return n;
}

const DURATION_UNITS = /** @type {const} */ ({ s: 1, m: 60, h: 3600, d: 86_400 });

/** Seconds in the largest unit that divides them: 604800 → "7d", 5400 → "90m", 0 → "0s". @param {number} seconds */
function formatDuration(seconds) {
  const unit = /** @type {const} */ (["d", "h", "m"]).find((u) => seconds > 0 && seconds % DURATION_UNITS[u] === 0) ?? "s";
  return `${seconds / DURATION_UNITS[unit]}${unit}`;
}

/**
 * A duration option value as seconds: plain seconds (`90`) or a number with a unit, `90s`, `30m`,
 * `24h`, `7d`; `0` is zero (usage error outside 0..max). The one parser of every duration option
 * (`keys rotate --grace`, `subscriptions rotate-secret --overlap`), so they read alike.
 * @param {string | boolean | undefined} value
 * @param {string} name e.g. "--grace"
 * @param {{ max: number }} range the longest duration accepted, in seconds
 * @returns {number | undefined}
 */
export function durationOption(value, name, { max }) {
  if (value === undefined) return undefined;
  const m = typeof value === "string" ? /^(\d+)([smhd]?)$/.exec(value.trim()) : null;
  const seconds = m ? Number(m[1]) * DURATION_UNITS[/** @type {keyof typeof DURATION_UNITS} */ (m[2] || "s")] : Number.NaN;
  if (!Number.isSafeInteger(seconds) || seconds > max) {
    throw new UsageError(
      `${name} must be a duration from 0 to ${formatDuration(max)}: seconds, or a number with s, m, h or d (0, 90, 90s, 30m, 24h, 7d), not ${JSON.stringify(value)}`,
    );
  }
  return seconds;
}

/**
 * A JSON option value (usage error when it does not parse).
 * @param {string | boolean | undefined} value
 * @param {string} name
 * @returns {unknown}
 */
export function jsonOption(value, name) {
  if (typeof value !== "string") return undefined;
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new UsageError(`${name} is not valid JSON: ${err instanceof Error ? err.message : err}`);
  }
}

/** A string option value. @param {string | boolean | undefined} value */
export const str = (value) => (typeof value === "string" ? value : undefined);
