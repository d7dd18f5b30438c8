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

/** The `--help` text of one command. @param {Command} cmd */
export function commandHelp(cmd) {
  const args = (cmd.args ?? []).join(" ");
  const parts = [`Usage: eventline ${cmd.name}${args ? ` ${args}` : ""} [options]`, "", cmd.summary];
  if (cmd.details) parts.push("", cmd.details);
  if (cmd.options && Object.keys(cmd.options).length > 0) parts.push("", "Options:", optionLines(cmd.options));
  parts.push("", "Global options:", optionLines(GLOBAL_OPTIONS), "", EXIT_CODES_HELP);
  return parts.join("\n");
}

/** The top-level help. @param {Command[]} commands @param {string} version */
export function mainHelp(commands, version) {
  const rows = commands.map((c) => [`${c.name} ${(c.args ?? []).join(" ")}`.trim(), c.summary.split("\n")[0] ?? ""]);
  const width = Math.max(...rows.map(([left]) => (left ?? "").length));
  return [
    `eventline ${version}: operator CLI for the Eventline HTTP API`,
    "",
    "Usage: eventline <command> [arguments] [options]",
    "",
    "Commands:",
    ...rows.map(([left, desc]) => `  ${(left ?? "").padEnd(width)}  ${desc}`),
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
