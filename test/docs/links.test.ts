import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { anchors, links } from "./markdown";

/**
 * Every relative link in the README and the docs resolves: the file (or folder) exists and, for
 * `page.md#anchor`, the page has a heading with that anchor. Moving a section between pages
 * without its links fails here.
 */

const root = path.resolve(import.meta.dirname, "../..");
const markdown = (dir: string) =>
  readdirSync(path.join(root, dir))
    .filter((f) => f.endsWith(".md"))
    .map((f) => path.join(dir, f));
const pages = ["README.md", "bin/README.md", "sdk/README.md", ...markdown("docs"), ...markdown("docs/adr")];

const anchorsOf = new Map<string, Set<string>>();
function anchorsIn(file: string): Set<string> {
  let found = anchorsOf.get(file);
  if (found === undefined) {
    found = anchors(readFileSync(file, "utf8"));
    anchorsOf.set(file, found);
  }
  return found;
}

/** Why `target`, linked from `page`, does not resolve (null: it does). */
function broken(page: string, target: string): string | null {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return null; // https:, mailto:: not ours to check here
  const [file = "", anchor] = target.split("#", 2);
  const resolved = file === "" ? path.join(root, page) : path.resolve(path.dirname(path.join(root, page)), decodeURI(file));
  if (!existsSync(resolved)) return `${target}: no such file`;
  if (anchor === undefined) return null;
  if (statSync(resolved).isDirectory() || !resolved.endsWith(".md")) return `${target}: an anchor into a file that is not Markdown`;
  return anchorsIn(resolved).has(anchor) ? null : `${target}: no heading with that anchor`;
}

describe("docs links", () => {
  it("finds the pages", () => {
    expect(pages).toEqual(expect.arrayContaining(["README.md", "docs/http-api.md", "docs/architecture.md", "bin/README.md"]));
  });

  it.each(pages)("%s: every relative link resolves", (page) => {
    const wrong = links(readFileSync(path.join(root, page), "utf8"))
      .map(({ target, line }) => {
        const why = broken(page, target);
        return why === null ? null : `${page}:${line}: ${why}`;
      })
      .filter((w) => w !== null);
    expect(wrong).toEqual([]);
  });

  it("links the README to every docs page", () => {
    const readme = links(readFileSync(path.join(root, "README.md"), "utf8")).map((l) => l.target.split("#")[0]);
    const missing = markdown("docs").filter((page) => !readme.includes(page));
    expect(missing).toEqual([]);
  });

  it("keeps the README on one screen or so: at most 250 lines", () => {
    expect(readFileSync(path.join(root, "README.md"), "utf8").trimEnd().split("\n").length).toBeLessThanOrEqual(250);
  });

  it("reports a missing page and a missing anchor", () => {
    expect(broken("README.md", "docs/no-such-page.md")).toMatch(/no such file/);
    expect(broken("README.md", "docs/http-api.md#no-such-heading")).toMatch(/no heading/);
    expect(broken("README.md", "docs/http-api.md#errors")).toBeNull();
    expect(broken("docs/http-api.md", "#partitioning")).toBeNull();
  });
});
