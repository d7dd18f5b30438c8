// Copies the API reference renderer (Scalar's standalone browser bundle, the pinned devDependency
// @scalar/api-reference) into the Worker's static-assets directory, where the platform Worker serves it
// as /docs/scalar-<version>.js through its ASSETS binding (ADR 0043). The copy is git-ignored and
// rebuilt by whatever needs it, like the dashboard bundle (ADR 0038): wrangler's [build] command, both
// vitest configs and `npm run build`. Its name carries the version, so it can be cached for a year; the
// file is only rewritten when its content changes.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.join(import.meta.dirname, "..");
const PACKAGE = "@scalar/api-reference";
/** The assets directory of wrangler.toml's [assets]; the committed .assetsignore keeps it in every clone. */
export const ASSETS_DIR = path.join(root, "workers", "platform", "reference", "assets");

/** The version package.json pins (exactly) — the one the Worker names in its page and route. */
export function pinnedVersion() {
  const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
  const pin = pkg.devDependencies?.[PACKAGE];
  if (typeof pin !== "string" || !/^\d+\.\d+\.\d+$/.test(pin))
    throw new Error(`package.json must pin ${PACKAGE} to an exact version, not ${pin}`);
  return pin;
}

/** Where the renderer goes: docs/scalar-<version>.js under the assets directory (served at the same path). */
export const referenceAsset = (version = pinnedVersion()) => path.join(ASSETS_DIR, "docs", `scalar-${version}.js`);

/** Copies the installed bundle (without its source-map comment: the map is not served) when it changed. */
export function buildReference() {
  const version = pinnedVersion();
  const dir = path.join(root, "node_modules", ...PACKAGE.split("/"));
  const installed = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")).version;
  if (installed !== version) throw new Error(`${PACKAGE} ${installed} is installed but package.json pins ${version}: run npm ci`);
  const text = readFileSync(path.join(dir, "dist", "browser", "standalone.js"), "utf8").replace(/\n\/\/# sourceMappingURL=\S+\s*$/, "\n");
  const target = referenceAsset(version);
  mkdirSync(path.dirname(target), { recursive: true });
  // Older versions' copies would be uploaded with every deploy: keep only this one.
  for (const name of readdirSync(path.dirname(target)))
    if (/^scalar-.*\.js$/.test(name) && name !== path.basename(target)) rmSync(path.join(path.dirname(target), name));
  let current = null;
  try {
    current = readFileSync(target, "utf8");
  } catch {}
  if (current === text) return false;
  // Write then rename, so a concurrent reader (wrangler's watcher, a vitest run) never sees half a file.
  const tmp = `${target}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, target);
  return true;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) buildReference();
