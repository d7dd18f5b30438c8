import { access } from "node:fs/promises";
import sparticuz from "@sparticuz/chromium";
import { type Browser, chromium } from "playwright-core";

/**
 * The Chromium the browser tests drive, found without installing anything on the machine:
 * `CHROMIUM_PATH` if set (it must exist), else a system Chromium (`/usr/bin/chromium`, as Debian's
 * package installs it), else the Chromium that the npm package `@sparticuz/chromium` ships inside
 * itself (`executablePath()` unpacks it into the temporary directory once). The last one is what
 * makes `npm ci && npm test` pass on a fresh machine with no system packages.
 */

export interface ChromiumChoice {
  executablePath: string;
  args: string[];
  /** Where it came from, for error messages and the test log. */
  source: "CHROMIUM_PATH" | "system" | "@sparticuz/chromium";
}

const SYSTEM_CHROMIUM = "/usr/bin/chromium";

/**
 * Flags of @sparticuz/chromium's defaults (made for one page per process in AWS Lambda) left out:
 * those that switch off browser security (same-origin policy, mixed content, site isolation) — the
 * dashboard tests check the page's CSP and that it requests no other origin, so they run with the
 * browser's security as a user has it — and `--single-process`, under which closing one browser
 * context closes the whole browser (the tests open a second context for a second user).
 */
const LEFT_OUT = new Set([
  "--disable-web-security",
  "--allow-running-insecure-content",
  "--disable-site-isolation-trials",
  "--single-process",
]);

/** Keeps a closed network quiet: no component updates, sync or background requests to Google's hosts. */
const QUIET = ["--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"];

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

export async function findChromium(env: NodeJS.ProcessEnv = process.env): Promise<ChromiumChoice> {
  const configured = env.CHROMIUM_PATH;
  if (configured !== undefined && configured !== "") {
    if (!(await exists(configured))) throw new Error(`CHROMIUM_PATH=${configured}: no such file`);
    return { executablePath: configured, args: ["--no-sandbox", ...QUIET], source: "CHROMIUM_PATH" };
  }
  if (await exists(SYSTEM_CHROMIUM)) return { executablePath: SYSTEM_CHROMIUM, args: ["--no-sandbox", ...QUIET], source: "system" };
  const executablePath = await sparticuz.executablePath();
  const args = sparticuz.args.filter((arg) => !LEFT_OUT.has(arg));
  return { executablePath, args: [...args, ...QUIET], source: "@sparticuz/chromium" };
}

/** Launches the Chromium that findChromium picks, headless. */
export async function launchChromium(): Promise<{ browser: Browser; choice: ChromiumChoice }> {
  const choice = await findChromium();
  try {
    const browser = await chromium.launch({ executablePath: choice.executablePath, args: choice.args, headless: true });
    return { browser, choice };
  } catch (error) {
    throw new Error(`could not start Chromium from ${choice.source} (${choice.executablePath}): ${String(error)}`);
  }
}
