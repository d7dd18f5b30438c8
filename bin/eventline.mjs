#!/usr/bin/env node
// @ts-check
/**
 * eventline: the operator CLI for the Eventline HTTP API (see bin/README.md).
 * `eventline help` lists the commands; exit codes: 0 ok, 1 API error, 2 usage, 3 unreachable,
 * 130 interrupted.
 */
import { readFileSync } from "node:fs";
import { ApiError, CliError, createClient, EXIT, NetworkError, UsageError } from "./lib/api.mjs";
import { commandHelp, DEFAULT_URL, findCommand, groupHelp, groupOf, mainHelp, parseCommandLine, unreachableHint } from "./lib/cli.mjs";
import { publish, tail } from "./lib/events.mjs";
import { processorsLate, processorsList, processorsReset, processorsShow } from "./lib/processors.mjs";
import { replay, replayCancel, replayList, replayStatus } from "./lib/replay.mjs";
import { schemasCheck, schemasList, schemasRegister, schemasShow } from "./lib/schemas.mjs";
import {
  audit,
  encryptionRewrap,
  encryptionStatus,
  erase,
  keysCreate,
  keysList,
  keysRevoke,
  keysRotate,
  keysShow,
} from "./lib/security.mjs";
import { dlqList, dlqRedrive, subscriptions, subscriptionsRotateSecret } from "./lib/subscriptions.mjs";
import { archive, topic, topics } from "./lib/topics.mjs";

/** @type {{ version: string }} */
const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
const COMMANDS = [
  topics,
  topic,
  tail,
  publish,
  replay,
  replayStatus,
  replayList,
  replayCancel,
  subscriptions,
  subscriptionsRotateSecret,
  dlqList,
  dlqRedrive,
  processorsList,
  processorsShow,
  processorsReset,
  processorsLate,
  archive,
  schemasList,
  schemasShow,
  schemasRegister,
  schemasCheck,
  keysCreate,
  keysList,
  keysShow,
  keysRevoke,
  keysRotate,
  audit,
  erase,
  encryptionStatus,
  encryptionRewrap,
];
const byName = new Map(COMMANDS.map((c) => [c.name, c]));

/** Prints an error the way every command does, and returns its exit code. @param {unknown} err */
function report(err) {
  if (err instanceof ApiError) {
    const { title = `HTTP ${err.status}`, detail, issues = [] } = err.problem;
    const lines = [`error: ${title}${detail ? `: ${detail}` : ""}`, ...issues.map((i) => `  ${i.path || "/"}: ${i.message}`)];
    if (err.status === 401) {
      lines.push("hint: pass --token or set EVENTLINE_TOKEN (locally: the EVENTLINE_ADMIN_KEY in .dev.vars, created by npm start)");
    }
    process.stderr.write(`${lines.join("\n")}\n`);
    return err.exitCode;
  }
  if (err instanceof UsageError) {
    const hint = err.command ? `run \`eventline ${err.command} --help\`` : "run `eventline help`";
    process.stderr.write(`error: ${err.message}\n${hint} for usage\n`);
    return err.exitCode;
  }
  if (err instanceof CliError) {
    process.stderr.write(`error: ${err.message}\n`);
    return err.exitCode;
  }
  process.stderr.write(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return EXIT.api;
}

/** @param {string} name @param {string | undefined} [sub] the word after a group's name, if any */
function unknownCommand(name, sub) {
  const group = groupOf(COMMANDS, name).map((c) => c.name.split(" ")[1]);
  if (group.length === 0) return new UsageError(`unknown command ${JSON.stringify(name)}`);
  return sub === undefined || sub.startsWith("-")
    ? new UsageError(`${name} needs a subcommand: ${group.join(", ")}`, name)
    : new UsageError(`unknown ${name} subcommand ${JSON.stringify(sub)}: use one of ${group.join(", ")}`, name);
}

/** @param {string[]} argv @returns {Promise<number>} */
async function main(argv) {
  const { cmd, rest, words } = findCommand(argv, byName);
  const wantsHelp = argv.includes("--help") || argv.includes("-h");
  if (cmd === undefined) {
    const [word] = words;
    if (word === "help" || (word === undefined && wantsHelp)) {
      const about = findCommand(rest, byName); // `help <command>` or `help <group>`
      const [aboutWord] = about.words;
      if (about.cmd !== undefined) console.log(commandHelp(about.cmd, COMMANDS));
      else if (aboutWord === undefined) console.log(mainHelp(COMMANDS, pkg.version));
      else if (groupOf(COMMANDS, aboutWord).length > 0) console.log(groupHelp(aboutWord, groupOf(COMMANDS, aboutWord)));
      else throw unknownCommand(aboutWord);
      return EXIT.ok;
    }
    // `keys --help`: a group without a command of its own lists its commands.
    if (word !== undefined && wantsHelp && groupOf(COMMANDS, word).length > 0) {
      console.log(groupHelp(word, groupOf(COMMANDS, word)));
      return EXIT.ok;
    }
    if (word === undefined && (argv.includes("--version") || argv.includes("-V"))) {
      console.log(pkg.version);
      return EXIT.ok;
    }
    throw word === undefined ? new UsageError("no command given") : unknownCommand(word, argv[argv.indexOf(word) + 1]);
  }
  const { values, args } = parseCommandLine(cmd, rest);
  if (values.help) {
    console.log(commandHelp(cmd, COMMANDS));
    return EXIT.ok;
  }
  const fromFlag = typeof values.url === "string" ? values.url : undefined;
  const fromEnv = process.env.EVENTLINE_URL || undefined;
  const url = fromFlag ?? fromEnv ?? DEFAULT_URL;
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol))
    throw new UsageError(`--url must be an http(s) URL, not ${JSON.stringify(url)}`);
  const token = (typeof values.token === "string" ? values.token : undefined) ?? process.env.EVENTLINE_TOKEN;
  const api = createClient({ url, token, userAgent: `eventline-cli/${pkg.version}` });
  try {
    return (await cmd.run({ api, values, args, json: values.json === true, url, command: cmd })) ?? EXIT.ok;
  } catch (err) {
    if (err instanceof UsageError) err.command ??= cmd.name;
    if (err instanceof NetworkError)
      err.message += `\n${unreachableHint(fromFlag !== undefined ? "--url" : fromEnv !== undefined ? "EVENTLINE_URL" : undefined)}`;
    throw err;
  }
}

// A closed pipe (`eventline tail … | head`) ends the command quietly.
process.stdout.on("error", (err) => process.exit(/** @type {NodeJS.ErrnoException} */ (err).code === "EPIPE" ? EXIT.ok : EXIT.api));

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => process.exit(report(err)),
);
