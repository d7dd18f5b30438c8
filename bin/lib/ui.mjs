// @ts-check
/**
 * Terminal output: a table formatter, one progress bar (stderr, `\r` redraw when it is a TTY,
 * plain periodic lines otherwise), small formatters, and the Ctrl-C hook. No dependencies.
 */
import readline from "node:readline";

const numberFormat = new Intl.NumberFormat("en-US");

/** `1234` → `"1,234"`. @param {number} n */
export const num = (n) => numberFormat.format(n);

/** Seconds → `"m:ss"` or `"h:mm:ss"`; `"-"` when unknown. @param {number | null | undefined} seconds */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "-";
  const s = Math.max(0, Math.round(seconds));
  const [h, m, sec] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  const pad = (/** @type {number} */ x) => String(x).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m)}:${pad(sec)}` : `${m}:${pad(sec)}`;
}

/** Shortens `text` to at most `max` characters, ending with `…` when cut. @param {string} text @param {number} max */
export const truncate = (text, max) => (text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`);

/** @param {number} ms */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Columns padded to their widest cell; a column of numbers (and `-`) is right-aligned. Returns the lines joined by `\n`.
 * @param {string[]} headers
 * @param {(string | number)[][]} rows
 */
export function table(headers, rows) {
  const cells = rows.map((row) => row.map((c) => (typeof c === "number" ? num(c) : c)));
  const numeric = headers.map(
    (_, i) => rows.some((r) => typeof r[i] === "number") && rows.every((r) => typeof r[i] === "number" || r[i] === "-"),
  );
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? "").length)));
  const line = (/** @type {string[]} */ r) =>
    r
      .map((c, i) => (numeric[i] ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...cells.map(line)].join("\n");
}

/**
 * One progress display on stderr. On a TTY `draw` redraws a single line (`\r`, fitted to the
 * terminal width, with a bar when there is room); otherwise it prints the text as a plain line
 * when `plainEveryMs` have passed or another quarter of the total is done (and the first and
 * `force`d ones), so logs stay readable.
 * @param {{ stream?: NodeJS.WriteStream, plainEveryMs?: number }} [options]
 */
export function progressBar({ stream = process.stderr, plainEveryMs = 2000 } = {}) {
  let shown = false;
  let lastPlain = 0;
  let lastText = "";
  let lastQuarter = 0;
  return {
    /**
     * @param {number} done
     * @param {number} total
     * @param {string} text what to show beside the bar, e.g. "120/300 events 40% …"
     * @param {boolean} [force] print a plain line even if one was printed recently
     */
    draw(done, total, text, force = false) {
      if (!stream.isTTY) {
        const now = Date.now();
        const quarter = total > 0 ? Math.floor((done / total) * 4) : 0;
        if (force || lastPlain === 0 || now - lastPlain >= plainEveryMs || quarter > lastQuarter) {
          if (text !== lastText) stream.write(`${text}\n`);
          lastPlain = now;
          lastText = text;
          lastQuarter = quarter;
        }
        return;
      }
      const columns = stream.columns || 80;
      const room = columns - 1 - text.length - 3;
      let line = truncate(text, columns - 1);
      if (room >= 10) {
        const width = Math.min(40, room);
        const filled = total > 0 ? Math.round((Math.min(done, total) / total) * width) : 0;
        line = `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${text}`;
      }
      stream.write(`\r${line}\x1b[K`);
      shown = true;
    },
    /** Erases the bar line (TTY) so other output or a prompt can be written. */
    clear() {
      if (shown) stream.write("\r\x1b[K");
      shown = false;
    },
    /** Leaves the last drawn line on screen and moves to the next line. */
    end() {
      if (shown) stream.write("\n");
      shown = false;
    },
  };
}

/** @type {() => void} */
let interruptHandler = () => process.exit(130);
process.on("SIGINT", () => interruptHandler());

/**
 * Replaces what Ctrl-C (SIGINT) does; the default exits with 130. Returns a function restoring
 * the default.
 * @param {() => void} handler
 */
export function onInterrupt(handler) {
  interruptHandler = handler;
  return () => {
    interruptHandler = () => process.exit(130);
  };
}

/**
 * Makes Ctrl-C a clean stop (exit 0) for a command that runs until interrupted (`tail --follow`).
 * On a terminal, Ctrl-C is read as a key (raw mode) instead of raising SIGINT: the terminal sends
 * SIGINT to its whole foreground process group, and under `npx` that includes the /bin/sh that npm
 * runs the CLI with, which then dies of the signal after the CLI exits, so npx reported 130 however
 * the CLI exited. Without a terminal, SIGINT (e.g. `kill -INT`) exits 0 too.
 */
export function stopOnInterrupt() {
  onInterrupt(() => process.exit(0));
  const stdin = process.stdin;
  if (!stdin.isTTY) return;
  stdin.setRawMode(true);
  stdin.on("data", (/** @type {Buffer} */ keys) => {
    // Ctrl-C or Ctrl-D; anything else typed is ignored (and, in raw mode, not echoed).
    if (keys.includes(0x03) || keys.includes(0x04)) process.exit(0);
  });
  process.once("exit", () => stdin.setRawMode(false));
}

/** True when a question can be asked and answered on the terminal. */
export const interactive = () => Boolean(process.stdin.isTTY && process.stderr.isTTY);

/**
 * Asks a question on the terminal and resolves with the trimmed answer ("" on Ctrl-C or EOF).
 * @param {string} question
 * @returns {Promise<string>}
 */
export function ask(question) {
  return new Promise((resolve) => {
    const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
    let answered = false;
    const done = (/** @type {string} */ answer) => {
      if (answered) return;
      answered = true;
      rl.close();
      resolve(answer.trim());
    };
    rl.on("SIGINT", () => {
      process.stderr.write("\n");
      done("");
    });
    rl.on("close", () => done(""));
    rl.question(question, done);
  });
}

/** Prints a value as indented JSON (the `--json` output); returns exit code 0. @param {unknown} value */
export function printJson(value) {
  console.log(JSON.stringify(value, null, 2));
  return 0;
}
