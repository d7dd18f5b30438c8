import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";

/** How a child process ended, and what it printed. */
export interface ProcessRun {
  /** The exit code (null when a signal ended it). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningProcess {
  child: ChildProcess;
  /** Output so far. */
  stdout: () => string;
  stderr: () => string;
  done: Promise<ProcessRun>;
}

/**
 * Starts `command` (Node-project tests) with stdin, stdout and stderr as pipes: `input` is written
 * to stdin, which is then closed, and what it prints is collected.
 */
export function startProcess(command: string, args: string[], options: SpawnOptions = {}, input = ""): RunningProcess {
  const child = spawn(command, args, { ...options, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (c: Buffer) => {
    stdout += c.toString("utf8");
  });
  child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString("utf8");
  });
  child.stdin?.end(input);
  const done = new Promise<ProcessRun>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, stdout: () => stdout, stderr: () => stderr, done };
}

/** Runs `command` to its end (see startProcess). */
export const runProcess = (command: string, args: string[], options: SpawnOptions = {}): Promise<ProcessRun> =>
  startProcess(command, args, options).done;
